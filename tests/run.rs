//! `mcw run` end to end: real child processes, real signals, real PID namespaces; tini and
//! dumb-init (from apt) as the yardstick.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

const WAIT: Duration = Duration::from_secs(10);
const STATIC: &str = r#"{"pools": {"a": {"servers": ["10.0.0.1:11211"]}}, "route": "PoolRoute|a"}"#;

fn child_py() -> String {
    fixture("child.py").display().to_string()
}

/// `mcw run` over the child that records each signal it gets in `work/signals.log`, with a
/// one-token template (memcache.test at 10.4.0.1, TTL `ttl`); returns the command and the log.
fn recorder(
    work: &Workdir,
    dns: &DnsServer,
    ttl: u32,
    extra: &[&str],
) -> (Command, std::path::PathBuf) {
    dns.set_addrs("memcache.test", &["10.4.0.1"], ttl);
    work.write("template.json", ONE_TOKEN);
    let log = work.path("signals.log");
    let child = child_py();
    let cmd = mcw_run(
        work,
        dns,
        extra,
        &["python3", &child, "record", log.to_str().unwrap()],
    );
    (cmd, log)
}

/// `mcw run` with a static template in `work`, and `command` after `--`.
fn mcw_run(work: &Workdir, dns: &DnsServer, extra: &[&str], command: &[&str]) -> Command {
    let mut cmd = work.mcw("run", dns);
    cmd.arg("--output")
        .arg(work.path("out.json"))
        .args(extra)
        .arg("--")
        .args(command);
    cmd
}

/// SIGRTMIN+3 as glibc numbers it.
fn rtmin_plus_3() -> i32 {
    libc::SIGRTMIN() + 3
}

fn status_of(cmd: &mut Command) -> Option<i32> {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd.status().unwrap().code()
}

#[test]
fn exit_codes_and_deaths_by_signal_propagate_like_tini_and_dumb_init() {
    let dns = DnsServer::start();
    let work = Workdir::new();
    work.write("template.json", STATIC);
    let rt_kill = format!("kill -{} $$", rtmin_plus_3());
    let cases = [
        ("exit 0", 0),
        ("exit 1", 1),
        ("exit 2", 2),
        ("exit 3", 3),
        ("exit 42", 42),
        ("exit 127", 127),
        ("exit 255", 255),
        ("kill -TERM $$", 143),
        ("kill -KILL $$", 137),
        // A real-time signal: nix's WaitStatus cannot hold one, the reaper must.
        (&rt_kill, 128 + rtmin_plus_3()),
    ];
    for (script, want) in cases {
        let mcw = status_of(&mut mcw_run(&work, &dns, &[], &["sh", "-c", script]));
        let tini = status_of(Command::new("tini").args(["-s", "--", "sh", "-c", script]));
        let dumb = status_of(Command::new("dumb-init").args(["sh", "-c", script]));
        assert_eq!(mcw, Some(want), "mcw, {script}");
        assert_eq!(
            (tini, dumb),
            (mcw, mcw),
            "tini/dumb-init disagree with mcw on {script}"
        );
    }
}

/// Regression: an overflowing duration was accepted, and `Instant + d` panicked later.
#[test]
fn absurd_durations_are_usage_errors() {
    let dns = DnsServer::start();
    let work = Workdir::new();
    work.write("template.json", STATIC);
    for (flag, value, want) in [
        ("--stop-timeout", "18446744073709551615s", "--stop-timeout"),
        (
            "--confirm-timeout",
            "25h",
            "--confirm-timeout 90000s is too long: at most 86400s",
        ),
        ("--confirm-timeout", "400d", "unknown unit"),
        ("--min-refresh", "0s", "too short"),
        ("--max-refresh", "100h", "too long"),
        // Regression: accepted, then a template without tokens failed with "timed out after
        // 0ns".
        (
            "--startup-timeout",
            "0s",
            "--startup-timeout 0ns is too short: at least 1ms",
        ),
    ] {
        let out = run(&mut mcw_run(&work, &dns, &[flag, value], &["true"]));
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        assert!(
            stderr(&out).contains(want),
            "{flag} {value}: {}",
            stderr(&out)
        );
    }
    assert!(!work.path("out.json").exists(), "nothing may start");
}

