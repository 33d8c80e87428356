//! A memcached fleet behind `mcw run --warm-up` and the real mcrouter, shared by
//! `tests/warmup.rs` and `benches/warmup.rs`: five memcached "pods" `mc-0`…`mc-4` on
//! 127.0.3.1–5 (one port), a StatefulSet-like SRV name `_mc._tcp.cache.test` whose targets
//! the test changes (a pod joins, leaves, or comes back with a new IP), and the changes the
//! warm-up study measured.

use std::time::{Duration, Instant};

use super::*;

pub const SRV: &str = "_mc._tcp.cache.test";

/// The template: one Ch3 (or Rendezvous) pool of the SRV name's pods.
pub fn template(rendezvous: bool) -> String {
    let route = match rendezvous {
        false => r#""PoolRoute|p""#.to_string(),
        true => r#"{"type": "PoolRoute", "pool": "p", "hash": {"hash_func": "Rendezvous"}}"#.into(),
    };
    format!(r#"{{"pools": {{"p": {{"servers": ["dnssrv://{SRV}"]}}}}, "route": {route}}}"#)
}

/// Pods as (SRV target `mc-N`, address `127.0.3.M`).
pub type Pods = Vec<(u8, u8)>;

/// A change of the pool, as the study measured them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// mc-3 joins mc-0..2.
    ScaleUp,
    /// mc-1 comes back at a new address (127.0.3.5); the old one still serves.
    NewIp,
    /// mc-3 leaves mc-0..3, and still serves.
    ScaleDown,
    /// mc-1 leaves mc-0..3 (the middle of a Ch3 list), and still serves.
    MiddleLeaves,
    /// mc-1 comes back at a new address, and its old memcached is gone (stopped before the
    /// change): nothing to warm from.
    NewIpOldGone,
}

impl Change {
    pub fn name(self) -> &'static str {
        match self {
            Change::ScaleUp => "scale-up 3 → 4",
            Change::NewIp => "pod IP change, old pod serving",
            Change::ScaleDown => "scale-down 4 → 3, old pod serving",
            Change::MiddleLeaves => "removal from the middle 4 → 3, old pod serving",
            Change::NewIpOldGone => "pod IP change, old pod gone",
        }
    }

    /// The memcached (address index) the change stops, if any.
    pub fn stops(self) -> Option<u8> {
        (self == Change::NewIpOldGone).then_some(2)
    }

    /// Pods (target index, address index) before and after.
    pub fn pods(self) -> (Pods, Pods) {
        match self {
            Change::ScaleUp => (
                vec![(0, 1), (1, 2), (2, 3)],
                vec![(0, 1), (1, 2), (2, 3), (3, 4)],
            ),
            Change::NewIp | Change::NewIpOldGone => {
                (vec![(0, 1), (1, 2), (2, 3)], vec![(0, 1), (1, 5), (2, 3)])
            }
            Change::ScaleDown => (
                vec![(0, 1), (1, 2), (2, 3), (3, 4)],
                vec![(0, 1), (1, 2), (2, 3)],
            ),
            Change::MiddleLeaves => (
                vec![(0, 1), (1, 2), (2, 3), (3, 4)],
                vec![(0, 1), (2, 3), (3, 4)],
            ),
        }
    }
}

/// A replica's refresh options: DNS asked every second, a dead server given 300 ms.
pub const FAST: [&str; 6] = [
    "--min-refresh",
    "1s",
    "--max-refresh",
    "1s",
    "--dns-timeout",
    "300ms",
];

/// Five memcached on 127.0.3.1–5, and a DNS server.
pub struct Fleet {
    pub dns: DnsServer,
    pub port: u16,
    /// By address index − 1; `None` while stopped.
    memcached: std::sync::Mutex<Vec<Option<Daemon>>>,
}

impl Fleet {
    pub fn start() -> Fleet {
        let port = free_port();
        let memcached = (1..=5)
            .map(|n| Some(memcached(&format!("127.0.3.{n}"), port)))
            .collect();
        Fleet {
            dns: DnsServer::start(),
            port,
            memcached: std::sync::Mutex::new(memcached),
        }
    }

