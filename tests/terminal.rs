//! mcw at a real terminal: a pseudo-terminal the test opens, with mcw as the session leader and
//! the terminal as its controlling one (`setsid --ctty`), as in a shell, `tmux` or
//! `docker run -it`. Ctrl-C is the byte 0x03 typed into the terminal, and closing the
//! terminal is closing its master side: the kernel then sends SIGINT or SIGHUP itself
//! (`si_code` SI_KERNEL), which kill(2) cannot imitate.

mod common;

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::Path;
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

/// An interactive bash at a fresh pseudo-terminal, as in a terminal window: bash is the
/// session leader and the terminal's controlling process, and runs what is typed as
/// foreground jobs in process groups of their own. `stty tostop` is on, so a background
/// process that writes to the terminal stops.
struct Shell {
    bash: std::process::Child,
    tty: Terminal,
}

impl Shell {
    fn start() -> Shell {
        use nix::fcntl::OFlag;
        use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
        let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC).unwrap();
        grantpt(&master).unwrap();
        unlockpt(&master).unwrap();
        let open_slave = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(ptsname_r(&master).unwrap())
                .unwrap()
        };
        let bash = Command::new("setsid")
            .args(["--ctty", "bash", "--norc", "--noprofile", "-i"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TERM", "dumb")
            .env("PS1", "$ ")
            .stdin(Stdio::from(open_slave()))
            .stdout(Stdio::from(open_slave()))
            .stderr(Stdio::from(open_slave()))
            .spawn()
            .unwrap();
        // What the terminal prints (prompts, echoed lines) is never read: it is little, and
        // the master must stay the only descriptor, so that dropping it closes the window.
        let master = std::fs::File::from(OwnedFd::from(master));
        let mut shell = Shell {
            bash,
            tty: Terminal { master },
        };
        shell.type_line("stty tostop");
        shell
    }

    fn type_line(&mut self, line: &str) {
        self.tty.type_in(format!("{line}\n").as_bytes());
    }
}

impl Drop for Shell {
    fn drop(&mut self) {
        let _ = self.bash.kill();
        let _ = self.bash.wait();
    }
}

/// The line `router` logs once when it shuts down gracefully.
fn graceful_line(router: &Mcrouter) -> &'static str {
    match router.is_real() {
        true => "Started server shutdown",
        false => "mcrouter-standin: shutting down",
    }
}

/// `mcw run -- mcrouter …` typed into `shell`, its stderr (and mcrouter's, which passes
/// through it) to `work/mcw.log`; once mcrouter runs the first config, the pids of mcw and
/// mcrouter.
fn run_in_shell(
    shell: &mut Shell,
    router: &Mcrouter,
    dns: &DnsServer,
    work: &Workdir,
) -> (i32, i32) {
    dns.set_addrs("memcache.test", &["127.0.0.1"], 3600);
    work.write("template.json", ONE_TOKEN);
    let port = free_port();
    let mut words = vec![
        "MCW_LOG=info".to_string(),
        env!("CARGO_BIN_EXE_mcw").into(),
        "run".into(),
        "--template".into(),
        work.path("template.json").display().to_string(),
        "--resolv-conf".into(),
        work.path("resolv.conf").display().to_string(),
        "--dns-server".into(),
        dns.arg(),
        "--output".into(),
        work.path("out.json").display().to_string(),
        "--".into(),
        router.path().display().to_string(),
        "-p".into(),
        port.to_string(),
        "--listen-addresses=127.0.0.1".into(),
    ];
    words.extend(router.isolation(work.dir.path()));
    words.push(format!("2>{}", work.path("mcw.log").display()));
    shell.type_line(&words.join(" "));
    let log = || std::fs::read_to_string(work.path("mcw.log")).unwrap_or_default();
    wait_for("mcrouter runs the first config", WAIT, || {
        log().contains("mcrouter runs the new config")
    });
    let mcrouter = log()
        .lines()
        .find(|l| l.contains("started mcrouter"))
        .and_then(|l| l.split("pid=").nth(1))
        .and_then(|p| p.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    let mcw = std::fs::read_to_string(format!("/proc/{mcrouter}/stat"))
        .unwrap()
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|ppid| ppid.parse().ok())
        .unwrap();
    (mcw, mcrouter)
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// The state letter of `pid` (`R`, `S`, `T` stopped, …).
fn state(pid: i32) -> char {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(')').next()?.trim_start().chars().next())
        .unwrap_or('?')
}

/// mcrouter shut down gracefully, once, and mcw and mcrouter are both gone.
fn ended_gracefully(router: &Mcrouter, work: &Workdir, mcw: i32, mcrouter: i32) {
    let log = || std::fs::read_to_string(work.path("mcw.log")).unwrap_or_default();
    wait_for("mcw and mcrouter to end", WAIT, || {
        !alive(mcw) && !alive(mcrouter)
    });
    let log = log();
    assert_eq!(
        log.matches(graceful_line(router)).count(),
        1,
        "mcrouter's graceful shutdown, once:\n{log}"
    );
    assert!(
        log.contains(&format!("mcrouter exited pid={mcrouter} exit_code=0")),
        "{log}"
    );
}