#[test]
fn a_command_that_cannot_start_gives_127_or_126() {
    let dns = DnsServer::start();
    let work = Workdir::new();
    work.write("template.json", STATIC);
    let out = run(&mut mcw_run(
        &work,
        &dns,
        &[],
        &["/nonexistent/mcrouter", "-p", "5000"],
    ));
    assert_eq!(out.status.code(), Some(127));
    assert!(
        stderr(&out).contains("cannot start \"/nonexistent/mcrouter\": not found"),
        "{}",
        stderr(&out)
    );
    let not_exec = work.write("not-exec", "#!/bin/sh\n");
    let out = run(&mut mcw_run(
        &work,
        &dns,
        &[],
        &[not_exec.to_str().unwrap()],
    ));
    assert_eq!(out.status.code(), Some(126));
    assert!(
        stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_config_is_written_before_the_child_starts_and_passed_with_f() {
    let dns = DnsServer::start();
    dns.set_addrs("memcache.test", &["10.4.0.1"], 3600);
    let work = Workdir::new();
    work.write("template.json", ONE_TOKEN);
    // The child prints its arguments and the file -f names.
    let script = r#"echo "args: $*"; cat "$2""#;
    let out = run(&mut mcw_run(&work, &dns, &[], &["sh", "-c", script, "sh"]));
    assert_eq!(out.status.code(), Some(0));
    let expect_path = std::fs::canonicalize(work.dir.path())
        .unwrap()
        .join("out.json");
    assert!(
        stdout(&out).starts_with(&format!("args: -f {}\n", expect_path.display())),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("\"10.4.0.1:11211\""),
        "child must see the rendered file"
    );
}

/// Every catchable signal reaches the child but those mcw gives a meaning of its own: SIGHUP
/// (re-render), SIGUSR1 (consumed: it would kill mcrouter), SIGUSR2 (restart), SIGTSTP
/// (stop both), SIGTTIN and SIGTTOU (left at their default, for mcw's own terminal use), and
/// SIGCHLD.
#[test]
fn every_catchable_signal_but_hup_reaches_the_child_and_hup_re_renders() {
    let dns = DnsServer::start();
    let work = Workdir::new();
    let (cmd, log) = recorder(&work, &dns, 3600, &[]);
    let mut w = Watcher::spawn(cmd, work.path("mcw.log"));
    wait_file_contains(&log, "ready", WAIT);

    // SIGHUP: consumed, re-resolves (the new address appears), never forwarded.
    dns.set_addrs("memcache.test", &["10.4.0.2"], 3600);
    w.signal(libc::SIGHUP);
    wait_file_contains(&work.path("out.json"), "10.4.0.2:11211", WAIT);

    // Each forwardable signal, one at a time, confirmed before the next.
    let skip = [
        libc::SIGKILL,
        libc::SIGSTOP,
        libc::SIGCHLD,
        libc::SIGHUP,
        libc::SIGILL,
        libc::SIGFPE,
        libc::SIGSEGV,
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
    ];
    for sig in 1..=31 {
        if skip.contains(&sig) {
            continue;
        }
        w.signal(sig);
        wait_file_contains(&log, &format!("\n{sig}\n"), WAIT);
    }
    // SIGUSR1 is consumed: a forwarded signal sent after it arrives, it does not.
    w.signal(libc::SIGUSR1);
    w.signal(rtmin_plus_3());
    wait_file_contains(&log, &format!("\n{}\n", rtmin_plus_3()), WAIT);
    w.wait_log("signal=SIGUSR1", WAIT);
    w.signal(libc::SIGTERM);
    assert_eq!(w.wait_exit(WAIT), Some(0));
    let got = std::fs::read_to_string(&log).unwrap();
    assert!(
        !got.lines().any(|l| l == "1"),
        "SIGHUP reached the child: {got}"
    );
    assert!(
        !got.lines().any(|l| l == libc::SIGUSR1.to_string()),
        "SIGUSR1 reached the child: {got}"
    );
    assert!(
        got.lines().any(|l| l == "15"),
        "SIGTERM was not forwarded: {got}"
    );
}

#[test]
fn a_real_time_signal_reaches_the_child() {
    let dns = DnsServer::start();
    let work = Workdir::new();
    let (cmd, log) = recorder(&work, &dns, 3600, &[]);
    let mut w = Watcher::spawn(cmd, work.path("mcw.log"));
    wait_file_contains(&log, "ready", WAIT);
    w.signal(rtmin_plus_3());
    wait_file_contains(&log, &format!("\n{}\n", rtmin_plus_3()), WAIT);
    w.signal(libc::SIGTERM);
    assert_eq!(w.wait_exit(WAIT), Some(0));
}

/// A SIGPIPE the kernel raises for mcw's own write (its stderr reader is gone) neither kills
/// mcw nor reaches mcrouter; one that another process sends is forwarded, as tini does.
#[test]
fn sigpipe_from_mcws_own_write_stays_with_mcw_and_kill_pipe_is_forwarded() {
    let dns = DnsServer::start();
    let work = Workdir::new();
    let (mut cmd, log) = recorder(&work, &dns, 1, &["--min-refresh", "100ms"]);
    let mut child = cmd
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn mcw");
    drop(child.stderr.take());
    let mut mcw = Daemon(child);
    wait_file_contains(&log, "ready", WAIT);
    // Each change makes mcw log to its dead stderr, and the kernel raises SIGPIPE for it.
    let out = work.path("out.json");
    for ip in ["10.4.0.2", "10.4.0.3"] {
        dns.set_addrs("memcache.test", &[ip], 1);
        wait_file_contains(&out, &format!("{ip}:11211"), WAIT);
    }
    assert!(mcw.0.try_wait().unwrap().is_none(), "mcw died");
    let pipe = format!("\n{}\n", libc::SIGPIPE);
    // SIGWINCH after the writes: once it has arrived, any forwarded SIGPIPE would have too.
    mcw::supervise::signals::send(mcw.0.id() as i32, libc::SIGWINCH).unwrap();
    wait_file_contains(&log, &format!("\n{}\n", libc::SIGWINCH), WAIT);
    assert!(
        !std::fs::read_to_string(&log).unwrap().contains(&pipe),
        "mcw forwarded the SIGPIPE of its own write"
    );
    mcw::supervise::signals::send(mcw.0.id() as i32, libc::SIGPIPE).unwrap();
    wait_file_contains(&log, &pipe, WAIT);
    mcw::supervise::signals::send(mcw.0.id() as i32, libc::SIGTERM).unwrap();
    wait_for("mcw to exit", WAIT, || {
        mcw.0
            .try_wait()
            .unwrap()
            .is_some_and(|s| s.code() == Some(0))
    });
}

#[test]
fn the_stop_timeout_escalates_to_sigkill() {
    let dns = DnsServer::start();
    let work = Workdir::new();
    work.write("template.json", STATIC);
    let ready = work.path("ready");
    let cmd = mcw_run(
        &work,
        &dns,
        &["--stop-timeout", "300ms"],
        &[
            "python3",
            &child_py(),
            "ignore-term",
            ready.to_str().unwrap(),
        ],
    );
    let mut w = Watcher::spawn(cmd, work.path("mcw.log"));
    wait_for("child ready", WAIT, || ready.exists());
    w.signal(libc::SIGTERM);
    assert_eq!(w.wait_exit(WAIT), Some(137));
    w.wait_log("stop timeout passed; sending SIGKILL", WAIT);
}

/// Zombie children of `pid`, from /proc.
fn zombies_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) else {
            continue;
        };
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
        };
        if field("PPid:").as_deref() == Some(&pid.to_string())
            && field("State:").is_some_and(|s| s.starts_with('Z'))
        {
            out.push(p);
        }
    }
    out
}

