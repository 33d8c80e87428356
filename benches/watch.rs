//! Benchmarks of `mcw watch` (release build) against an in-process DNS server:
//! (a) propagation: a DNS change → new output on disk, p50 and max over 20 changes with TTL 1 s
//!     and `--min-refresh 1s` (target p50 < 1.5 s);
//! (b) idle cost: RSS and CPU time over 60 s watching 50 tokens whose answers never change
//!     (TTL 5 s, so every token is asked again every 5 s), and the number of writes
//!     (targets < 15 MiB, < 0.5 s CPU, 0 writes).
//! (c) the same idle run with `--metrics-listen`, scraped every second (targets: under 10 %
//!     more CPU, under 2 MiB more RSS than (b));
//! (d) RSS before and after 1,000 back-to-back scrapes (target: grows by under 1 MiB).
//! Run with `cargo bench --bench watch`; `MCW_BENCH_IDLE_SECS` shortens (b) and (c).

#[path = "../tests/common/dns.rs"]
#[allow(dead_code)]
mod dns;
#[path = "../tests/common/http.rs"]
#[allow(dead_code)]
mod http;
#[path = "../tests/common/ports.rs"]
#[allow(dead_code)]
mod ports;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn main() {
    // `MCW_BENCH_ONLY=scrapes` runs one part.
    let only = std::env::var("MCW_BENCH_ONLY").unwrap_or_default();
    let part = |name: &str| only.is_empty() || only == name;
    if part("propagation") {
        propagation();
    }
    if part("idle") {
        idle(false);
        idle(true);
    }
    if part("scrapes") {
        scrapes();
    }
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn watch(dir: &Path, server: &dns::DnsServer, extra: &[&str]) -> Killed {
    std::fs::write(dir.join("resolv.conf"), "").unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_mcw"))
        .arg("watch")
        .arg("--template")
        .arg(dir.join("template.json"))
        .arg("--output")
        .arg(dir.join("out.json"))
        .arg("--resolv-conf")
        .arg(dir.join("resolv.conf"))
        .arg("--dns-server")
        .arg(server.arg())
        .args(extra)
        .env("MCW_LOG", "warn")
        .spawn()
        .unwrap();
    Killed(child)
}

fn wait_contains(path: &Path, needle: &str, limit: Duration) -> Instant {
    let deadline = Instant::now() + limit;
    loop {
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle)) {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "{needle} never reached {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn propagation() {
    let server = dns::DnsServer::start();
    server.set_addrs("memcache.bench", &["10.0.0.1"], 1);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("template.json"),
        r#"{"pools": {"a": {"servers": ["dns://memcache.bench"]}}, "route": "PoolRoute|a"}"#,
    )
    .unwrap();
    let _mcw = watch(dir.path(), &server, &["--min-refresh", "1s"]);
    let out = dir.path().join("out.json");
    wait_contains(&out, "10.0.0.1:", Duration::from_secs(10));
    let mut lat = Vec::new();
    for i in 2..22 {
        // Change at a random point of the refresh cycle, as real changes happen.
        std::thread::sleep(Duration::from_millis(137 * i as u64 % 1000));
        let ip = format!("10.0.0.{i}");
        server.set_addrs("memcache.bench", &[&ip], 1);
        let changed = Instant::now();
        let seen = wait_contains(&out, &format!("\"{ip}:"), Duration::from_secs(10));
        lat.push(seen - changed);
    }
    lat.sort();
    println!(
        "propagation (TTL 1s, --min-refresh 1s, 20 changes): p50 {:.0} ms, max {:.0} ms",
        lat[lat.len() / 2].as_secs_f64() * 1000.0,
        lat[lat.len() - 1].as_secs_f64() * 1000.0
    );
}

/// One scrape as Prometheus asks (for OpenMetrics); the HTTP status.
fn scrape(web: &str) -> u16 {
    let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    http::request(web, "GET", "/metrics", &[("Accept", accept)]).status
}

