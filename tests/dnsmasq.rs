//! mcw against dnsmasq, a DNS server many hosts already run, started by the test.

mod common;

use common::*;

#[test]
fn renders_a_and_srv_tokens_served_by_dnsmasq() {
    let port = free_port();
    let mut records = Vec::new();
    // Pods registered out of order, with a ten-plus pool so natural order matters.
    for i in [10, 2, 0, 11, 1] {
        records.push(format!("--host-record=mc-{i}.mc.test,10.7.0.{i}"));
        records.push(format!(
            "--srv-host=_memcache._tcp.mc.test,mc-{i}.mc.test,11211,10,5"
        ));
    }
    records.push("--host-record=flat.test,10.8.0.2".into());
    records.push("--host-record=flat.test,10.8.0.1".into());
    let _dnsmasq = dnsmasq(port, &records);

    let work = Workdir::new();
    work.write(
        "template.json",
        r#"{"pools": {"sts": {"servers": ["dnssrv://_memcache._tcp.mc.test"]},
                      "flat": {"servers": ["dns+11311://flat.test"]}},
            "route": "PoolRoute|sts"}"#,
    );
    let out = run(&mut work.mcw_at("render", &format!("127.0.0.1:{port}")));
    assert_eq!(out.status.code(), Some(0));
    let config: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        config["pools"]["sts"]["servers"],
        serde_json::json!([
            "10.7.0.0:11211",
            "10.7.0.1:11211",
            "10.7.0.2:11211",
            "10.7.0.10:11211",
            "10.7.0.11:11211"
        ])
    );
    assert_eq!(
        config["pools"]["flat"]["servers"],
        serde_json::json!(["10.8.0.1:11311", "10.8.0.2:11311"])
    );
}