    /// Stop the memcached at 127.0.3.`n` (its port then refuses connections).
    pub fn stop(&self, n: u8) {
        self.memcached.lock().unwrap()[usize::from(n) - 1] = None;
    }

    /// Start it again, empty.
    pub fn revive(&self, n: u8) {
        let mut all = self.memcached.lock().unwrap();
        let slot = &mut all[usize::from(n) - 1];
        if slot.is_none() {
            *slot = Some(memcached(&format!("127.0.3.{n}"), self.port));
        }
    }

    /// Address indexes of the memcached that run.
    fn running(&self) -> Vec<u8> {
        let all = self.memcached.lock().unwrap();
        (1..=5)
            .filter(|n| all[usize::from(*n) - 1].is_some())
            .collect()
    }

    /// DNS lists `pods` ((target, address) pairs), TTL 1 s.
    pub fn set(&self, pods: &[(u8, u8)]) {
        let records: Vec<(u16, u16, u16, String)> = pods
            .iter()
            .map(|(t, _)| (0, 1, self.port, format!("mc-{t}.cache.test")))
            .collect();
        let refs: Vec<(u16, u16, u16, &str)> = records
            .iter()
            .map(|(p, w, port, t)| (*p, *w, *port, t.as_str()))
            .collect();
        for (t, a) in pods {
            self.dns
                .set_addrs(&format!("mc-{t}.cache.test"), &[&format!("127.0.3.{a}")], 1);
        }
        self.dns.set_srv(SRV, &refs, 1);
    }

    /// Every memcached empty.
    pub fn flush(&self) {
        for n in self.running() {
            memcache(&self.addr(n), "flush_all\r\n");
        }
    }

    pub fn addr(&self, n: u8) -> String {
        format!("127.0.3.{n}:{}", self.port)
    }

    /// `get_hits` and `cmd_get` + `cmd_set` (+ the others) summed over the fleet: what
    /// mcrouter sent to memcached.
    pub fn requests(&self) -> u64 {
        self.running()
            .into_iter()
            .map(|n| {
                let stats = memcache(&self.addr(n), "stats\r\n");
                let stat = |name: &str| {
                    stats
                        .lines()
                        .find_map(|l| l.strip_prefix(&format!("STAT {name} ")))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .unwrap_or(0)
                };
                stat("cmd_get")
                    + stat("cmd_set")
                    + stat("cmd_touch")
                    + stat("delete_hits")
                    + stat("delete_misses")
            })
            .sum()
    }
}

/// `mcw run` over the real mcrouter `router` on the fleet, `extra` among mcw's options.
pub struct Replica {
    pub w: Watcher,
    pub addr: String,
    pub web: String,
    pub work: Workdir,
}

impl Replica {
    pub fn start(fleet: &Fleet, router: &Mcrouter, rendezvous: bool, extra: &[&str]) -> Replica {
        let work = Workdir::new();
        work.write("template.json", &template(rendezvous));
        let port = free_port();
        let web = format!("127.0.0.1:{}", free_port());
        let mut args = vec!["--metrics-listen", web.as_str()];
        args.extend(extra);
        let w = run_router(&work, &fleet.dns, &args, router, port);
        wait_for("the first confirmation", Duration::from_secs(20), || {
            w.log().contains("mcrouter runs the new config")
        });
        Replica {
            w,
            addr: format!("127.0.0.1:{port}"),
            web,
            work,
        }
    }

    /// The warm-up phase `/status` shows, `none` without one.
    pub fn phase(&self) -> String {
        let body = http::get(&self.web, "/status").body;
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        status["warm_up"]["phase"]
            .as_str()
            .unwrap_or("none")
            .to_string()
    }