/// VmRSS of a process now, in KiB.
fn rss_now(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// utime+stime and peak RSS (VmHWM, KiB) of a process, from /proc.
fn usage(pid: u32) -> (Duration, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    (Duration::from_millis(ticks * 1000 / hz), rss_kib)
}

/// A `watch` of 50 tokens (TTL 5 s) in `dir`, its first output written; with `metrics`, it
/// serves `--metrics-listen` on the returned address.
fn fifty_tokens(dir: &Path, server: &dns::DnsServer, metrics: bool) -> (Killed, String) {
    let mut pools = Vec::new();
    for i in 0..50 {
        server.set_addrs(
            &format!("t{i}.bench"),
            &[&format!("10.1.0.{i}"), &format!("10.2.0.{i}")],
            5,
        );
        pools.push(format!("\"p{i}\": {{\"servers\": [\"dns://t{i}.bench\"]}}"));
    }
    std::fs::write(
        dir.join("template.json"),
        format!(
            "{{\"pools\": {{{}}}, \"route\": \"PoolRoute|p0\"}}",
            pools.join(",")
        ),
    )
    .unwrap();
    let web = format!("127.0.0.1:{}", ports::free_port());
    let extra: &[&str] = if metrics {
        &["--metrics-listen", &web]
    } else {
        &[]
    };
    let mcw = watch(dir, server, extra);
    wait_contains(&dir.join("out.json"), "10.2.0.49:", Duration::from_secs(10));
    (mcw, web)
}

fn idle(metrics: bool) {
    let secs: u64 = std::env::var("MCW_BENCH_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let server = dns::DnsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (mcw, web) = fifty_tokens(dir.path(), &server, metrics);
    let out = dir.path().join("out.json");
    let meta = std::fs::metadata(&out).unwrap();
    let (cpu0, _) = usage(mcw.0.id());
    let asked0 = (0..50)
        .map(|i| server.queries(&format!("t{i}.bench"), dns::RecordType::A))
        .sum::<usize>();
    let start = Instant::now();
    let mut scraped = 0;
    if metrics {
        // Prometheus' way: one scrape a second.
        for n in 1..=secs {
            let next = start + Duration::from_secs(n);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            assert_eq!(scrape(&web), 200);
            scraped += 1;
        }
    } else {
        std::thread::sleep(Duration::from_secs(secs));
    }
    let (cpu1, hwm) = usage(mcw.0.id());
    let asked1 = (0..50)
        .map(|i| server.queries(&format!("t{i}.bench"), dns::RecordType::A))
        .sum::<usize>();
    let after = std::fs::metadata(&out).unwrap();
    let writes = usize::from((after.ino(), after.mtime_nsec()) != (meta.ino(), meta.mtime_nsec()));
    let with = if metrics {
        format!(" with --metrics-listen, {scraped} scrapes")
    } else {
        String::new()
    };
    println!(
        "idle {secs}s, 50 tokens (TTL 5s){with}: {} lookups, CPU {:.3} s, peak RSS {:.1} MiB, writes {writes}",
        asked1 - asked0,
        (cpu1 - cpu0).as_secs_f64(),
        hwm as f64 / 1024.0
    );
}

/// RSS before and after 1,000 scrapes in a row (after 20 to warm up).
fn scrapes() {
    let server = dns::DnsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (mcw, web) = fifty_tokens(dir.path(), &server, true);
    for _ in 0..20 {
        scrape(&web);
    }
    let before = rss_now(mcw.0.id());
    let (cpu0, _) = usage(mcw.0.id());
    let start = Instant::now();
    for _ in 0..1000 {
        assert_eq!(scrape(&web), 200);
    }
    let took = start.elapsed();
    let (cpu1, _) = usage(mcw.0.id());
    let after = rss_now(mcw.0.id());
    println!(
        "1000 scrapes (50 tokens): RSS {:.2} MiB -> {:.2} MiB ({:+.2} MiB); per scrape {:.3} ms wall, {:.3} ms CPU in mcw",
        before as f64 / 1024.0,
        after as f64 / 1024.0,
        (after as f64 - before as f64) / 1024.0,
        took.as_secs_f64(),
        (cpu1 - cpu0).as_secs_f64()
    );
}
