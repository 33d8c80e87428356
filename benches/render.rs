//! Benchmark: `mcw render` of 200 pools, each one `dnssrv://` token with 20 targets (4,000
//! servers), against two DNS servers on loopback: dnsmasq (a real server, started here) and
//! the tests' in-process hickory-server. Prints wall time and peak RSS of the mcw process; run
//! with `cargo bench --bench render`. Targets: < 150 ms, < 20 MiB.
//!
//! Then `mcw diff` of the same template against a config on disk in which one server of every
//! pool differs: the render plus the share of keys remapped in all 200 pools (each hashed with
//! Ch3 by the route), the most work a change can ask of the key-movement code.

mod common;

use common::{dns, ms, wait_with_rusage};

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
    let stats = runs(
        |_| {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mcw"));
            cmd.arg("diff")
                .arg("--output")
                .arg(dir.join("disk.json"))
                .stdout(std::fs::File::create(dir.join("diff.txt")).unwrap());
            (cmd, 1)
        },
        dir,
        server,
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
    let stats = runs(
        |run| {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mcw"));
            cmd.arg("render")
                .arg("--output")
                .arg(dir.join(format!("out{run}.json")));
            (cmd, 0)
        },
        dir,
        server,
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

/// One warm-up and RUNS counted runs of the command `make(run)` gives (with the template and
/// DNS options added), each expected to exit with the status it names and to pass `check`.
/// Returns the wall, CPU and peak-RSS figures as one line.
fn runs(
    make: impl Fn(usize) -> (std::process::Command, i32),
    dir: &std::path::Path,
    server: &str,
    check: impl Fn(usize),
) -> String {
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let mut peak_kib = 0;
    for run in 0..=RUNS {
        let (mut cmd, expected) = make(run);
        cmd.arg("--template")
            .arg(dir.join("template.json"))
            .arg("--resolv-conf")
            .arg(dir.join("resolv.conf"))
            .arg("--dns-server")
            .arg(server)
            .env("MCW_LOG", "warn");
        let start = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let (status, rss_kib, cpu) = wait_with_rusage(&mut child);
        let wall = start.elapsed();
        assert_eq!(status, expected, "mcw exited {status}");
        check(run);
        if run > 0 {
            // The first run warms the page cache and the DNS server; it is not counted.
            walls.push(wall);
            cpus.push(cpu);
            peak_kib = peak_kib.max(rss_kib);
        }
    }
    walls.sort();
    cpus.sort();
    format!(
        "wall p50 {:.1} ms, max {:.1} ms; CPU p50 {:.1} ms; peak RSS {:.1} MiB",
        ms(walls[walls.len() / 2]),
        ms(walls[walls.len() - 1]),
        ms(cpus[cpus.len() / 2]),
        peak_kib as f64 / 1024.0
    )
}
