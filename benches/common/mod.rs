//! What the benchmarks share: the tests' DNS server and HTTP client, and ways to measure a
//! process (CPU time and RSS, from /proc or from the rusage of waited-for children).
#![allow(dead_code)]

#[path = "../../tests/common/dns.rs"]
pub mod dns;
#[path = "../../tests/common/http.rs"]
pub mod http;
#[path = "../../tests/common/ports.rs"]
pub mod ports;

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
pub fn wait_with_rusage(child: &mut Child) -> (i32, i64, Duration) {
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
