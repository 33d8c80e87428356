//! Key placement measured through a real data path, shared by `tests/placement.rs` and
//! `benches/placement.rs`: `mcw run` over mcrouter (the stand-in or a real one), ten real memcached "pods" on
//! 127.0.1.10–19 (and two spares), an in-process DNS server. For each event, keys are set
//! through mcrouter, the DNS change is made, mcw's confirmation of the reload is awaited, and
//! every key is read back through mcrouter: a key moved exactly when the read misses, since its
//! value lives only on the memcached that first held it. Beside it, the share mcw predicted in
//! its log line for the change (`remapped=…%`).

use std::time::Duration;

use super::*;

pub const N: usize = 10;

#[derive(Clone, Copy, PartialEq)]
pub enum Token {
    Srv,
    A,
}

#[derive(Clone, Copy, PartialEq)]
pub enum Event {
    NewIp,
    JoinAtEnd,
    MiddleLeaves,
}

/// One placement event: token kind, what changes, Rendezvous or Ch3, a description, the hash's
/// name and what theory expects.
pub type Row = (Token, Event, bool, &'static str, &'static str, &'static str);

pub const ROWS: [Row; 8] = [
    (
        Token::Srv,
        Event::NewIp,
        false,
        "dnssrv://, pod mc-3 gets a new IP",
        "Ch3",
        "10.0 % (that pod's keys)",
    ),
    (
        Token::Srv,
        Event::JoinAtEnd,
        false,
        "dnssrv://, mc-10 joins",
        "Ch3",
        "9.1 % (1/11)",
    ),
    (
        Token::Srv,
        Event::MiddleLeaves,
        true,
        "dnssrv://, mc-4 leaves",
        "Rendezvous",
        "10.0 % (1/10)",
    ),
    (
        Token::Srv,
        Event::MiddleLeaves,
        false,
        "dnssrv://, mc-4 leaves",
        "Ch3",
        "most keys (indexes shift)",
    ),
    (
        Token::A,
        Event::NewIp,
        false,
        "dns://, 127.0.1.13 becomes 127.0.1.30",
        "Ch3",
        "most keys (it re-sorts last)",
    ),
    (
        Token::A,
        Event::JoinAtEnd,
        false,
        "dns://, 127.0.1.20 joins",
        "Ch3",
        "9.1 % (sorts last)",
    ),
    (
        Token::A,
        Event::MiddleLeaves,
        true,
        "dns://, 127.0.1.14 leaves",
        "Rendezvous",
        "10.0 % (1/10)",
    ),
    (
        Token::A,
        Event::NewIp,
        true,
        "dns://, 127.0.1.13 becomes 127.0.1.30",
        "Rendezvous",
        "about 19 % (a leave plus a join)",
    ),
];

/// The memcached "pods" (and two spares), on one port; killed when dropped.
pub struct Fleet {
    pub mc_port: u16,
    _mems: Vec<Daemon>,
}

impl Fleet {
    pub fn start() -> Fleet {
        let mc_port = free_port();
        let _mems = (0..N)
            .map(pod_ip)
            .chain(["127.0.1.20".into(), "127.0.1.30".into()])
            .map(|ip| memcached(&ip, mc_port))
            .collect();
        Fleet { mc_port, _mems }
    }
}

fn pod_ip(i: usize) -> String {
    format!("127.0.1.{}", 10 + i)
}

/// The zone for `members` (pod index → IP).
fn zone(dns: &DnsServer, members: &[(usize, String)], port: u16) {
    let names: Vec<String> = members
        .iter()
        .map(|(i, _)| format!("mc-{i}.mc.test"))
        .collect();
    let srv: Vec<(u16, u16, u16, &str)> = names.iter().map(|n| (0, 0, port, n.as_str())).collect();
    dns.set_srv("_mc._tcp.mc.test", &srv, 1);
    for (n, (_, ip)) in names.iter().zip(members) {
        dns.set_addrs(n, &[ip], 1);
    }
    let ips: Vec<&str> = members.iter().map(|(_, ip)| ip.as_str()).collect();
    dns.set_addrs("all.mc.test", &ips, 1);
}

/// mcw's predicted share for pool `a` in its log (`remapped=12.3%`), if it logged one.
fn predicted(log: &str) -> Option<f64> {
    let line = log
        .lines()
        .find(|l| l.contains("pool servers") && l.contains("pool=a"))?;
    let value = line.split("remapped=").nth(1)?.split('%').next()?;
    value.parse::<f64>().ok().map(|p| p / 100.0)
}

/// Run one event with `keys` keys through `mcrouter`: (share of keys measured to have moved,
/// mcw's prediction).
pub fn scenario(fleet: &Fleet, mcrouter: &Mcrouter, row: &Row, keys: usize) -> (f64, Option<f64>) {
    let &(token, event, rendezvous, ..) = row;
    let mc_port = fleet.mc_port;
    for ip in (0..N)
        .map(pod_ip)
        .chain(["127.0.1.20".into(), "127.0.1.30".into()])
    {
        assert_eq!(
            memcache(&format!("{ip}:{mc_port}"), "flush_all\r\n"),
            "OK\r\n"
        );
    }
    let dns = DnsServer::start();
    let mut members: Vec<(usize, String)> = (0..N).map(|i| (i, pod_ip(i))).collect();
    zone(&dns, &members, mc_port);
    let work = Workdir::new();
    let server = match token {
        Token::Srv => "dnssrv://_mc._tcp.mc.test".to_string(),
        Token::A => format!("dns+{mc_port}://all.mc.test"),
    };
    let route = match rendezvous {
        true => r#"{"type": "PoolRoute", "pool": "a", "hash": {"hash_func": "Rendezvous"}}"#,
        false => r#""PoolRoute|a""#,
    };
    work.write(
        "template.json",
        &format!(r#"{{"pools": {{"a": {{"servers": ["{server}"]}}}}, "route": {route}}}"#),
    );
    let port = free_port();
    let router = format!("127.0.0.1:{port}");
    let mut cmd = work.mcw("run", &dns);
    cmd.arg("--output")
        .arg(work.path("out.json"))
        .args(["--min-refresh", "200ms", "--"])
        .arg(mcrouter.path());
    cmd.args([
        "-p",
        &port.to_string(),
        "--listen-addresses=127.0.0.1",
        "--reconfiguration-delay-ms=50",
    ])
    .args(mcrouter.isolation(work.dir.path()));
    cmd.env("MCW_LOG", "info");
    let w = Watcher::spawn(cmd, work.path("mcw.log"));
    let confirmed = |n: usize| w.log().matches("mcrouter runs the new config").count() >= n;
    wait_for("the first confirmation", Duration::from_secs(20), || {
        confirmed(1)
    });

    let keys: Vec<String> = (0..keys).map(|i| format!("user:{i}")).collect();
    let mut conn = MemcacheConn::open(&router);
    for k in &keys {
        assert_eq!(conn.ask(&format!("set {k} 0 0 1\r\nx\r\n")), "STORED\r\n");
    }
    match event {
        Event::NewIp => members[3].1 = "127.0.1.30".into(),
        Event::JoinAtEnd => members.push((N, "127.0.1.20".into())),
        Event::MiddleLeaves => {
            members.remove(4);
        }
    }
    dns.remove("all.mc.test");
    zone(&dns, &members, mc_port);
    wait_for("the confirmed reload", Duration::from_secs(20), || {
        confirmed(2)
    });
    let mut conn = MemcacheConn::open(&router);
    let misses = keys
        .iter()
        .filter(|k| !conn.ask(&format!("get {k}\r\n")).contains("VALUE"))
        .count();
    (misses as f64 / keys.len() as f64, predicted(&w.log()))
}