/// Every child of `pid` (any of its threads' children), alive or zombie, from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
    {
        let list = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        out.extend(
            list.split_whitespace()
                .filter_map(|p| p.parse::<u32>().ok()),
        );
    }
    out
}

fn orphans_are_reaped(w: &mut Watcher, mcw_pid: u32, dir: &Path, expect_parent: &str) {
    for n in 0..5 {
        let report = dir.join(n.to_string());
        // Each grandchild saw mcw (or PID 1 inside the namespace) as its new parent.
        wait_for("an orphan to report", WAIT, || {
            std::fs::read_to_string(&report).is_ok_and(|s| !s.is_empty())
        });
        assert_eq!(std::fs::read_to_string(&report).unwrap(), expect_parent);
    }
    // Reaped means gone: the orphans were mcw's children once they reported, so once none is
    // left (alive or zombie), only mcrouter's stand-in, the python child, remains.
    wait_for("every orphan reaped", WAIT, || {
        children_of(mcw_pid).len() == 1
    });
    assert!(zombies_of(mcw_pid).is_empty());
    assert!(w.alive(), "mcw must outlive the orphans");
    mcw::supervise::signals::send(mcw_pid as i32, libc::SIGTERM).expect("kill");
}

/// `mcw run` whose child leaves five orphans that report into `work/orphans`.
fn orphan_maker(work: &Workdir, dns: &DnsServer) -> (Command, std::path::PathBuf) {
    work.write("template.json", STATIC);
    let dir = work.path("orphans");
    std::fs::create_dir(&dir).unwrap();
    let child = child_py();
    let cmd = mcw_run(
        work,
        dns,
        &[],
        &["python3", &child, "orphans", dir.to_str().unwrap(), "5"],
    );
    (cmd, dir)
}

