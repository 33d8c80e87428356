//! The stand-in behaves as the README's account of mcrouter says mcrouter does.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// Ports below the kernel's ephemeral range: a port from `:0` can be handed to a client
// socket (even this test's own connect) before the server binds it.
#[path = "../../common/ports.rs"]
mod ports;
use ports::free_port;

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn memcached() -> (Proc, u16) {
    let port = free_port();
    let child = Command::new("memcached")
        .args([
            "-U",
            "0",
            "-l",
            "127.0.0.1",
            "-u",
            "root",
            "-m",
            "16",
            "-p",
            &port.to_string(),
        ])
        .spawn()
        .expect("memcached (apt-get install memcached)");
    wait_for("memcached", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (Proc(child), port)
}

fn standin(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcrouter"));
    cmd.args(args).stderr(Stdio::null());
    // Signals the test runner ignores (under nohup, SIGHUP) would stay ignored across exec,
    // as they would for mcrouter; the signal tests need mcrouter's own dispositions.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGTERM, libc::SIGUSR1] {
                libc::signal(sig, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    cmd
}

/// Start the stand-in on a free port with `config`; returns it and the port.
fn start(config: &Path, extra: &[&str]) -> (Proc, u16) {
    let port = free_port();
    let p = port.to_string();
    let mut args = vec![
        "-p",
        &p,
        "--listen-addresses=127.0.0.1",
        "--reconfiguration-delay-ms=30",
        "-f",
        config.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let child = standin(&args).spawn().unwrap();
    wait_for("the stand-in to listen", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (Proc(child), port)
}

/// Send one command, read the reply up to END (or one line for storage commands).
fn ask(port: u16, command: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(command.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    let mut reply = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap() == 0 {
            return reply;
        }
        reply += &line;
        let first = command.split_whitespace().next().unwrap();
        if line == "END\r\n" || !matches!(first, "get" | "stats") {
            return reply;
        }
    }
}

fn md5_of(port: u16) -> String {
    let reply = ask(port, "get __mcrouter__.config_md5_digest\r\n");
    reply.lines().nth(1).unwrap_or_default().to_string()
}

fn stat(port: u16, name: &str) -> u64 {
    ask(port, "stats detailed\r\n")
        .lines()
        .find_map(|l| l.strip_prefix(&format!("STAT {name} ")))
        .unwrap()
        .parse()
        .unwrap()
}

/// Wait until the reload thread has checked its watch five more times: whatever an event
/// would have triggered has had its chance.
fn quiet_polls(port: u16) {
    let start = stat(port, "reload_polls");
    wait_for("five more reload polls", || {
        stat(port, "reload_polls") >= start + 5
    });
}

fn md5_hex(b: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(b).iter().map(|x| format!("{x:02x}")).collect()
}

fn config(ports: &[u16]) -> String {
    let servers: Vec<String> = ports.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    format!(
        "{{\"pools\": {{\"a\": {{\"servers\": [{}]}}}}, \"route\": \"PoolRoute|a\"}}\n",
        servers.join(",")
    )
}

fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn a_rename_over_triggers_exactly_one_reload() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.json");
    std::fs::write(&path, config(&[1])).unwrap();
    let (_p, port) = start(&path, &[]);
    assert_eq!(md5_of(port), md5_hex(config(&[1]).as_bytes()));
    let before = stat(port, "config_full_attempt");
    replace(&path, &config(&[2]));
    wait_for("the reload", || {
        md5_of(port) == md5_hex(config(&[2]).as_bytes())
    });
    quiet_polls(port);
    assert_eq!(stat(port, "config_full_attempt"), before + 1);
}

#[test]
fn a_rejected_config_keeps_the_old_one_and_is_retried_only_on_a_new_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.json");
    std::fs::write(&path, config(&[1])).unwrap();
    let (_p, port) = start(&path, &[]);
    let good = md5_of(port);
    replace(&path, "{\"route\": \"PoolRoute|missing\"}\n");
    wait_for("the failure", || stat(port, "config_failures") == 1);
    quiet_polls(port);
    assert_eq!(
        stat(port, "config_failures"),
        1,
        "no retry without an event"
    );
    assert_eq!(md5_of(port), good);
    // The same bad bytes again, by rename: a new event, a new attempt.
    replace(&path, "{\"route\": \"PoolRoute|missing\"}\n");
    wait_for("the retry", || stat(port, "config_failures") == 2);
    replace(&path, &config(&[3]));
    wait_for("recovery", || {
        md5_of(port) == md5_hex(config(&[3]).as_bytes())
    });
}

#[test]
fn a_deleted_path_stops_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.json");
    std::fs::write(&path, config(&[1])).unwrap();
    let (_p, port) = start(&path, &[]);
    let first = md5_of(port);
    let attempts = stat(port, "config_full_attempt");
    std::fs::remove_file(&path).unwrap();
    // The first poll after the removal sees it and fails to watch the path again; as
    // mcrouter, the stand-in does not even try to read the missing file.
    quiet_polls(port);
    assert_eq!(stat(port, "config_full_attempt"), attempts);
    std::fs::write(&path, config(&[2])).unwrap();
    quiet_polls(port);
    assert_eq!(
        md5_of(port),
        first,
        "a re-created path is no longer watched"
    );
    assert_eq!(stat(port, "config_full_attempt"), attempts);
}

#[test]
fn keys_are_routed_to_real_memcached_backends() {
    let (_a, pa) = memcached();
    let (_b, pb) = memcached();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.json");
    std::fs::write(&path, config(&[pa, pb])).unwrap();
    let (_p, port) = start(&path, &[]);
    let mut on = [0, 0];
    for i in 0..50 {
        let key = format!("key{i}");
        assert_eq!(
            ask(port, &format!("set {key} 0 0 2\r\nv{}\r\n", i % 10)),
            "STORED\r\n"
        );
        let direct_a = ask(pa, &format!("get {key}\r\n"));
        let direct_b = ask(pb, &format!("get {key}\r\n"));
        assert!(
            direct_a.contains("VALUE") ^ direct_b.contains("VALUE"),
            "{key} must be on exactly one backend"
        );
        on[usize::from(direct_b.contains("VALUE"))] += 1;
        assert_eq!(
            ask(port, &format!("get {key}\r\n")),
            format!("VALUE {key} 0 2\r\nv{}\r\nEND\r\n", i % 10)
        );
    }
    assert!(on[0] > 5 && on[1] > 5, "keys spread over both: {on:?}");
    assert_eq!(ask(port, "delete key0\r\n"), "DELETED\r\n");
    assert_eq!(ask(port, "get key0\r\n"), "END\r\n");
}

#[test]
fn signals_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.json");
    std::fs::write(&path, config(&[1])).unwrap();
    for (sig, code, by_signal) in [
        (libc::SIGTERM, Some(0), None),
        (libc::SIGINT, Some(0), None),
        (libc::SIGHUP, None, Some(libc::SIGHUP)),
        (libc::SIGUSR1, None, Some(libc::SIGUSR1)),
    ] {
        let (mut p, _port) = start(&path, &[]);
        unsafe { libc::kill(p.0.id() as i32, sig) };
        let status = p.0.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            (status.code(), status.signal()),
            (code, by_signal),
            "signal {sig}"
        );
    }
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"route\": 1}").unwrap();
    let p = |args: &[&str]| standin(args).status().unwrap().code();
    let (c, b) = (path.to_str().unwrap(), bad.to_str().unwrap());
    assert_eq!(p(&["-p", "1", "-f", b]), Some(1), "bad startup config");
    assert_eq!(p(&["-f", c]), Some(3), "no port");
    assert_eq!(p(&["-p", "1", "--validate-config=exit", "-f", c]), Some(0));
    assert_eq!(p(&["-p", "1", "--validate-config=exit", "-f", b]), Some(3));
    assert_eq!(
        p(&["-p", "1", "-f", c, "--config-str={}"]),
        Some(1),
        "conflicting sources"
    );
}

#[test]
fn a_bad_routing_prefix_silently_falls_back_to_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.json");
    std::fs::write(&path, "{\"pools\": {\"a\": {\"servers\": [\"127.0.0.1:1\"]}}, \"routes\": [{\"aliases\": [\"/././\"], \"route\": \"PoolRoute|a\"}]}").unwrap();
    // "/a/" is invalid: the stand-in uses /././, which this config happens to serve.
    let (_p, port) = start(&path, &["-R", "/a/"]);
    assert_eq!(md5_of(port).len(), 32);
    let mut r = String::new();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"version\r\n").unwrap();
    BufReader::new(s).read_line(&mut r).unwrap();
    assert!(r.starts_with("VERSION"));
}
