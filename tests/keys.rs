//! Key movement made visible and kept small, end to end: `mcw diff` against a live DNS change,
//! the remapped share in `watch`'s log, and `--hold-removed` with SRV records that vanish,
//! return, or stay away.

mod common;

use std::time::Duration;

use common::*;

const TEMPLATE: &str = r#"{
  "pools": {"sts": {"servers": ["dnssrv://_memcache._tcp.mc.test"]}},
  "route": "PoolRoute|sts"
}"#;

const WAIT: Duration = Duration::from_secs(10);

/// A StatefulSet of `pods` (pod i at 10.1.0.i), TTL 1 s.
fn pods(dns: &DnsServer, pods: &[usize]) {
    let names: Vec<String> = pods.iter().map(|i| format!("mc-{i}.mc.test")).collect();
    let srv: Vec<(u16, u16, u16, &str)> = names.iter().map(|n| (0, 0, 11211, n.as_str())).collect();
    dns.set_srv("_memcache._tcp.mc.test", &srv, 1);
    for (i, name) in pods.iter().zip(&names) {
        dns.set_addrs(name, &[&format!("10.1.0.{i}")], 1);
    }
}

fn diff(work: &Workdir, dns: &DnsServer, extra: &[&str]) -> std::process::Output {
    run(work
        .mcw("diff", dns)
        .arg("--output")
        .arg(work.path("out.json"))
        .args(extra))
}

#[test]
fn diff_shows_what_a_dns_change_would_do_and_writes_nothing() {
    let dns = DnsServer::start();
    pods(&dns, &[0, 1, 2]);
    let work = Workdir::new();
    work.write("template.json", TEMPLATE);
    let out = run(work
        .mcw("render", &dns)
        .arg("--output")
        .arg(work.path("out.json")));
    assert!(out.status.success());

    let same = diff(&work, &dns, &[]);
    assert_eq!(same.status.code(), Some(0));
    assert!(stdout(&same).starts_with("no change"), "{}", stdout(&same));

    // A template edit that leaves every pool's servers alone still differs.
    work.write(
        "template.json",
        &TEMPLATE.replace(
            r#""PoolRoute|sts""#,
            r#"{"type": "PoolRoute", "pool": "sts"}"#,
        ),
    );
    let outside = diff(&work, &dns, &[]);
    assert_eq!(outside.status.code(), Some(1));
    assert_eq!(
        stdout(&outside),
        "the config differs outside the pools' server lists\n"
    );
    work.write("template.json", TEMPLATE);

    // Pod mc-1 moves: its slot's keys, a third, go elsewhere.
    dns.set_addrs("mc-1.mc.test", &["10.1.0.9"], 1);
    let before = work.read("out.json");
    let changed = diff(&work, &dns, &[]);
    assert_eq!(changed.status.code(), Some(1));
    let text = stdout(&changed);
    assert!(
        text.starts_with("pool sts (Ch3): 3 -> 3 servers, 3"),
        "{text}"
    );
    assert!(
        text.contains("% of keys remapped\n  + 10.1.0.9:11211\n  - 10.1.0.1:11211\n"),
        "{text}"
    );

    let json = diff(&work, &dns, &["--format", "json"]);
    assert_eq!(json.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["changed"], true);
    let pool = &report["pools"][0];
    assert_eq!(pool["pool"], "sts");
    assert_eq!(pool["hash"], "Ch3");
    assert_eq!(pool["added"], serde_json::json!(["10.1.0.9:11211"]));
    assert_eq!(pool["removed"], serde_json::json!(["10.1.0.1:11211"]));
    let share = pool["remapped"].as_f64().unwrap();
    assert!((share - 1.0 / 3.0).abs() < 0.02, "{share}");
    assert_eq!(work.read("out.json"), before, "diff wrote the output");

    // A pod leaving the middle: the next pod's slot moves, and most keys with it.
    pods(&dns, &[0, 2]);
    let json = diff(&work, &dns, &["--format", "json"]);
    let pool = &serde_json::from_slice::<serde_json::Value>(&json.stdout).unwrap()["pools"][0];
    assert_eq!(
        pool["moved"],
        serde_json::json!([{"server": "10.1.0.2:11211", "from": 2, "to": 1}])
    );
    assert!(pool["remapped"].as_f64().unwrap() > 0.5, "{pool}");
}

#[test]
fn diff_exits_2_when_either_side_cannot_be_had() {
    let dns = DnsServer::start();
    pods(&dns, &[0, 1]);
    let work = Workdir::new();
    work.write("template.json", TEMPLATE);

    let missing = diff(&work, &dns, &[]);
    assert_eq!(missing.status.code(), Some(2));
    let message = stderr(&missing);
    assert!(
        message.contains("cannot read") && message.contains("out.json"),
        "{message}"
    );
    assert!(message.contains("pass --output"), "{message}");

    work.write("out.json", "{}\n");
    dns.fault("_memcache._tcp.mc.test", Some(Fault::ServFail));
    let failed = diff(&work, &dns, &[]);
    assert_eq!(failed.status.code(), Some(2));
    let message = stderr(&failed);
    assert!(
        message.contains("dnssrv://_memcache._tcp.mc.test"),
        "{message}"
    );
    assert_eq!(work.read("out.json"), "{}\n");
}

