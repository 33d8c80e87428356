//! Benchmarks of `mcw run` (release build), beside the child alone, `tini` and `dumb-init`:
//! (a) start-up: time from spawning `mcw run -- echo` (a local template, no DNS tokens) until
//!     the child's first line arrives (target < 20 ms); and the whole round trip of
//!     `mcw run -- true`, exit included;
//! (b) signal forwarding: SIGWINCH sent to the launcher until the child reports it on a pipe,
//!     p50/p99 over 200 signals (target p99 < 5 ms). (Not SIGUSR1: mcw consumes that one, as
//!     it would kill mcrouter.)
//! Run with `cargo bench --bench run` (tini and dumb-init from apt).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

mod common;

use common::{ms, pct};

const CHILD: &str = r#"
import os, signal, sys
signal.signal(signal.SIGWINCH, lambda *_: (sys.stdout.write("u\n"), sys.stdout.flush()))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
sys.stdout.write("ready\n"); sys.stdout.flush()
while True:
    signal.pause()
"#;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("template.json");
    std::fs::write(
        &template,
        r#"{"pools": {"a": {"servers": ["10.0.0.1:11211"]}}, "route": "PoolRoute|a"}"#,
    )
    .unwrap();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let mcw_run = [
        env!("CARGO_BIN_EXE_mcw").to_string(),
        "run".into(),
        "--template".into(),
        path(&template),
        "--output".into(),
        path(&dir.path().join("out.json")),
        "--dns-server".into(),
        "127.0.0.1:9".into(),
        "--resolv-conf".into(),
        "/dev/null".into(),
        "--".into(),
    ];
    // The launchers side by side, as the words before the child's command line: none, mcw,
    // and the two init shims mcw is often compared with (tini as a subreaper, since it is not
    // PID 1 here).
    let launchers: [(&str, Vec<String>); 4] = [
        ("child alone", vec![]),
        ("mcw run", mcw_run.to_vec()),
        ("tini -s", vec!["tini".into(), "-s".into(), "--".into()]),
        ("dumb-init", vec!["dumb-init".into()]),
    ];
    let launch = |before: &[String], argv: &[&str]| {
        let mut words = before
            .iter()
            .map(String::as_str)
            .chain(argv.iter().copied());
        let mut cmd = Command::new(words.next().unwrap());
        cmd.args(words).env("MCW_LOG", "error");
        cmd
    };
    let runs = 50;
    println!(
        "| launcher | start-up to the child's first line, p50 / max | start-up and exit (`true`), p50 / max | SIGWINCH to the launcher until the child reports it (200), p50 / p99 |"
    );
    println!("|---|---|---|---|");
    for (name, before) in launchers {
        let launch = |argv: &[&str]| launch(&before, argv);
        let mut to_child: Vec<Duration> =
            (0..runs).map(|_| first_line(launch(&["echo"]))).collect();
        let mut round_trip: Vec<Duration> = (0..runs)
            .map(|_| {
                let start = Instant::now();
                assert!(launch(&["true"]).status().unwrap().success());
                start.elapsed()
            })
            .collect();
        to_child.sort();
        round_trip.sort();
        let (p50, p99) = forwarding(launch(&["python3", "-c", CHILD]));
        println!(
            "| {name} | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {:.3} / {:.3} ms |",
            ms(pct(&to_child, 50)),
            ms(to_child[runs - 1]),
            ms(pct(&round_trip, 50)),
            ms(round_trip[runs - 1]),
            ms(p50),
            ms(p99)
        );
    }
}

/// Time from spawning `cmd` until a line arrives on its stdout.
fn first_line(mut cmd: Command) -> Duration {
    let start = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let elapsed = start.elapsed();
    assert!(child.wait().unwrap().success());
    elapsed
}

/// Send SIGWINCH to the spawned process 200 times; return p50 and p99 until the child says so.
fn forwarding(mut cmd: Command) -> (Duration, Duration) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let pid = Pid::from_raw(child.id() as i32);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let mut lat = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        kill(pid, Signal::SIGWINCH).unwrap();
        assert_eq!(lines.next().unwrap().unwrap(), "u");
        lat.push(start.elapsed());
    }
    kill(pid, Signal::SIGTERM).unwrap();
    let _ = child.wait();
    lat.sort();
    (lat[100], lat[197])
}
