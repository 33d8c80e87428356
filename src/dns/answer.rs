//! What DNS answered for one token, held in mcw's canonical order.
//!
//! Owns the ordering rule that decides which memcached sits at which index (README, "Server order"): SRV
//! records by priority, then target in natural order, then port; addresses numerically, IPv4
//! first. An [`Answer`] can only be built sorted, so every consumer sees the same order
//! whatever order the server sent. No I/O here.

use std::cmp::Ordering;
use std::net::IpAddr;

/// One SRV record with the addresses of its target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SrvTarget {
    pub priority: u16,
    /// The record's weight: not part of the order (which must not change when weights do),
    /// but a `WeightedCh3` pool's `weights` come from it.
    pub weight: u16,
    pub port: u16,
    /// Target name without its trailing dot, as the server spelled it.
    pub target: String,
    pub addrs: Vec<IpAddr>,
}

/// The records behind one token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Records {
    Addrs(Vec<IpAddr>),
    Srv(Vec<SrvTarget>),
}

/// A resolved token: records in canonical order plus the smallest TTL seen on the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    records: Records,
    ttl: u32,
}

impl Answer {
    /// Build an answer, putting the records into canonical order and dropping exact repeats
    /// (a server listing the same record twice must not add a server).
    pub fn new(records: Records, ttl: u32) -> Self {
        let records = match records {
            Records::Addrs(mut addrs) => {
                sort_addrs(&mut addrs);
                Records::Addrs(addrs)
            }
            Records::Srv(mut targets) => {
                for t in &mut targets {
                    sort_addrs(&mut t.addrs);
                }
                targets.sort_by(compare_srv);
                // Repeats of one record (same priority, target and port) count once; should
                // their addresses differ, the union is kept, so the order records arrived in
                // never decides which addresses survive.
                targets.dedup_by(|later, kept| {
                    let same = compare_srv(later, kept) == Ordering::Equal;
                    if same && later.addrs != kept.addrs {
                        kept.addrs.append(&mut later.addrs);
                        sort_addrs(&mut kept.addrs);
                    }
                    if same {
                        kept.weight = kept.weight.max(later.weight);
                    }
                    same
                });
                Records::Srv(targets)
            }
        };
        Answer { records, ttl }
    }

    /// An answer with no servers, used for NXDOMAIN/empty under `--allow-empty`.
    pub fn empty(srv: bool) -> Self {
        let records = if srv {
            Records::Srv(Vec::new())
        } else {
            Records::Addrs(Vec::new())
        };
        Answer { records, ttl: 0 }
    }

    pub fn records(&self) -> &Records {
        &self.records
    }

    pub fn ttl(&self) -> u32 {
        self.ttl
    }
}

/// One server of an answer, as `--hold-removed` keeps it: an address of an A/AAAA answer, or
/// an SRV record (identified by target and port) with the addresses it had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Member {
    Addr(IpAddr),
    Srv(SrvTarget),
}

impl Member {
    /// The same server: one address, or one SRV record whatever its addresses.
    pub fn same(&self, other: &Member) -> bool {
        match (self, other) {
            (Member::Addr(a), Member::Addr(b)) => a == b,
            (Member::Srv(a), Member::Srv(b)) => same_record(a, b),
            _ => false,
        }
    }
}

/// An SRV record is known by its target and port; its addresses may change.
fn same_record(a: &SrvTarget, b: &SrvTarget) -> bool {
    a.target == b.target && a.port == b.port
}

/// `10.0.0.1`, or `mc-1.mc.ns.svc:11211` for an SRV record.
impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Member::Addr(ip) => write!(f, "{ip}"),
            Member::Srv(t) => write!(f, "{}:{}", t.target, t.port),
        }
    }
}

impl Answer {
    /// The servers of this answer, one per address or SRV record.
    pub fn members(&self) -> Vec<Member> {
        match &self.records {
            Records::Addrs(addrs) => addrs.iter().copied().map(Member::Addr).collect(),
            Records::Srv(targets) => targets.iter().cloned().map(Member::Srv).collect(),
        }
    }

    /// Whether this answer has a server that is `member` (an SRV record by target and port).
    pub fn has(&self, member: &Member) -> bool {
        match (&self.records, member) {
            (Records::Addrs(addrs), Member::Addr(ip)) => addrs.contains(ip),
            (Records::Srv(targets), Member::Srv(t)) => targets.iter().any(|x| same_record(x, t)),
            _ => false,
        }
    }

    /// This answer with `extra` servers added back, each landing where canonical order puts
    /// it: where it was before it vanished, if nothing else changed.
    pub fn with(&self, extra: &[Member]) -> Answer {
        let mut records = self.records.clone();
        for member in extra.iter().filter(|m| !self.has(m)) {
            match (&mut records, member) {
                (Records::Addrs(addrs), Member::Addr(ip)) => addrs.push(*ip),
                (Records::Srv(targets), Member::Srv(t)) => targets.push(t.clone()),
                _ => {}
            }
        }
        Answer::new(records, self.ttl)
    }