    /// Wait until the warm-up phase `phase` runs (its config confirmed).
    pub fn wait_phase(&self, phase: &str, limit: Duration) {
        let needle = format!("warm-up phase runs phase=\"{phase}\"");
        let deadline = Instant::now() + limit;
        while !self.w.log().contains(&needle) {
            assert!(
                Instant::now() < deadline,
                "never reached {phase}:\n{}",
                self.w.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many configs mcrouter confirmed so far.
    pub fn confirmations(&self) -> usize {
        self.w.log().matches("mcrouter runs the new config").count()
    }
}

/// Set `n` keys `key:i` = `value:i` through mcrouter at `addr`.
pub fn set_keys(addr: &str, n: usize) {
    let mut c = MemcacheConn::open(addr);
    for i in 0..n {
        let reply = c.ask(&format!(
            "set key:{i} 0 0 {}\r\nvalue:{i}\r\n",
            format!("value:{i}").len()
        ));
        assert_eq!(reply, "STORED\r\n", "key:{i}");
    }
}

/// Read `n` keys through mcrouter at `addr`: how many were found (with their value), and each
/// get's latency.
pub fn read_keys(addr: &str, n: usize) -> (usize, Vec<Duration>) {
    let mut c = MemcacheConn::open(addr);
    let mut hits = 0;
    let mut took = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        let reply = c.ask(&format!("get key:{i}\r\n"));
        took.push(start.elapsed());
        assert!(!reply.contains("ERROR"), "key:{i}: {reply}");
        if reply.contains(&format!("value:{i}\r\n")) {
            hits += 1;
        }
    }
    (hits, took)
}

/// The hit ratio of reading every key once right after `change` is confirmed (with
/// `--warm-up`: once its warm-up phase runs), with how many requests memcached saw for the
/// read and the gets' latencies. `warm`: mcw's `--warm-up`.
pub fn hit_ratio(
    fleet: &Fleet,
    router: &Mcrouter,
    change: Change,
    rendezvous: bool,
    warm: Option<&str>,
    keys: usize,
) -> (f64, u64, Vec<Duration>) {
    fleet.flush();
    let (before, after) = change.pods();
    fleet.set(&before);
    let mut extra = FAST.to_vec();
    if let Some(d) = warm {
        extra.extend(["--warm-up", d]);
    }
    let r = Replica::start(fleet, router, rendezvous, &extra);
    set_keys(&r.addr, keys);
    let confirmed = r.confirmations();
    if let Some(n) = change.stops() {
        fleet.stop(n);
    }
    fleet.set(&after);
    r.w.signal(libc::SIGHUP);
    match warm {
        Some(_) if change.stops().is_none() => r.wait_phase("warm_up", Duration::from_secs(30)),
        _ => wait_for("the change confirmed", Duration::from_secs(20), || {
            r.confirmations() > confirmed
        }),
    }
    let sent = fleet.requests();
    let (hits, took) = read_keys(&r.addr, keys);
    let requests = fleet.requests() - sent;
    if let Some(n) = change.stops() {
        fleet.revive(n);
    }
    (hits as f64 / keys as f64, requests, took)
}

/// p50 and p99 of `took`, in µs.
pub fn percentiles(took: &mut [Duration]) -> (u128, u128) {
    took.sort();
    let at = |q: f64| took[((took.len() as f64 * q) as usize).min(took.len() - 1)].as_micros();
    (at(0.5), at(0.99))
}

/// Keys `prefix:i` whose server the change moves, as Ch3 places them.
pub fn moved_keys(change: Change, prefix: &str, n: usize) -> Vec<String> {
    let (before, after) = change.pods();
    let server = |pods: &[(u8, u8)], key: &str| {
        pods[mcw::placement::furc(key.as_bytes(), pods.len() as u32) as usize].1
    };
    (0..)
        .map(|i| format!("{prefix}:{i}"))
        .filter(|k| server(&before, k) != server(&after, k))
        .take(n)
        .collect()
}

/// The address index (127.0.3.N) of `key`'s server before and after `change`, under Ch3.
pub fn servers_of(change: Change, key: &str) -> (u8, u8) {
    let (before, after) = change.pods();
    let at = |pods: &[(u8, u8)]| {
        pods[mcw::placement::furc(key.as_bytes(), pods.len() as u32) as usize].1
    };
    (at(&before), at(&after))
}
