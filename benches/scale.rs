//! Benchmarks of mcw at scale (release build), against the in-process DNS server, with one
//! template of 1,000 tokens and 20,000 servers: 500 `dns://` names of 20 addresses each and
//! 500 `dnssrv://` names of 20 targets each (addresses in the additional section), every answer
//! sent in a different order each time. Every output the benchmark sees is checked pool by
//! pool: all 20,000 servers present, each pool in mcw's canonical order.
//! (a) `mcw render` of it: wall, CPU, peak RSS over 5 runs after a warm-up;
//! (b) `mcw watch` of it while the template is edited 100 times a second for 10 s (each edit
//!     written beside it and renamed over it, as editors and kubelet do): renders,
//!     writes, CPU, peak RSS, every file seen complete and in edit order, the last edit written;
//! (c) `mcw watch` of it while one token's answer flaps on every lookup (TTL 1 s,
//!     `--min-refresh 1s`) for 10 minutes: lookups, writes, CPU, RSS at the start and the end,
//!     every file seen holding one of the two answers in order and every other pool unchanged.
//! Run with `cargo bench --bench scale`; `MCW_BENCH_FLAP_SECS` shortens (c);
//! `MCW_BENCH_ONLY=render|edits|flap` runs one part.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::scale::{
    EDIT_PORT, Expected, FLAPPING, FLAPPING_NAME, Seen, check, start_flapping, template, zone,
};
use common::{Killed, dns, http, mcw, ms, ports, rss_now, timed_runs, usage, wait_contains};
use notify::Watcher as _;

fn main() {
    let only = std::env::var("MCW_BENCH_ONLY").unwrap_or_default();
    let part = |name: &str| only.is_empty() || only == name;
    let server = dns::DnsServer::start();
    server.shuffle(true);
    let expected = zone(&server);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("resolv.conf"), "").unwrap();
    std::fs::write(dir.path().join("template.json"), template(0)).unwrap();
    if part("render") {
        render(dir.path(), &server, &expected);
    }
    if part("edits") {
        edits(dir.path(), &server, &expected);
    }
    if part("flap") {
        flap(dir.path(), &server, &expected);
    }
}

fn render(dir: &Path, server: &dns::DnsServer, expected: &Expected) {
    const RUNS: usize = 5;
    let out = |run: usize| dir.join(format!("render{run}.json"));
    let stats = timed_runs(
        RUNS,
        |run| {
            let mut cmd = mcw("render", dir, &server.arg());
            cmd.arg("--output").arg(out(run));
            (cmd, 0)
        },
        |run| {
            let (_, flapping) = check(&std::fs::read_to_string(out(run)).unwrap(), expected);
            assert_eq!(flapping, expected[0].1);
        },
    );
    println!(
        "render 1,000 tokens / 20,000 servers ({RUNS} runs, every output checked): {stats}; output {} KiB",
        std::fs::metadata(out(1)).unwrap().len() / 1024
    );
}

/// `mcw watch` writing dir/NAME, with metrics on the returned address, its first output
/// written.
fn watch(dir: &Path, server: &dns::DnsServer, name: &str, extra: &[&str]) -> (Killed, String) {
    let web = format!("127.0.0.1:{}", ports::free_port());
    let mut cmd = mcw("watch", dir, &server.arg());
    cmd.arg("--output")
        .arg(dir.join(name))
        .args(["--metrics-listen", &web])
        .args(extra);
    let child = Killed(cmd.spawn().unwrap());
    wait_contains(&dir.join(name), "10.111.243.20:", Duration::from_secs(30));
    (child, web)
}

/// The sum of a metric family's samples in mcw's /metrics (all labels).
fn metric(web: &str, name: &str) -> f64 {
    let body = http::get(web, "/metrics").body;
    body.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let sample = rest.starts_with('{') || rest.starts_with(' ');
            sample.then(|| l.rsplit(' ').next()?.parse::<f64>().ok())?
        })
        .sum()
}

/// Every file renamed into place at `path`, read and checked as it appears (through inotify on
/// its directory): the edit number and the flapping pool of each, in the order seen.
struct Observer {
    seen: Arc<Mutex<Vec<Seen>>>,
    _watcher: notify::RecommendedWatcher,
}

