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
    work.write(
        "template.json",
        r#"{"pools": {"a": {"servers": ["dns://memcache.test"]}}, "route": "PoolRoute|a"}"#,
    );
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

#[test]
fn every_catchable_signal_but_hup_reaches_the_child_and_hup_re_renders() {
    let dns = DnsServer::start();
    dns.set_addrs("memcache.test", &["10.4.0.1"], 3600);
    let work = Workdir::new();
    work.write(
        "template.json",
        r#"{"pools": {"a": {"servers": ["dns://memcache.test"]}}, "route": "PoolRoute|a"}"#,
    );
    let log = work.path("signals.log");
    let cmd = mcw_run(
        &work,
        &dns,
        &[],
        &["python3", &child_py(), "record", log.to_str().unwrap()],
    );
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
    ];
    for sig in 1..=31 {
        if skip.contains(&sig) {
            continue;
        }
        w.signal(sig);
        wait_file_contains(&log, &format!("\n{sig}\n"), WAIT);
    }
    w.signal(libc::SIGTERM);
    assert_eq!(w.wait_exit(WAIT), Some(0));
    let got = std::fs::read_to_string(&log).unwrap();
    assert!(
        !got.lines().any(|l| l == "1"),
        "SIGHUP reached the child: {got}"
    );
    assert!(
        got.lines().any(|l| l == "15"),
        "SIGTERM was not forwarded: {got}"
    );
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

fn orphans_are_reaped(w: &mut Watcher, mcw_pid: u32, dir: &Path, expect_parent: &str) {
    for n in 0..5 {
        wait_for("grandchild to finish", WAIT, || {
            dir.join(n.to_string()).exists()
        });
        // Each grandchild saw mcw (or PID 1 inside the namespace) as its new parent.
        wait_for("parent pid written", WAIT, || {
            std::fs::read_to_string(dir.join(n.to_string())).is_ok_and(|s| !s.is_empty())
        });
        assert_eq!(
            std::fs::read_to_string(dir.join(n.to_string())).unwrap(),
            expect_parent
        );
    }
    wait_for("no zombies left", WAIT, || zombies_of(mcw_pid).is_empty());
    assert!(w.alive(), "mcw must outlive the orphans");
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(mcw_pid as i32, libc::SIGTERM) }, 0);
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
