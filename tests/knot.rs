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
