//! Benchmarks of `mcw watch` (release build) against an in-process DNS server, beside a shell
//! loop around dig doing the same job (`benches/dig-watcher.sh`):
//! (a) propagation: a DNS change → new output on disk, p50 and max over 20 changes with TTL 1 s
//!     and `--min-refresh 1s` (target p50 < 1.5 s); the shell loop looks every second;
//! (b) idle cost: RSS and CPU time over 60 s watching 50 tokens whose answers never change
//!     (TTL 5 s, so every token is asked again every 5 s), and the number of writes
//!     (targets < 15 MiB, < 0.5 s CPU, 0 writes); the shell loop looks every 5 s;
//! (c) the same idle run with `--metrics-listen`, scraped every second (targets: under 10 %
//!     more CPU, under 2 MiB more RSS than (b));
//! (d) RSS before and after 1,000 back-to-back scrapes (target: grows by under 1 MiB).
//! Run with `cargo bench --bench watch`; `MCW_BENCH_IDLE_SECS` shortens (b) and (c);
//! `MCW_BENCH_ONLY=peer|propagation|idle|scrapes` runs one part.

mod common;

use common::{Killed, cpu_of, dns, http, ports, rss_now, usage, wait_contains};

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// What keeps the output current.
#[derive(Clone, Copy, PartialEq)]
enum Watcher {
    Mcw,
    /// The shell-and-dig loop, looking every this many seconds.
    Dig(u32),
}

fn main() {
    let only = std::env::var("MCW_BENCH_ONLY").unwrap_or_default();
    let part = |name: &str| only.is_empty() || only == name;
    // The shell loop first: its peak RSS is read from the rusage of this process's reaped
    // children, which must not include an mcw yet.
    if part("peer") {
        propagation(Watcher::Dig(1));
        idle(Watcher::Dig(5), false);
    }
    if part("propagation") {
        propagation(Watcher::Mcw);
    }
    if part("idle") {
        idle(Watcher::Mcw, false);
        idle(Watcher::Mcw, true);
    }
    if part("scrapes") {
        scrapes();
    }
}

/// Start `watcher` on dir/template.json → dir/out.json, asking `server`.
fn watch(watcher: Watcher, dir: &Path, server: &dns::DnsServer, extra: &[&str]) -> Killed {
    std::fs::write(dir.join("resolv.conf"), "").unwrap();
    let mut cmd = match watcher {
        Watcher::Mcw => {
            let mut cmd = common::mcw("watch", dir, &server.arg());
            cmd.arg("--output").arg(dir.join("out.json")).args(extra);
            cmd
        }
        Watcher::Dig(every) => {
            let mut cmd = Command::new("sh");
            cmd.arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/benches/dig-watcher.sh"
            ))
            .arg(dir.join("template.json"))
            .arg(dir.join("out.json"))
            .arg(server.addr.ip().to_string())
            .arg(server.addr.port().to_string())
            .arg(every.to_string());
            cmd
        }
    };
    Killed(cmd.spawn().unwrap())
}

fn name(watcher: Watcher) -> String {
    match watcher {
        Watcher::Mcw => "mcw watch".to_string(),
        Watcher::Dig(every) => format!("shell + dig loop (every {every} s)"),
    }
}

fn propagation(watcher: Watcher) {
    let server = dns::DnsServer::start();
    server.set_addrs("memcache.bench", &["10.0.0.1"], 1);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("template.json"),
        r#"{"pools": {"a": {"servers": ["dns://memcache.bench"]}}, "route": "PoolRoute|a"}"#,
    )
    .unwrap();
    let _watcher = watch(watcher, dir.path(), &server, &["--min-refresh", "1s"]);
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
        "{}: propagation (TTL 1s, 20 changes): p50 {:.0} ms, max {:.0} ms",
        name(watcher),
        lat[lat.len() / 2].as_secs_f64() * 1000.0,
        lat[lat.len() - 1].as_secs_f64() * 1000.0
    );
}

/// One scrape as Prometheus asks (for OpenMetrics); the HTTP status.
fn scrape(web: &str) -> u16 {
    let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    http::request(web, "GET", "/metrics", &[("Accept", accept)]).status
}

/// A watcher of 50 tokens (TTL 5 s) in `dir`, its first output written; with `metrics`, mcw
/// serves `--metrics-listen` on the returned address.
fn fifty_tokens(
    watcher: Watcher,
    dir: &Path,
    server: &dns::DnsServer,
    metrics: bool,
) -> (Killed, String) {
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
    let mcw = watch(watcher, dir, server, extra);
    wait_contains(&dir.join("out.json"), "10.2.0.49:", Duration::from_secs(10));
    (mcw, web)
}

fn idle(watcher: Watcher, metrics: bool) {
    let secs: u64 = std::env::var("MCW_BENCH_IDLE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let server = dns::DnsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (mut running, web) = fifty_tokens(watcher, dir.path(), &server, metrics);
    let pid = running.0.id();
    // The shell loop's work is done by its children (dig, sort, awk…), reaped by the shell.
    let shell = watcher != Watcher::Mcw;
    let out = dir.path().join("out.json");
    let meta = std::fs::metadata(&out).unwrap();
    let cpu0 = cpu_of(pid, shell);
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
    let cpu1 = cpu_of(pid, shell);
    let peak_kib = if shell {
        // The largest process of the loop (a dig): the peak RSS of reaped descendants.
        let _ = running.0.kill();
        let _ = running.0.wait();
        let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN);
        usage.expect("getrusage").max_rss() as u64
    } else {
        usage(pid).1
    };
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
    let rss = if shell { "largest process" } else { "peak RSS" };
    println!(
        "{}: idle {secs}s, 50 tokens (TTL 5s){with}: {} lookups, CPU {:.3} s, {rss} {:.1} MiB, writes {writes}",
        name(watcher),
        asked1 - asked0,
        (cpu1 - cpu0).as_secs_f64(),
        peak_kib as f64 / 1024.0
    );
}

/// RSS before and after 1,000 scrapes in a row (after 20 to warm up).
fn scrapes() {
    let server = dns::DnsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (mcw, web) = fifty_tokens(Watcher::Mcw, dir.path(), &server, true);
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
