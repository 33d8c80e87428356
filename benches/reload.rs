//! From a DNS change to traffic on the new server: a client's `get` through mcrouter landing on
//! the memcached DNS now names. `mcw run` over mcrouter (the real one when there is one, and
//! the stand-in), one pool of one `dns+PORT://` token with TTL 1 s and `--min-refresh 1s`, two
//! real memcached each holding its own value under the key the client asks for. DNS flips the
//! name between them 20 times, at varied points of the refresh cycle; for each flip, the time
//! until the rendered file names the new server, and until the client's `get` through mcrouter
//! returns the new server's value. With mcrouter's default `--reconfiguration-delay-ms` (1000)
//! and with the 100 ms `mcw run` passes when the command sets none.
//! Then whether the short delay is safe for large configs and bursts: a config of 1,000 pools
//! of 20 servers (20,000 servers, 600 kB) renamed over mcrouter's file 50 times in a second,
//! with a 100 ms delay: how many reloads mcrouter makes, how long after the last write it runs
//! the last config, and its CPU time for the lot.
//! Run with `cargo bench --bench reload`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{DnsServer, Mcrouter, MemcacheConn, Workdir, free_port, memcached, real_mcrouter};

const CHANGES: usize = 20;
const LIMIT: Duration = Duration::from_secs(15);

fn main() {
    let mut routers = vec![Mcrouter::Standin];
    match real_mcrouter() {
        Some(path) => routers.insert(0, Mcrouter::Real(path)),
        None => println!("no real mcrouter found: the stand-in only"),
    }
    println!(
        "| mcrouter | --reconfiguration-delay-ms | DNS change → file, p50 / max | DNS change → traffic on the new server, p50 / max |"
    );
    println!("|---|---|---|---|");
    for router in &routers {
        for delay in [Some(1000), None] {
            let (file, traffic) = flips(router, delay);
            let name = match router {
                Mcrouter::Real(_) => "real",
                Mcrouter::Standin => "stand-in",
            };
            let delay = delay.map_or("100 (mcw's, none given)".to_string(), |d| d.to_string());
            println!(
                "| {name} | {delay} | {} | {} |",
                summary(file),
                summary(traffic)
            );
        }
    }
    for router in &routers {
        burst(router);
    }
}

/// A config of 20,000 servers; `version` changes every port.
fn big_config(version: u16) -> String {
    let pools: Vec<String> = (0..1000u32)
        .map(|p| {
            let servers: Vec<String> = (0..20u32)
                .map(|s| {
                    let n = p * 20 + s;
                    format!(
                        "\"10.{}.{}.{}:{}\"",
                        n >> 16,
                        (n >> 8) & 255,
                        n & 255,
                        11211 + version
                    )
                })
                .collect();
            format!("\"p{p}\": {{\"servers\": [{}]}}", servers.join(", "))
        })
        .collect();
    format!(
        "{{\"pools\": {{{}}}, \"route\": \"PoolRoute|p0\"}}\n",
        pools.join(",\n")
    )
}