impl Observer {
    fn start(path: PathBuf, expected: Expected) -> Observer {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let mut inode = std::fs::metadata(&path).unwrap().ino();
        let dir = path.parent().unwrap().to_path_buf();
        let handler = move |event: notify::Result<notify::Event>| {
            let Ok(event) = event else { return };
            // Not on opens and reads: the observer's own open would wake it again.
            let access = matches!(event.kind, notify::EventKind::Access(_));
            if access || !event.paths.iter().any(|p| p == &path) {
                return;
            }
            // Read through one descriptor, so the inode and the bytes belong together.
            let Ok(mut file) = std::fs::File::open(&path) else {
                return;
            };
            let ino = file.metadata().unwrap().ino();
            if ino == inode {
                return;
            }
            inode = ino;
            let mut text = String::new();
            std::io::Read::read_to_string(&mut file, &mut text).unwrap();
            record.lock().unwrap().push(check(&text, &expected));
        };
        let mut watcher = notify::recommended_watcher(handler).unwrap();
        watcher
            .watch(&dir, notify::RecursiveMode::NonRecursive)
            .unwrap();
        Observer {
            seen,
            _watcher: watcher,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn edits(dir: &Path, server: &dns::DnsServer, expected: &Expected) {
    const EDITS: u32 = 1000;
    let (mcw, web) = watch(dir, server, "edits.json", &["--max-refresh", "1h"]);
    let out = dir.join("edits.json");
    let observer = Observer::start(out.clone(), expected.clone());
    let pid = mcw.0.id();
    let (cpu0, _) = usage(pid);
    let renders0 = metric(&web, "mcw_renders_total");
    let writes0 = metric(&web, "mcw_writes_total");
    let lookups0 = metric(&web, "mcw_dns_lookups_total");
    let start = Instant::now();
    for n in 1..=EDITS {
        let at = start + Duration::from_millis(10 * u64::from(n));
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        let tmp = dir.join(".template.json.new");
        std::fs::write(&tmp, template(n)).unwrap();
        std::fs::rename(&tmp, dir.join("template.json")).unwrap();
    }
    let last_edit = Instant::now();
    let editing = last_edit - start;
    let done = wait_contains(
        &out,
        &format!("\"10.250.0.1:{}\"", EDIT_PORT + EDITS),
        Duration::from_secs(30),
    );
    let (cpu1, hwm) = usage(pid);
    let renders = metric(&web, "mcw_renders_total") - renders0;
    let writes = metric(&web, "mcw_writes_total") - writes0;
    let lookups = metric(&web, "mcw_dns_lookups_total") - lookups0;
    let seen = wait_seen(&observer, writes as usize);
    let numbers: Vec<u32> = seen.iter().map(|(n, _)| *n).collect();
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]),
        "edits out of order: {numbers:?}"
    );
    assert_eq!(numbers.last(), Some(&EDITS));
    println!(
        "{EDITS} template edits in {:.1} s (1,000 tokens / 20,000 servers): {renders} renders, {lookups} lookups, {writes} writes, each file complete and in edit order (edits {}…{}); last edit written {:.0} ms after it was made; CPU {:.2} s; peak RSS {:.1} MiB",
        editing.as_secs_f64(),
        numbers[0],
        numbers[numbers.len() - 1],
        ms(done - last_edit),
        (cpu1 - cpu0).as_secs_f64(),
        hwm as f64 / 1024.0
    );
    std::fs::write(dir.join("template.json"), template(0)).unwrap();
}

/// What the observer has seen, once it has seen all `writes` files (inotify delivers late).
/// A file it never saw was replaced before it could be read: that fails the run.
fn wait_seen(observer: &Observer, writes: usize) -> Vec<Seen> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = observer.seen();
        if seen.len() >= writes {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "saw {} of {writes} files written",
            seen.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn flap(dir: &Path, server: &dns::DnsServer, expected: &Expected) {
    let secs: u64 = std::env::var("MCW_BENCH_FLAP_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let (mcw, web) = watch(dir, server, "flap.json", &["--min-refresh", "1s"]);
    let out = dir.join("flap.json");
    let observer = Observer::start(out.clone(), expected.clone());
    let pid = mcw.0.id();
    let rss0 = rss_now(pid);
    let (cpu0, _) = usage(pid);
    let writes0 = metric(&web, "mcw_writes_total");
    let asked0 = server.queries(FLAPPING_NAME, dns::RecordType::A);
    let answers = start_flapping(server);
    // Its refresh was set by the old TTL: have every token asked now.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(secs));
    let asked = server.queries(FLAPPING_NAME, dns::RecordType::A) - asked0;
    let writes = metric(&web, "mcw_writes_total") - writes0;
    let (cpu1, hwm) = usage(pid);
    let rss1 = rss_now(pid);
    let seen = wait_seen(&observer, writes as usize);
    for (i, (edit, servers)) in seen.iter().enumerate() {
        assert_eq!(*edit, 0);
        assert!(
            answers.contains(servers),
            "file {i}: pool {FLAPPING} is {servers:?}"
        );
        if i > 0 {
            assert_ne!(servers, &seen[i - 1].1, "file {i} changed nothing");
        }
    }
    println!(
        "flapping answer every refresh for {secs} s (TTL 1s, --min-refresh 1s, 1,000 tokens / 20,000 servers): {asked} lookups of the flapping name, {writes} writes, {} files seen, each complete, alternating, every other pool unchanged; CPU {:.2} s ({:.2} % of a core); RSS {:.1} MiB at the start, {:.1} MiB at the end, peak {:.1} MiB",
        seen.len(),
        (cpu1 - cpu0).as_secs_f64(),
        (cpu1 - cpu0).as_secs_f64() * 100.0 / secs as f64,
        rss0 as f64 / 1024.0,
        rss1 as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
}