#[test]
fn orphans_are_reaped_as_a_subreaper() {
    let dns = DnsServer::start();
    let work = Workdir::new();
    let (cmd, dir) = orphan_maker(&work, &dns);
    let mut w = Watcher::spawn(cmd, work.path("mcw.log"));
    let pid = w.pid() as u32;
    orphans_are_reaped(&mut w, pid, &dir, &pid.to_string());
    assert_eq!(w.wait_exit(WAIT), Some(0));
}

#[test]
fn orphans_are_reaped_as_pid_1_like_tini_and_dumb_init() {
    let dns = DnsServer::start();
    let work = Workdir::new();
    let (mcw_run, dir) = orphan_maker(&work, &dns);
    let child = child_py();
    let orphans = ["python3", &child, "orphans", dir.to_str().unwrap(), "5"];
    let mut tini = Command::new("tini");
    tini.arg("--").args(orphans);
    let mut dumb_init = Command::new("dumb-init");
    dumb_init.args(orphans);
    for (name, init) in [("mcw", mcw_run), ("tini", tini), ("dumb-init", dumb_init)] {
        for n in 0..5 {
            let _ = std::fs::remove_file(dir.join(n.to_string()));
        }
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
            .arg(init.get_program())
            .args(init.get_args());
        for (k, v) in init.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        let mut w = Watcher::spawn(cmd, work.path(&format!("{name}.log")));
        // The init is unshare's only child; in the namespace it is PID 1.
        let unshare = w.pid() as u32;
        let mut pid1 = 0;
        wait_for("the init inside the namespace", WAIT, || {
            pid1 = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
                .ok()
                .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
                .unwrap_or(0);
            pid1 != 0
        });
        orphans_are_reaped(&mut w, pid1, &dir, "1");
        assert_eq!(w.wait_exit(WAIT), Some(0), "{name}");
    }
}

