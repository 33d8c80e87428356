//! mcw watch against Knot DNS: a zone that fails to load answers SERVFAIL, and mcw keeps the
//! last good config until the zone is fixed.

mod common;

use std::time::Duration;

use common::*;

fn zone(ip: &str) -> String {
    format!(
        "$TTL 1\n@ SOA ns.mc.test. admin.mc.test. 1 60 60 60 1\n@ NS ns.mc.test.\nns A 127.0.0.1\n\
         memcache A {ip}\n_memcache._tcp SRV 0 0 11211 mc-0\nmc-0 A 10.6.1.0\n"
    )
}

#[test]
fn servfail_from_a_broken_zone_keeps_the_file_until_the_zone_is_fixed() {
    let work = Workdir::new();
    let knot_dir = work.path("knot");
    std::fs::create_dir(&knot_dir).unwrap();
    std::fs::write(knot_dir.join("zone.zone"), zone("10.6.0.1")).unwrap();
    let port = free_port();
    let knot = Knot::start(&knot_dir, port, "mc.test");

    work.write(
        "template.json",
        r#"{"pools": {"a": {"servers": ["dns://memcache.mc.test", "dnssrv://_memcache._tcp.mc.test"]}}, "route": "PoolRoute|a"}"#,
    );
    let mut cmd = work.mcw_at("watch", &format!("127.0.0.1:{port}"));
    cmd.arg("--output").arg(work.path("out.json")).args([
        "--min-refresh",
        "200ms",
        "--dns-timeout",
        "500ms",
    ]);
    let mut w = Watcher::spawn(cmd, work.path("mcw.log"));
    let wait = Duration::from_secs(10);
    wait_file_contains(&work.path("out.json"), "10.6.1.0:11211", wait);
    let good = work.read("out.json");

    // Break the zone and restart knot: the zone no longer loads, queries get SERVFAIL.
    drop(knot);
    std::fs::write(
        knot_dir.join("zone.zone"),
        zone("10.6.0.1") + "broken A 10.0.0.1 garbage(\n",
    )
    .unwrap();
    let knot = Knot::start(&knot_dir, port, "mc.test");
    w.wait_log("server answered SERVFAIL", wait);
    w.wait_log("keeping the last good answer", wait);
    assert_eq!(work.read("out.json"), good);
    assert!(w.alive());

    // Fix the zone with a new address: mcw picks it up.
    std::fs::write(knot_dir.join("zone.zone"), zone("10.6.0.2")).unwrap();
    knot.reload();
    wait_file_contains(&work.path("out.json"), "10.6.0.2:11211", wait);
    w.wait_log("DNS answers again", wait);
}

/// Regression: a name behind a CNAME failed with "no records of that type" although the
/// server's answer held the CNAME and the records; the original MCW (through the system
/// resolver) follows CNAMEs. Every query type follows them here: A and AAAA names behind a
/// chain of two, an SRV name that is an alias of the SRV name, an SRV target that is an alias,
/// and a CNAME into another zone, whose target mcw must ask for itself.
#[test]
fn cname_chains_are_followed_for_a_aaaa_srv_and_srv_targets() {
    let work = Workdir::new();
    let knot_dir = work.path("knot");
    std::fs::create_dir(&knot_dir).unwrap();
    std::fs::write(
        knot_dir.join("zone.zone"),
        "$TTL 30\n@ SOA ns.mc.test. admin.mc.test. 1 60 60 60 1\n@ NS ns.mc.test.\nns A 127.0.0.1\n\
         alias2 CNAME alias\nalias CNAME memcache\nmemcache A 10.6.0.1\nmemcache AAAA fd00::1\n\
         _svc._tcp CNAME _memcache._tcp\n\
         _memcache._tcp SRV 0 0 11211 mc-0\n_memcache._tcp SRV 0 0 11211 pod1\n\
         mc-0 A 10.6.1.0\npod1 CNAME mc-1\nmc-1 A 10.6.1.1\n\
         away CNAME host.elsewhere.test.\n",
    )
    .unwrap();
    std::fs::write(
        knot_dir.join("elsewhere.zone"),
        "$TTL 30\n@ SOA ns.elsewhere.test. admin.elsewhere.test. 1 60 60 60 1\n\
         @ NS ns.elsewhere.test.\nns A 127.0.0.1\nhost A 10.6.2.1\n",
    )
    .unwrap();
    let port = free_port();
    let _knot = Knot::start_zones(
        &knot_dir,
        port,
        &[
            ("mc.test", "zone.zone"),
            ("elsewhere.test", "elsewhere.zone"),
        ],
    );
    work.write(
        "template.json",
        r#"{"pools": {
              "a": {"servers": ["dns://alias2.mc.test?family=any"]},
              "srv": {"servers": ["dnssrv://_svc._tcp.mc.test"]},
              "away": {"servers": ["dns://away.mc.test"]}},
            "route": "PoolRoute|a"}"#,
    );
    let out = run(&mut work.mcw_at("render", &format!("127.0.0.1:{port}")));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        config["pools"]["a"]["servers"],
        serde_json::json!(["10.6.0.1:11211", "[fd00::1]:11211"])
    );
    assert_eq!(
        config["pools"]["srv"]["servers"],
        serde_json::json!(["10.6.1.0:11211", "10.6.1.1:11211"])
    );
    assert_eq!(
        config["pools"]["away"]["servers"],
        serde_json::json!(["10.6.2.1:11211"])
    );
}