/// 50 renames of a 20,000-server config over mcrouter's file in one second (100 ms delay).
fn burst(router: &Mcrouter) {
    let work = Workdir::new();
    let path = work.path("big.json");
    let swap = |text: &str| {
        let tmp = work.path("big.json.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    };
    swap(&big_config(0));
    let port = free_port();
    let child = std::process::Command::new(router.path())
        .args(["-p", &port.to_string(), "--listen-addresses=127.0.0.1"])
        .args(["--reconfiguration-delay-ms=100", "-f"])
        .arg(&path)
        .args(router.isolation(work.dir.path()))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let _child = KilledOnDrop(child);
    let addr = format!("127.0.0.1:{port}");
    common::wait_for("mcrouter to serve", LIMIT, || {
        std::net::TcpStream::connect(&addr).is_ok()
    });
    let stat = |name: &str| -> u64 {
        let reply = MemcacheConn::open(&addr).ask("stats detailed\r\n");
        reply
            .lines()
            .find_map(|l| l.strip_prefix(&format!("STAT {name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap()
    };
    let cpu = || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        Duration::from_millis(ticks * 10)
    };
    let (attempts, cpu_before) = (stat("config_full_attempt"), cpu());
    let mut last = String::new();
    for version in 1..=50 {
        last = big_config(version);
        swap(&last);
        std::thread::sleep(Duration::from_millis(20));
    }
    let written = Instant::now();
    let want = common_md5(last.as_bytes());
    common::wait_for("the last config", LIMIT, || {
        MemcacheConn::open(&addr)
            .ask("get __mcrouter__.config_md5_digest\r\n")
            .contains(&want)
    });
    let after = written.elapsed();
    println!(
        "{router}: 50 renames of a 20,000-server config (600 kB) in 1 s, delay 100 ms: {} reloads, the last config running {:.0} ms after the last write, {:.2} s CPU",
        stat("config_full_attempt") - attempts,
        after.as_secs_f64() * 1000.0,
        (cpu() - cpu_before).as_secs_f64()
    );
}

fn common_md5(bytes: &[u8]) -> String {
    mcw::engine::md5_hex(bytes)
}

/// A child killed and reaped when dropped.
struct KilledOnDrop(std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn summary(mut lat: Vec<Duration>) -> String {
    lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "{:.0} / {:.0} ms",
        ms(lat[lat.len() / 2]),
        ms(lat[lat.len() - 1])
    )
}

/// Flip DNS between two memcached `CHANGES` times; the latencies to the file and to traffic.
fn flips(router: &Mcrouter, delay: Option<u64>) -> (Vec<Duration>, Vec<Duration>) {
    let mc_port = free_port();
    let servers = ["127.0.4.1", "127.0.4.2"];
    let _mems: Vec<_> = servers.iter().map(|ip| memcached(ip, mc_port)).collect();
    for (ip, value) in servers.iter().zip(["a", "b"]) {
        let reply = MemcacheConn::open(&format!("{ip}:{mc_port}"))
            .ask(&format!("set probe 0 0 1\r\n{value}\r\n"));
        assert_eq!(reply, "STORED\r\n");
    }
    let dns = DnsServer::start();
    dns.set_addrs("cache.bench", &[servers[0]], 1);
    let work = Workdir::new();
    work.write(
        "template.json",
        &format!(
            r#"{{"pools": {{"a": {{"servers": ["dns+{mc_port}://cache.bench"]}}}}, "route": "PoolRoute|a"}}"#
        ),
    );
    let port = free_port();
    let mut cmd = work.mcw("run", &dns);
    cmd.arg("--output")
        .arg(work.path("out.json"))
        .args(["--min-refresh", "1s", "--"])
        .arg(router.path())
        .args(["-p", &port.to_string(), "--listen-addresses=127.0.0.1"])
        .args(router.isolation(work.dir.path()));
    if let Some(ms) = delay {
        cmd.arg(format!("--reconfiguration-delay-ms={ms}"));
    }
    let _mcw = common::Watcher::spawn(cmd, work.path("mcw.log"));
    let addr = format!("127.0.0.1:{port}");
    common::wait_for("mcrouter to serve", LIMIT, || {
        std::net::TcpStream::connect(&addr).is_ok()
    });
    let mut client = MemcacheConn::open(&addr);
    let serves = |client: &mut MemcacheConn, value: &str| {
        client
            .ask("get probe\r\n")
            .contains(&format!("\r\n{value}\r\n"))
    };
    common::wait_for("the first server's value", LIMIT, || {
        serves(&mut client, "a")
    });
    let (mut to_file, mut to_traffic) = (Vec::new(), Vec::new());
    for i in 1..=CHANGES {
        // Change at a varied point of the refresh cycle, as real changes happen.
        std::thread::sleep(Duration::from_millis(137 * i as u64 % 1000));
        let (ip, value) = if i % 2 == 1 {
            (servers[1], "b")
        } else {
            (servers[0], "a")
        };
        dns.set_addrs("cache.bench", &[ip], 1);
        let changed = Instant::now();
        let (mut file, mut traffic) = (None, None);
        while traffic.is_none() {
            assert!(
                changed.elapsed() < LIMIT,
                "change {i} never reached mcrouter"
            );
            if file.is_none() && work.read("out.json").contains(&format!("\"{ip}:")) {
                file = Some(changed.elapsed());
            }
            if serves(&mut client, value) {
                traffic = Some(changed.elapsed());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        to_file.push(file.unwrap_or_else(|| traffic.unwrap()));
        to_traffic.push(traffic.unwrap());
    }
    (to_file, to_traffic)
}
