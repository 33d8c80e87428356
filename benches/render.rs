//! Benchmark: `mcw render` of 200 pools, each one `dnssrv://` token with 20 targets (4,000
//! servers), against two DNS servers on loopback: dnsmasq (a real server, started here) and
//! the tests' in-process hickory-server. Prints wall time and peak RSS of the mcw process; run
//! with `cargo bench --bench render`. Targets: < 150 ms, < 20 MiB.
//!
//! Then `mcw diff` of the same template against a config on disk in which one server of every
//! pool differs: the render plus the share of keys remapped in all 200 pools (each hashed with
//! Ch3 by the route), the most work a change can ask of the key-movement code.

mod common;

use common::{dns, mcw, timed_runs};

use std::time::{Duration, Instant};

const POOLS: usize = 200;
const TARGETS: usize = 20;
const RUNS: usize = 15;

fn main() {
    let server = dns::DnsServer::start();
    let mut dnsmasq_conf = String::new();
    let mut template = String::from("{\"pools\": {\n");
    for p in 0..POOLS {
        let name = format!("_memcache._tcp.pool{p}.bench");
        let targets: Vec<String> = (0..TARGETS)
            .map(|t| format!("mc-{t}.pool{p}.bench"))
            .collect();
        let srv: Vec<(u16, u16, u16, &str)> =
            targets.iter().map(|t| (10, 1, 11211, t.as_str())).collect();
        server.set_srv(&name, &srv, 30);
        for (t, target) in targets.iter().enumerate() {
            let ip = format!("10.{}.{}.{}", p / 250, p % 250, t + 1);
            server.set_addrs(target, &[&ip], 30);
            dnsmasq_conf.push_str(&format!(
                "host-record={target},{ip}\nsrv-host={name},{target},11211,10,1\n"
            ));
        }
        let comma = if p + 1 < POOLS { "," } else { "" };
        template.push_str(&format!(
            "  \"pool{p}\": {{\"servers\": [\"dnssrv://{name}\"]}}{comma}\n"
        ));
    }
    // Every pool behind a PoolRoute, so each one is hashed (Ch3) and its shares are computed.
    let routes: Vec<String> = (0..POOLS)
        .map(|p| format!("\"PoolRoute|pool{p}\""))
        .collect();
    template.push_str(&format!(
        "}}, \"route\": {{\"type\": \"AllSyncRoute\", \"children\": [{}]}}}}\n",
        routes.join(", ")
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("template.json");
    std::fs::write(&path, template).unwrap();
    std::fs::write(dir.path().join("resolv.conf"), "").unwrap();
    std::fs::write(dir.path().join("dnsmasq.conf"), dnsmasq_conf).unwrap();

    let port = common::ports::free_port();
    let mut dnsmasq = std::process::Command::new("dnsmasq")
        .args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
        ])
        .args([
            "--listen-address=127.0.0.1",
            "--user=root",
            "--pid-file=",
            "--cache-size=0",
        ])
        .arg(format!("--port={port}"))
        .arg(format!(
            "--conf-file={}",
            dir.path().join("dnsmasq.conf").display()
        ))
        .spawn()
        .expect("dnsmasq (apt-get install dnsmasq-base)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "dnsmasq did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    measure("dnsmasq", &format!("127.0.0.1:{port}"), dir.path());
    let _ = dnsmasq.kill();
    let _ = dnsmasq.wait();
    measure("hickory-server (in-process)", &server.arg(), dir.path());

    // The config on disk: the render with the fourth server of every pool replaced.
    let mut disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out1.json")).unwrap()).unwrap();
    for (p, pool) in disk["pools"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .enumerate()
    {
        pool["servers"][3] = format!("10.255.{}.{}:11211", p / 250, p % 250).into();
    }
    std::fs::write(dir.path().join("disk.json"), disk.to_string()).unwrap();
    measure_diff("hickory-server (in-process)", &server.arg(), dir.path());
}

/// `mcw diff` against disk.json: every pool changed, 200 remapped shares.
fn measure_diff(label: &str, server: &str, dir: &std::path::Path) {
    let stats = timed_runs(
        RUNS,
        |_| {
            let mut cmd = mcw("diff", dir, server);
            cmd.arg("--output")
                .arg(dir.join("disk.json"))
                .stdout(std::fs::File::create(dir.join("diff.txt")).unwrap());
            (cmd, 1)
        },
        |_| {
            let report = std::fs::read_to_string(dir.join("diff.txt")).unwrap();
            assert_eq!(
                report.matches("% of keys remapped").count(),
                POOLS,
                "{report}"
            );
        },
    );
    println!(
        "{label}: diff {POOLS} pools x {TARGETS} SRV targets, every pool changed ({POOLS} remapped shares on {} keys each), {RUNS} runs: {stats}",
        mcw::placement::SAMPLE_KEYS,
    );
}

fn measure(label: &str, server: &str, dir: &std::path::Path) {
    let stats = timed_runs(
        RUNS,
        |run| {
            let mut cmd = mcw("render", dir, server);
            cmd.arg("--output").arg(dir.join(format!("out{run}.json")));
            (cmd, 0)
        },
        |run| {
            let written = std::fs::read_to_string(dir.join(format!("out{run}.json"))).unwrap();
            assert_eq!(written.matches(":11211\"").count(), POOLS * TARGETS);
        },
    );
    println!(
        "{label}: render {POOLS} pools x {TARGETS} SRV targets = {} servers, {RUNS} runs: {stats}",
        POOLS * TARGETS,
    );
}