    /// This answer without the servers in `gone`.
    pub fn without(&self, gone: &[Member]) -> Answer {
        let mut records = self.records.clone();
        match &mut records {
            Records::Addrs(addrs) => addrs.retain(|ip| !gone.contains(&Member::Addr(*ip))),
            Records::Srv(targets) => targets.retain(|t| {
                !gone
                    .iter()
                    .any(|g| matches!(g, Member::Srv(h) if same_record(h, t)))
            }),
        }
        Answer::new(records, self.ttl)
    }
}

fn sort_addrs(addrs: &mut Vec<IpAddr>) {
    // IpAddr's own order is numeric with every IPv4 address before every IPv6 one.
    addrs.sort_unstable();
    addrs.dedup();
}

fn compare_srv(a: &SrvTarget, b: &SrvTarget) -> Ordering {
    a.priority
        .cmp(&b.priority)
        .then_with(|| natural_cmp(&a.target, &b.target))
        .then_with(|| a.port.cmp(&b.port))
}

/// Natural order of host names: case-insensitive, trailing dot ignored, runs of digits compared
/// as numbers, so `mc-2` < `mc-10`. Ties between spellings that differ only in case or leading
/// zeros fall back to plain byte order so the order stays total and deterministic.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut x, mut y) = (trim_dot(a).as_bytes(), trim_dot(b).as_bytes());
    loop {
        match (x.first(), y.first()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(c), Some(d)) if c.is_ascii_digit() && d.is_ascii_digit() => {
                let (nx, rx) = split_digits(x);
                let (ny, ry) = split_digits(y);
                let (tx, ty) = (trim_zeros(nx), trim_zeros(ny));
                let ord = tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty));
                if ord != Ordering::Equal {
                    return ord;
                }
                (x, y) = (rx, ry);
            }
            (Some(c), Some(d)) => {
                let ord = c.to_ascii_lowercase().cmp(&d.to_ascii_lowercase());
                if ord != Ordering::Equal {
                    return ord;
                }
                (x, y) = (&x[1..], &y[1..]);
            }
        }
    }
}

fn trim_dot(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

fn split_digits(s: &[u8]) -> (&[u8], &[u8]) {
    let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
    s.split_at(n)
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b'0').count();
    &s[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(priority: u16, target: &str, port: u16) -> SrvTarget {
        SrvTarget {
            priority,
            weight: 1,
            port,
            target: target.into(),
            addrs: vec![],
        }
    }

    /// Found by the order property (tests/properties.rs): a record listed twice with
    /// different addresses kept whichever copy came first.
    #[test]
    fn a_repeated_record_keeps_the_union_of_its_addresses_whatever_the_order() {
        let with = |addr: &str| SrvTarget {
            weight: 1,
            addrs: vec![addr.parse().unwrap()],
            ..srv(0, "mc-0.mc.test", 11211)
        };
        let one = Answer::new(Records::Srv(vec![with("10.0.0.2"), with("10.0.0.1")]), 5);
        let two = Answer::new(Records::Srv(vec![with("10.0.0.1"), with("10.0.0.2")]), 5);
        assert_eq!(one, two);
        let Records::Srv(targets) = one.records() else {
            unreachable!()
        };
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].addrs.len(), 2);
    }

    #[test]
    fn natural_order_table() {
        use Ordering::*;
        let cases = [
            ("mc-2", "mc-10", Less),
            ("mc-10", "mc-9", Greater),
            ("MC-1", "mc-1", Less), // equal but for case: byte order breaks the tie
            ("mc-1.", "mc-1", Greater),
            ("mc-01", "mc-1", Less),
            ("mc-a", "mc-B", Less),
            ("mc", "mc-0", Less),
            ("a9b", "a10a", Less),
            ("mc-0.mc.ns.svc", "mc-0.mc.ns.svc", Equal),
            ("x-18446744073709551616", "x-18446744073709551617", Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(natural_cmp(a, b), want, "{a} vs {b}");
            assert_eq!(natural_cmp(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    #[test]
    fn srv_order_is_priority_then_natural_target_then_port() {
        let shuffled = vec![
            srv(10, "mc-10.mc", 11211),
            srv(20, "mc-0.mc", 11211),
            srv(10, "mc-2.mc", 11212),
            srv(10, "mc-2.mc", 11211),
            srv(10, "MC-1.mc", 11211),
        ];
        let answer = Answer::new(Records::Srv(shuffled), 30);
        let Records::Srv(targets) = answer.records() else {
            panic!("srv answer")
        };
        let order: Vec<_> = targets
            .iter()
            .map(|t| format!("{} {}:{}", t.priority, t.target, t.port))
            .collect();
        assert_eq!(
            order,
            [
                "10 MC-1.mc:11211",
                "10 mc-2.mc:11211",
                "10 mc-2.mc:11212",
                "10 mc-10.mc:11211",
                "20 mc-0.mc:11211"
            ]
        );
    }

    #[test]
    fn addresses_are_numeric_ipv4_first_without_repeats() {
        let addrs = [
            "::1",
            "10.0.0.10",
            "10.0.0.9",
            "2001:db8::2",
            "10.0.0.9",
            "9.0.0.1",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let answer = Answer::new(Records::Addrs(addrs), 5);
        let Records::Addrs(addrs) = answer.records() else {
            panic!("address answer")
        };
        let got: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            got,
            ["9.0.0.1", "10.0.0.9", "10.0.0.10", "::1", "2001:db8::2"]
        );
    }
}
