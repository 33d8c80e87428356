//! mcw at a real terminal: a pseudo-terminal the test opens, with mcw as the session leader and
//! the terminal as its controlling one (`setsid --ctty`), as in a shell, `tmux` or
//! `docker run -it`. Ctrl-C is the byte 0x03 typed into the terminal, and closing the
//! terminal is closing its master side: the kernel then sends SIGINT or SIGHUP itself
//! (`si_code` SI_KERNEL), which kill(2) cannot imitate.

mod common;

use std::io::Write;
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const WAIT: Duration = Duration::from_secs(10);

/// A pseudo-terminal's master side; dropping it hangs the terminal up.
struct Terminal {
    master: std::fs::File,
}

impl Terminal {
    /// Type `bytes` at the terminal.
    fn type_in(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).unwrap();
    }
}

/// Start `cmd` (an `mcw` command) in a new session whose controlling terminal is a fresh
/// pseudo-terminal: stdin is the terminal, stdout and stderr go to `log`.
fn at_terminal(cmd: Command, log: std::path::PathBuf) -> (Watcher, Terminal) {
    use nix::fcntl::OFlag;
    use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
    // Close-on-exec from the start: a process that other tests start meanwhile must not
    // inherit the master, or closing it here would not hang the terminal up.
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(ptsname_r(&master).unwrap())
        .unwrap();
    let mut setsid = Command::new("setsid");
    setsid
        .arg("--ctty")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(v) => setsid.env(key, v),
            None => setsid.env_remove(key),
        };
    }
    let out = std::fs::File::create(&log).unwrap();
    setsid.stdin(Stdio::from(slave)).stdout(out);
    let w = Watcher::spawn(setsid, log);
    let master = OwnedFd::from(master);
    (
        w,
        Terminal {
            master: std::fs::File::from(master),
        },
    )
}

/// `mcw run` over `router` at a terminal, once mcrouter runs the first config.
fn run_at_terminal(router: &Mcrouter, dns: &DnsServer, work: &Workdir) -> (Watcher, Terminal) {
    dns.set_addrs("memcache.test", &["127.0.0.1"], 3600);
    work.write("template.json", ONE_TOKEN);
    let port = free_port();
    let mut cmd = work.mcw("run", dns);
    cmd.arg("--output").arg(work.path("out.json")).arg("--");
    cmd.arg(router.path())
        .args(["-p", &port.to_string(), "--listen-addresses=127.0.0.1"])
        .args(router.isolation(work.dir.path()));
    let (w, tty) = at_terminal(cmd, work.path("mcw.log"));
    w.wait_log("mcrouter runs the new config", WAIT);
    (w, tty)
}

fn watch_at_terminal(work: &Workdir, dns: &DnsServer) -> (Watcher, Terminal) {
    work.write("template.json", ONE_TOKEN);
    let mut cmd = work.mcw("watch", dns);
    cmd.arg("--output").arg(work.path("out.json"));
    at_terminal(cmd, work.path("mcw.log"))
}

/// Regression: the terminal's SIGINT comes from the kernel, and mcw took every kernel-sent
/// signal for one its own write raised, and dropped it.
#[test]
fn ctrl_c_at_a_terminal_stops_watch() {
    let dns = DnsServer::start();
    dns.set_addrs("memcache.test", &["10.0.0.1"], 3600);
    let work = Workdir::new();
    let (mut w, mut tty) = watch_at_terminal(&work, &dns);
    w.wait_log("wrote config", WAIT);
    tty.type_in(b"\x03");
    assert_eq!(w.wait_exit(WAIT), Some(0), "{}", w.log());
    assert!(w.log().contains("signal=SIGINT"), "{}", w.log());
}

/// Regression: `mcw run` waiting for DNS (mcrouter not started yet) ignored Ctrl-C too.
#[test]
fn ctrl_c_stops_run_while_it_waits_for_dns() {
    let dns = DnsServer::start();
    let work = Workdir::new();
    work.write("template.json", ONE_TOKEN);
    let mut cmd = work.mcw("run", &dns);
    cmd.arg("--output").arg(work.path("out.json")).args([
        "--min-refresh",
        "100ms",
        "--",
        "mcrouter",
        "-p",
        "1",
    ]);
    let (mut w, mut tty) = at_terminal(cmd, work.path("mcw.log"));
    w.wait_log("DNS lookup failed", WAIT);
    tty.type_in(b"\x03");
    assert_eq!(w.wait_exit(WAIT), Some(0), "{}", w.log());
    assert!(!work.path("out.json").exists());
}

/// Ctrl-C reaches mcrouter twice (the terminal signals the whole foreground process group, and
/// mcw forwards its own copy): it shuts down gracefully and mcw exits with its 0.
#[test]
fn ctrl_c_stops_run_and_mcrouter() {
    with_each_mcrouter(|router| {
        let dns = DnsServer::start();
        let work = Workdir::new();
        let (mut w, mut tty) = run_at_terminal(router, &dns, &work);
        tty.type_in(b"\x03");
        assert_eq!(w.wait_exit(WAIT), Some(0), "{}", w.log());
        assert!(w.log().contains("mcrouter exited"), "{}", w.log());
    });
}

/// Closing the terminal (the kernel's SIGHUP to the session leader) ends mcw like SIGTERM;
/// a SIGHUP sent by a process (`kill -HUP`, `systemctl reload`) re-renders instead.
#[test]
fn closing_the_terminal_stops_watch_and_kill_hup_does_not() {
    let dns = DnsServer::start();
    dns.set_addrs("memcache.test", &["10.0.0.1"], 3600);
    let work = Workdir::new();
    let (mut w, tty) = watch_at_terminal(&work, &dns);
    w.wait_log("wrote config", WAIT);
    dns.set_addrs("memcache.test", &["10.0.0.2"], 3600);
    w.signal(libc::SIGHUP);
    wait_file_contains(&work.path("out.json"), "10.0.0.2:11211", WAIT);
    assert!(w.alive());
    drop(tty);
    assert_eq!(w.wait_exit(WAIT), Some(0), "{}", w.log());
    assert!(w.log().contains("terminal hung up"), "{}", w.log());
}

/// Closing the terminal under `mcw run` stops mcrouter gracefully (SIGTERM, not the SIGHUP
/// that would kill it) and mcw exits with mcrouter's 0.
#[test]
fn closing_the_terminal_stops_run_and_mcrouter_gracefully() {
    with_each_mcrouter(|router| {
        let dns = DnsServer::start();
        let work = Workdir::new();
        let (mut w, tty) = run_at_terminal(router, &dns, &work);
        drop(tty);
        assert_eq!(w.wait_exit(WAIT), Some(0), "{}", w.log());
        let log = w.log();
        assert!(log.contains("terminal hung up; stopping mcrouter"), "{log}");
    });
}
