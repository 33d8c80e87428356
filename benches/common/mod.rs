//! What the benchmarks share: the tests' DNS server and HTTP client, and ways to measure a
//! process (CPU time and RSS, from /proc or from the rusage of waited-for children).
#![allow(dead_code)]

#[path = "../../tests/common/dns.rs"]
pub mod dns;
#[path = "../../tests/common/http.rs"]
pub mod http;
#[path = "../../tests/common/ports.rs"]
pub mod ports;
#[path = "../../tests/common/scale.rs"]
pub mod scale;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// A child killed and reaped when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait until the file at `path` holds `needle`; when it did.
pub fn wait_contains(path: &Path, needle: &str, limit: Duration) -> Instant {
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

/// A `kB` field of /proc/PID/status, in KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// VmRSS of a process now, in KiB.
pub fn rss_now(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// utime+stime and peak RSS (VmHWM, KiB) of a process, from /proc.
pub fn usage(pid: u32) -> (Duration, u64) {
    (cpu_of(pid, false), status_kib(pid, "VmHWM:"))
}

/// utime+stime of a process from /proc/PID/stat; with `children`, plus the CPU of the
/// children it has waited for (cutime+cstime), which is where a shell loop's `dig`s go.
pub fn cpu_of(pid: u32, children: bool) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split(' ').collect();
    let field = |i: usize| fields[i].parse::<u64>().unwrap();
    let mut ticks = field(11) + field(12);
    if children {
        ticks += field(13) + field(14);
    }
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

/// Wait for the child and return its exit status, peak RSS in KiB and CPU time (from the
/// rusage of waited-for children: CPU as the difference, RSS as the peak so far).
fn wait_with_rusage(child: &mut Child) -> (i32, i64, Duration) {
    use nix::sys::resource::{UsageWho, getrusage};
    let cpu_of = |u: &nix::sys::resource::Usage| {
        let tv = |t: nix::sys::time::TimeVal| {
            Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000)
        };
        tv(u.user_time()) + tv(u.system_time())
    };
    let before = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    let status = child.wait().expect("wait");
    let after = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    let code = status.code().unwrap_or(-1);
    (code, after.max_rss(), cpu_of(&after) - cpu_of(&before))
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The p-th percentile (0–100) of sorted durations.
pub fn pct(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

/// `mcw SUB` on dir/template.json, with dir/resolv.conf and `server` (`IP:PORT`), logging
/// warnings only.
pub fn mcw(sub: &str, dir: &Path, server: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mcw"));
    cmd.arg(sub)
        .arg("--template")
        .arg(dir.join("template.json"))
        .arg("--resolv-conf")
        .arg(dir.join("resolv.conf"))
        .arg("--dns-server")
        .arg(server)
        .env("MCW_LOG", "warn");
    cmd
}

/// One warm-up run and `n` counted runs of the command `make(run)` gives, each expected to
/// exit with the status it names and then to pass `check(run)`. Returns the wall, CPU and
/// peak-RSS figures as one line.
pub fn timed_runs(
    n: usize,
    make: impl Fn(usize) -> (std::process::Command, i32),
    check: impl Fn(usize),
) -> String {
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let mut peak_kib = 0;
    for run in 0..=n {
        let (mut cmd, expected) = make(run);
        let start = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let (status, rss_kib, cpu) = wait_with_rusage(&mut child);
        let wall = start.elapsed();
        assert_eq!(status, expected, "mcw exited {status}");
        check(run);
        if run > 0 {
            // The first run warms the page cache and the DNS server; it is not counted.
            walls.push(wall);
            cpus.push(cpu);
            peak_kib = peak_kib.max(rss_kib);
        }
    }
    walls.sort();
    cpus.sort();
    format!(
        "wall p50 {:.1} ms, max {:.1} ms; CPU p50 {:.1} ms; peak RSS {:.1} MiB",
        ms(pct(&walls, 50)),
        ms(walls[n - 1]),
        ms(pct(&cpus, 50)),
        peak_kib as f64 / 1024.0
    )
}
