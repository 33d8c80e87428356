//! Benchmarks of `mcw run` (release build):
//! (a) start-up: time from spawning `mcw run -- echo` (a local template, no DNS tokens) until
//!     the child's first line arrives (target < 20 ms), next to `echo` alone; and the whole
//!     round trip of `mcw run -- true`, exit included, next to `true` alone;
//! (b) signal forwarding: SIGUSR1 sent to mcw until the child reports it on a pipe, p50/p99
//!     over 200 signals (target p99 < 5 ms), next to the same child signalled directly.
//! Run with `cargo bench --bench run`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const CHILD: &str = r#"
import os, signal, sys
signal.signal(signal.SIGUSR1, lambda *_: (sys.stdout.write("u\n"), sys.stdout.flush()))
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
    let mcw = |extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcw"));
        cmd.arg("run")
            .arg("--template")
            .arg(&template)
            .arg("--output")
            .arg(dir.path().join("out.json"))
            .args(["--dns-server", "127.0.0.1:9", "--resolv-conf", "/dev/null"])
            .arg("--")
            .args(extra)
            .env("MCW_LOG", "error");
        cmd
    };

    let runs = 50;
    let time = |cmd: &mut Command| {
        let start = Instant::now();
        assert!(cmd.status().unwrap().success());
        start.elapsed()
    };
    let mut with_mcw: Vec<Duration> = (0..runs).map(|_| time(&mut mcw(&["true"]))).collect();
    let mut direct: Vec<Duration> = (0..runs).map(|_| time(&mut Command::new("true"))).collect();
    with_mcw.sort();
    direct.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "start-up and exit, `mcw run -- true` ({runs} runs): p50 {:.2} ms, max {:.2} ms; `true` alone p50 {:.2} ms",
        ms(with_mcw[runs / 2]),
        ms(with_mcw[runs - 1]),
        ms(direct[runs / 2])
    );
    // Start-up proper: from spawning mcw until the child it starts has printed a line.
    let mut to_child: Vec<Duration> = (0..runs).map(|_| first_line(mcw(&["echo"]))).collect();
    let mut echo: Vec<Duration> = (0..runs)
        .map(|_| first_line(Command::new("echo")))
        .collect();
    to_child.sort();
    echo.sort();
    println!(
        "start-up to the child's first output, `mcw run -- echo` ({runs} runs): p50 {:.2} ms, max {:.2} ms; `echo` alone p50 {:.2} ms",
        ms(to_child[runs / 2]),
        ms(to_child[runs - 1]),
        ms(echo[runs / 2])
    );

    let through = forwarding(mcw(&["python3", "-c", CHILD]));
    let mut plain = Command::new("python3");
    plain.args(["-c", CHILD]);
    let alone = forwarding(plain);
    println!(
        "signal forwarding, 200 x SIGUSR1: via mcw p50 {:.3} ms, p99 {:.3} ms; child signalled directly p50 {:.3} ms, p99 {:.3} ms",
        ms(through.0),
        ms(through.1),
        ms(alone.0),
        ms(alone.1)
    );
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

/// Send SIGUSR1 to the spawned process 200 times; return p50 and p99 until the child says so.
fn forwarding(mut cmd: Command) -> (Duration, Duration) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let pid = Pid::from_raw(child.id() as i32);
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let mut lat = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        kill(pid, Signal::SIGUSR1).unwrap();
        assert_eq!(lines.next().unwrap().unwrap(), "u");
        lat.push(start.elapsed());
    }
    kill(pid, Signal::SIGTERM).unwrap();
    let _ = child.wait();
    lat.sort();
    (lat[100], lat[197])
}
