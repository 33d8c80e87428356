//! The threat model's claims that a test can hold (README, Threat model): DNS data cannot put
//! JSON or mcrouter macro syntax into the config; the metrics listener survives garbage, huge
//! and idle clients without holding up mcw's real work, and shows nothing but what it is for.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::http;
use common::*;

const WAIT: Duration = Duration::from_secs(10);

const SRV_TEMPLATE: &str = r#"{
  "pools": {"sts": {"servers": ["dnssrv://_memcache._tcp.mc.test"]}},
  "route": {"type": "PoolRoute", "pool": "sts", "hash": {"hash_func": "Rendezvous"}}
}"#;

/// SRV targets whose labels hold what DNS allows and a config must not: a quote (JSON), `@`
/// and `%` (mcrouter macros), a backslash, a newline. Sent as raw label bytes.
const HOSTILE: &[&str] = &[
    "q\"uote.mc.test",
    "@macro(x).mc.test",
    "pct%param%.mc.test",
    "back\\slash.mc.test",
    "new\nline.mc.test",
];

/// `mcw render` refuses every hostile target, naming it, and writes nothing.
#[test]
fn hostile_srv_targets_never_reach_the_config() {
    for target in HOSTILE {
        let dns = DnsServer::start();
        dns.set_srv("_memcache._tcp.mc.test", &[(0, 0, 11211, target)], 30);
        let work = Workdir::new();
        work.write("template.json", SRV_TEMPLATE);
        let out = run(work
            .mcw("render", &dns)
            .arg("--output")
            .arg(work.path("out.json")));
        assert_eq!(out.status.code(), Some(1), "{target}");
        assert!(
            stderr(&out).contains("is not a host name") && stderr(&out).contains("refusing"),
            "{target}: {}",
            stderr(&out)
        );
        assert!(!work.path("out.json").exists(), "{target}");
    }
}

/// Under `watch`, a hostile answer after a good one keeps the good config byte for byte; the
/// log says why (on one line, whatever the target holds).
#[test]
fn a_hostile_answer_keeps_the_last_good_config() {
    let dns = DnsServer::start();
    dns.set_srv(
        "_memcache._tcp.mc.test",
        &[(0, 0, 11211, "mc-0.mc.test")],
        1,
    );
    dns.set_addrs("mc-0.mc.test", &["10.1.0.0"], 1);
    let work = Workdir::new();
    work.write("template.json", SRV_TEMPLATE);
    let w = Watcher::start(
        &work,
        &dns,
        &["--min-refresh", "100ms", "--max-refresh", "1s"],
    );
    wait_file_contains(&work.path("out.json"), "mc-0.mc.test:11211", WAIT);
    let good = work.read("out.json");

    dns.set_srv(
        "_memcache._tcp.mc.test",
        &[(0, 0, 11211, "mc-0.mc.test"), (0, 0, 11211, HOSTILE[4])],
        1,
    );
    // The refusal is logged once the hostile answer has been handled: the file stayed.
    w.wait_log("is not a host name", WAIT);
    assert_eq!(work.read("out.json"), good);
    let refused = w
        .log()
        .lines()
        .find(|l| l.contains("is not a host name"))
        .map(str::to_string)
        .unwrap();
    assert!(
        refused.contains("keeping the last good answer"),
        "{refused}"
    );
}