/// Regression: mcrouter shared mcw's process group, so Ctrl-C at an interactive shell reached
/// it twice (the terminal's and mcw's copy). Now it runs in a group of its own: the terminal's
/// SIGINT reaches mcw only, which forwards it once. The child records every signal it gets.
#[test]
fn ctrl_c_at_an_interactive_shell_reaches_mcrouter_once() {
    let dns = DnsServer::start();
    dns.set_addrs("memcache.test", &["10.0.0.1"], 3600);
    let work = Workdir::new();
    work.write("template.json", ONE_TOKEN);
    let got = work.path("signals.log");
    let child = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/child.py");
    let mut shell = Shell::start();
    shell.type_line(&format!(
        "MCW_LOG=info {} run --template {} --resolv-conf {} --dns-server {} --output {} -- python3 {} record {} 2>{}",
        env!("CARGO_BIN_EXE_mcw"),
        work.path("template.json").display(),
        work.path("resolv.conf").display(),
        dns.arg(),
        work.path("out.json").display(),
        child.display(),
        got.display(),
        work.path("mcw.log").display(),
    ));
    wait_file_contains(&got, "ready", WAIT);
    shell.tty.type_in(b"\x03");
    wait_for("mcw to end", WAIT, || {
        std::fs::read_to_string(work.path("mcw.log")).is_ok_and(|l| l.contains("mcrouter exited"))
    });
    let signals = std::fs::read_to_string(&got).unwrap();
    let sigint = libc::SIGINT.to_string();
    assert_eq!(
        signals.lines().filter(|l| *l == sigint).count(),
        1,
        "SIGINT reached the child more than once: {signals:?}"
    );
}

/// Ctrl-C typed at an interactive shell (not `setsid`) running `mcw run` as a foreground job:
/// mcrouter shuts down gracefully, once, and nothing is left running.
#[test]
fn ctrl_c_at_an_interactive_shell_stops_mcrouter_gracefully() {
    with_each_mcrouter(|router| {
        let dns = DnsServer::start();
        let work = Workdir::new();
        let mut shell = Shell::start();
        let (mcw, mcrouter) = run_in_shell(&mut shell, router, &dns, &work);
        shell.tty.type_in(b"\x03");
        ended_gracefully(router, &work, mcw, mcrouter);
    });
}

/// Regression: closing the terminal window makes the shell send SIGHUP to its job's process
/// group, which held mcrouter too: mcrouter died of it (exit 129) and mcw took the shell's
/// SIGHUP for `kill -HUP`. Now mcrouter is out of the job, and mcw, finding its terminal gone,
/// stops mcrouter with SIGTERM: it shuts down gracefully, and nothing is left running.
#[test]
fn closing_the_window_of_an_interactive_shell_stops_mcrouter_gracefully() {
    with_each_mcrouter(|router| {
        let dns = DnsServer::start();
        let work = Workdir::new();
        let mut shell = Shell::start();
        let (mcw, mcrouter) = run_in_shell(&mut shell, router, &dns, &work);
        // Closing the window: the terminal's master side goes away.
        let Shell { bash, tty } = &mut shell;
        drop(std::mem::replace(
            tty,
            Terminal {
                master: std::fs::File::open("/dev/null").unwrap(),
            },
        ));
        ended_gracefully(router, &work, mcw, mcrouter);
        let log = std::fs::read_to_string(work.path("mcw.log")).unwrap();
        // The shell's SIGHUP and then the kernel's: one SIGTERM for mcrouter.
        assert_eq!(
            log.matches("terminal hung up; stopping mcrouter").count(),
            1,
            "{log}"
        );
        let _ = bash.wait();
    });
}

/// Ctrl-Z stops mcrouter and mcw, as a job (the shell gets its prompt back); `fg` resumes
/// both. mcrouter, in a background process group with `stty tostop` on, is not stopped by
/// its own output meanwhile (it writes its log to mcw, not to the terminal).
#[test]
fn ctrl_z_stops_the_job_and_fg_resumes_it() {
    with_each_mcrouter(|router| {
        let dns = DnsServer::start();
        let work = Workdir::new();
        let mut shell = Shell::start();
        let (mcw, mcrouter) = run_in_shell(&mut shell, router, &dns, &work);
        // A reload makes mcrouter log: still running, not stopped by the terminal.
        dns.set_addrs("memcache.test", &["127.0.0.2"], 3600);
        mcw::supervise::signals::send(mcw, libc::SIGHUP).unwrap();
        wait_for("the reload confirmed", WAIT, || {
            std::fs::read_to_string(work.path("mcw.log"))
                .is_ok_and(|l| l.matches("mcrouter runs the new config").count() == 2)
        });
        assert_ne!(state(mcrouter), 'T', "mcrouter stopped on terminal output");
        shell.tty.type_in(b"\x1a");
        wait_for("mcw and mcrouter stopped", WAIT, || {
            state(mcw) == 'T' && state(mcrouter) == 'T'
        });
        shell.type_line("fg");
        wait_for("mcw and mcrouter running again", WAIT, || {
            state(mcw) != 'T' && state(mcrouter) != 'T'
        });
        shell.tty.type_in(b"\x03");
        ended_gracefully(router, &work, mcw, mcrouter);
    });
}
