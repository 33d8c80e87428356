//! Benchmarks of `mcw watch` (release build) against an in-process DNS server:
//! (a) propagation: a DNS change → new output on disk, p50 and max over 20 changes with TTL 1 s
//!     and `--min-refresh 1s` (target p50 < 1.5 s);
//! (b) idle cost: RSS and CPU time over 60 s watching 50 tokens whose answers never change
//!     (TTL 5 s, so every token is asked again every 5 s), and the number of writes
//!     (targets < 15 MiB, < 0.5 s CPU, 0 writes).
//! Run with `cargo bench --bench watch`; `MCW_BENCH_IDLE_SECS` shortens (b).

#[path = "../tests/common/dns.rs"]
#[allow(dead_code)]
mod dns;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn main() {
    propagation();
    idle();
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

/// utime+stime and VmRSS of a process, from /proc.
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

fn idle() {
    let secs: u64 = std::env::var("MCW_BENCH_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let server = dns::DnsServer::start();
    let mut pools = Vec::new();
    for i in 0..50 {
        server.set_addrs(
            &format!("t{i}.bench"),
            &[&format!("10.1.0.{i}"), &format!("10.2.0.{i}")],
            5,
        );
        pools.push(format!("\"p{i}\": {{\"servers\": [\"dns://t{i}.bench\"]}}"));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("template.json"),
        format!(
            "{{\"pools\": {{{}}}, \"route\": \"PoolRoute|p0\"}}",
            pools.join(",")
        ),
    )
    .unwrap();
    let mcw = watch(dir.path(), &server, &[]);
    let out = dir.path().join("out.json");
    wait_contains(&out, "10.2.0.49:", Duration::from_secs(10));
    let meta = std::fs::metadata(&out).unwrap();
    let (cpu0, _) = usage(mcw.0.id());
    let asked0 = (0..50)
        .map(|i| server.queries(&format!("t{i}.bench"), dns::RecordType::A))
        .sum::<usize>();
    std::thread::sleep(Duration::from_secs(secs));
    let (cpu1, hwm) = usage(mcw.0.id());
    let asked1 = (0..50)
        .map(|i| server.queries(&format!("t{i}.bench"), dns::RecordType::A))
        .sum::<usize>();
    let after = std::fs::metadata(&out).unwrap();
    let writes = usize::from((after.ino(), after.mtime_nsec()) != (meta.ino(), meta.mtime_nsec()));
    println!(
        "idle {secs}s, 50 tokens (TTL 5s): {} lookups, CPU {:.3} s, peak RSS {:.1} MiB, writes {writes}",
        asked1 - asked0,
        (cpu1 - cpu0).as_secs_f64(),
        hwm as f64 / 1024.0
    );
}