/// Garbage, an oversized request and more idle connections than the listener serves at once:
/// mcw answers what it can, closes the rest, and keeps writing configs meanwhile.
#[test]
fn the_metrics_listener_survives_garbage_huge_and_idle_clients() {
    let dns = DnsServer::start();
    dns.set_addrs("memcache.test", &["10.0.0.1"], 1);
    let work = Workdir::new();
    work.write("template.json", ONE_TOKEN);
    let web = format!("127.0.0.1:{}", free_port());
    let args = ["--metrics-listen", &web, "--min-refresh", "100ms"];
    let w = Watcher::start(&work, &dns, &args);
    wait_file_contains(&work.path("out.json"), "10.0.0.1:11211", WAIT);

    // Garbage: an error status or a closed connection, never a crash.
    let reply = raw(&web, b"\x00\xff\xfeNOT HTTP AT ALL\r\n\r\n");
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 400"),
        "{reply}"
    );
    // A request line far beyond any real one.
    let mut huge = b"GET /metrics?".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    huge.extend(b" HTTP/1.1\r\n\r\n");
    let reply = raw(&web, &huge);
    assert!(!reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert_eq!(http::get(&web, "/healthz").status, 200);

    // 300 clients that connect and say nothing: the listener serves 128 at once and closes
    // the rest, so mcw's descriptors stay bounded.
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", w.pid()))
            .unwrap()
            .count()
    };
    let before = fds();
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(&web).unwrap())
        .collect();
    for s in &idle {
        s.set_nonblocking(true).unwrap();
    }
    let closed = |idle: &[TcpStream]| {
        let mut buf = [0u8; 1];
        let mut eof = |mut s: &TcpStream| matches!(s.read(&mut buf), Ok(0));
        idle.iter().filter(|s| eof(s)).count()
    };
    wait_for("the connections beyond 128 to be closed", WAIT, || {
        closed(&idle) == 300 - 128
    });
    assert!(
        fds() <= before + 128 + 4,
        "{} descriptors, {before} before",
        fds()
    );
    // mcw's own work goes on: a DNS change is written while they hang on.
    dns.set_addrs("memcache.test", &["10.0.0.2"], 1);
    wait_file_contains(&work.path("out.json"), "10.0.0.2:11211", WAIT);
    drop(idle);
    wait_for("the listener to serve again", WAIT, || {
        http::try_request(&web, "GET", "/healthz", &[]).is_ok_and(|r| r.status == 200)
    });
}

/// The endpoints tell what they are for and nothing else: not mcw's environment, not the parts
/// of the template that are not pools, and mcrouter's command line only where mcrouter itself
/// reports it.
#[test]
fn the_endpoints_show_nothing_beyond_servers_paths_and_counts() {
    with_each_mcrouter(|router| {
        let dns = DnsServer::start();
        dns.set_addrs("memcache.test", &["127.0.0.1"], 30);
        let work = Workdir::new();
        let marker = "s3cr3t-7f1c";
        work.write(
            "template.json",
            &format!(
                r#"{{"pools": {{"a": {{"servers": ["dns://memcache.test"]}}}},
                  "route": {{"type": "PoolRoute", "pool": "a", "note": "{marker}"}}}}"#
            ),
        );
        let web = format!("127.0.0.1:{}", free_port());
        let port = free_port();
        let mut cmd = work.mcw("run", &dns);
        cmd.env("SOME_PASSWORD", marker)
            .arg("--output")
            .arg(work.path("out.json"))
            .args(["--metrics-listen", &web, "--"])
            .arg(router.path())
            .args(["-p", &port.to_string(), "--listen-addresses=127.0.0.1"])
            .args(router.isolation(work.dir.path()))
            .arg(format!("--config-params=note:{marker}"));
        let w = Watcher::spawn(cmd, work.path("mcw.log"));
        w.wait_log("mcrouter runs the new config", WAIT);
        for path in ["/metrics", "/status", "/readyz", "/healthz"] {
            let body = http::get(&web, path).body;
            // mcrouter's own `commandargs` stat, exported as the standalone exporter does: anyone
            // who can reach mcrouter's port can ask `stats all` for it anyway.
            let shown: Vec<&str> = body
                .lines()
                .filter(|l| l.contains(marker) && !l.starts_with("mcrouter_commandargs{"))
                .collect();
            assert!(shown.is_empty(), "{path} shows {marker}:\n{shown:?}");
        }
        // The marker was there to be found: it is in the config mcrouter reads.
        assert!(work.read("out.json").contains(marker));
    });
}

/// Send `bytes`, read until the server closes or 5 s pass; what came back, as text.
fn raw(addr: &str, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // The server may close before taking everything: that is an answer too.
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}