#[test]
fn watch_logs_the_share_of_keys_each_change_remaps() {
    let dns = DnsServer::start();
    pods(&dns, &[0, 1, 2, 3]);
    let work = Workdir::new();
    work.write("template.json", TEMPLATE);
    let w = Watcher::start(&work, &dns, &["--min-refresh", "200ms"]);
    wait_file_contains(&work.path("out.json"), "10.1.0.3:11211", WAIT);
    pods(&dns, &[0, 1, 2, 3, 4]);
    // A fifth pod at the end takes about a fifth of the keys.
    w.wait_log("pool servers changed pool=sts added=+10.1.0.4:11211", WAIT);
    let line = w
        .log()
        .lines()
        .find(|l| l.contains("pool servers changed"))
        .unwrap()
        .to_string();
    let share: f64 = line
        .split("remapped=")
        .nth(1)
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!((share - 20.0).abs() <= 1.0, "{line}");
}

/// `mcw watch --hold-removed 3s` over pods 0–2, written, serving /status and /metrics on
/// `metrics`.
fn held(work: &Workdir, dns: &DnsServer, metrics: &str) -> Watcher {
    pods(dns, &[0, 1, 2]);
    work.write("template.json", TEMPLATE);
    let w = Watcher::start(
        work,
        dns,
        &[
            "--min-refresh",
            "200ms",
            "--hold-removed",
            "3s",
            "--metrics-listen",
            metrics,
        ],
    );
    wait_file_contains(&work.path("out.json"), "10.1.0.2:11211", WAIT);
    w
}

const HOLDING: &str = "server vanished from DNS; holding its slot";

#[test]
fn a_pod_that_returns_within_the_hold_never_changes_the_output() {
    let dns = DnsServer::start();
    let work = Workdir::new();
    let metrics = format!("127.0.0.1:{}", free_port());
    let w = held(&work, &dns, &metrics);
    let written = work.read("out.json");
    pods(&dns, &[0, 2]);
    w.wait_log(HOLDING, WAIT);
    assert_eq!(work.read("out.json"), written);
    // While held, /status names the server and the metric counts it.
    let status: serde_json::Value =
        serde_json::from_str(&http::get(&metrics, "/status").body).unwrap();
    assert_eq!(
        status["tokens"][0]["held"],
        serde_json::json!(["mc-1.mc.test:11211"])
    );
    let exposition = http::get(&metrics, "/metrics").body;
    assert_eq!(
        http::sample(
            &exposition,
            r#"mcw_servers_held{token="dnssrv://_memcache._tcp.mc.test"}"#
        ),
        Some(1.0),
        "{exposition}"
    );
    pods(&dns, &[0, 1, 2]);
    w.wait_log("held server is back in DNS; nothing changes", WAIT);
    assert_eq!(work.read("out.json"), written);
    assert_eq!(w.log().matches("wrote config").count(), 1, "{}", w.log());
    assert!(!w.log().contains("hold ran out"), "{}", w.log());
}

#[test]
fn a_pod_that_stays_away_leaves_after_the_hold_and_new_pods_join_at_once() {
    let dns = DnsServer::start();
    let work = Workdir::new();
    let w = held(&work, &dns, &format!("127.0.0.1:{}", free_port()));
    // mc-1 goes and mc-3 comes in the same change: mc-3 is written at once, mc-1 stays held.
    pods(&dns, &[0, 2, 3]);
    wait_file_contains(&work.path("out.json"), "10.1.0.3:11211", WAIT);
    let joined = work.read("out.json");
    assert!(joined.contains("10.1.0.1:11211"), "{joined}");
    assert!(
        w.log().contains(&format!(
            "{HOLDING} (--hold-removed) token=dnssrv://_memcache._tcp.mc.test server=mc-1.mc.test:11211"
        )),
        "{}",
        w.log()
    );

    // After the hold, the pool shrinks.
    wait_for("mc-1 to leave the output", WAIT, || {
        !work.read("out.json").contains("10.1.0.1:11211")
    });
    let log = w.log();
    let at = |needle: &str| {
        let line = log
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not in {log}"));
        chrono_seconds(line.split_whitespace().next().unwrap())
    };
    let held_for = at("hold ran out") - at(HOLDING);
    assert!(held_for >= 3.0, "held only {held_for} s:\n{log}");
    assert!(work.read("out.json").contains("10.1.0.3:11211"));
}

/// Seconds of the day from a log timestamp such as `2026-11-21T21:42:57.415420Z`.
fn chrono_seconds(stamp: &str) -> f64 {
    let time = stamp.split('T').nth(1).unwrap().trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next().unwrap().parse().unwrap();
    let m: f64 = parts.next().unwrap().parse().unwrap();
    let s: f64 = parts.next().unwrap().parse().unwrap();
    h * 3600.0 + m * 60.0 + s
}