#[test]
fn refused_arguments_and_routing_prefixes_exit_2_before_anything_starts() {
    let dns = DnsServer::start();
    let work = Workdir::new();
    work.write(
        "template.json",
        r#"{"pools": {"a": {"servers": ["10.0.0.1:11211"]}},
            "routes": [{"aliases": ["/datacenter/cluster0/"], "route": "PoolRoute|a"},
                       {"aliases": ["/datacenter/cluster1/"], "route": "PoolRoute|a"}]}"#,
    );
    let marker = work.path("started");
    let touch = format!("touch {}", marker.display());
    let cases: &[(&[&str], &str)] = &[
        (
            &["mcrouter", "-p", "5000", "-f", "/x.json"],
            "mcw passes the rendered config itself with -f",
        ),
        (&["mcrouter", "-f/x.json"], "\"-f/x.json\" is refused"),
        (
            &["mcrouter", "--config-file=/x.json"],
            "\"--config-file=/x.json\" is refused",
        ),
        (
            &["mcrouter", "--config-f", "/x.json"],
            "it abbreviates --config-file",
        ),
        (
            &["mcrouter", "--config", "file:/x.json"],
            "\"--config\" is refused",
        ),
        (
            &["mcrouter", "--config-str={}"],
            "inline config never reloads",
        ),
        (
            &["mcrouter", "--validate-config=exit"],
            "use mcw's --validate",
        ),
        (
            &["mcrouter", "--disable-reload-configs"],
            "would never load",
        ),
        (
            &["mcrouter", "--constantly-reload-configs"],
            "reloads it on its own",
        ),
        (
            &["mcrouter", "-p", "5000", "flavor.json"],
            "flavor (options) file",
        ),
        (
            &["mcrouter", "-R", "/datacenter/cluster2/"],
            "matches no alias",
        ),
        (&["mcrouter", "-R", "/a/"], "is not /region/cluster/"),
        // Regression: accepted, and the -f mcw appends became a positional after it.
        (
            &[
                "mcrouter",
                "-p",
                "5000",
                "-R",
                "/datacenter/cluster0/",
                "--",
            ],
            "end with --",
        ),
        (&["mcrouter"], "routing prefix \"/././\" matches no alias"),
    ];
    for (command, want) in cases {
        // A fake mcrouter that would leave a trace if it ever ran.
        let bin = work.path("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let fake = bin.join("mcrouter");
        std::fs::write(&fake, format!("#!/bin/sh\n{touch}\n")).unwrap();
        std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut cmd = mcw_run(&work, &dns, &[], command);
        cmd.env(
            "PATH",
            format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
        );
        let out = run(&mut cmd);
        assert_eq!(out.status.code(), Some(2), "{command:?}");
        assert!(
            stderr(&out).contains(want),
            "{command:?}: {want:?} not in {}",
            stderr(&out)
        );
        assert!(!marker.exists(), "{command:?} started the child");
    }
    // Accepted: a matching prefix, and the same one written without slashes.
    for prefix in ["/datacenter/cluster0/", "datacenter/cluster0"] {
        let mut cmd = mcw_run(&work, &dns, &[], &["mcrouter", "-p", "5000", "-R", prefix]);
        cmd.env(
            "PATH",
            format!(
                "{}:{}",
                work.path("bin").display(),
                std::env::var("PATH").unwrap()
            ),
        );
        assert_eq!(run(&mut cmd).status.code(), Some(0), "{prefix}");
        assert!(marker.exists(), "{prefix}: the child never ran");
        std::fs::remove_file(&marker).unwrap();
    }
}

#[test]
fn a_wrapper_without_mcrouter_is_run_unvetted_with_a_warning() {
    let dns = DnsServer::start();
    let work = Workdir::new();
    work.write("template.json", STATIC);
    let out = run(&mut mcw_run(
        &work,
        &dns,
        &[],
        &["sh", "-c", "exit 0", "-f", "positional"],
    ));
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("no word of the command is named mcrouter"),
        "{}",
        stderr(&out)
    );
}

/// `--help` tells an operator what each signal does and when mcrouter counts as ready, without
/// the README at hand.
#[test]
fn help_says_what_signals_and_readiness_mean() {
    for (sub, wants) in [
        (
            "watch",
            &[
                "Ctrl-C",
                "SIGHUP of a closed terminal",
                "systemctl reload",
                "re-read the template",
            ][..],
        ),
        (
            "run",
            &[
                "Ctrl-C",
                "SIGHUP of a closed terminal",
                "mcrouter is sent one SIGTERM",
                "SIGHUP from a process",
                "not forwarded",
                "not reloaded yet",
                "config_failures grew",
            ][..],
        ),
    ] {
        let out = mcw().args([sub, "--help"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let help = String::from_utf8_lossy(&out.stdout);
        for want in wants {
            assert!(
                help.contains(want),
                "mcw {sub} --help lacks {want:?}:\n{help}"
            );
        }
    }
}
