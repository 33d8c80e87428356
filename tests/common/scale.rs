//! A template at scale and the DNS zone it asks: 1,000 tokens and 20,000 servers, 500
//! `dns://` names of 20 addresses each and 500 `dnssrv://` names of 20 targets each (addresses
//! in the additional section), every answer's records listed in reverse of mcw's order. Used by
//! the end-to-end render test and the scale benchmark; `check` verifies an output pool by pool.

use super::dns;

/// Tokens of each kind; each answers 20 servers.
const HALF: usize = 500;
const PER_TOKEN: usize = 20;
/// The pool whose token flaps in the benchmark, its name, and the address its second answer
/// has instead of .20 (sorting last, as .20 did).
pub const FLAPPING: &str = "d0";
pub const FLAPPING_NAME: &str = "a0.scale";
const FLAP_ADDR: &str = "10.100.0.77";
/// The pool that carries the edit number of the benchmark's edits, as the port of its one
/// static server.
const EDIT_POOL: &str = "edit";
pub const EDIT_PORT: u32 = 20_000;

/// One output file as seen: its edit number and the flapping pool's servers.
pub type Seen = (u32, Vec<String>);

/// Pool name → its servers in the order mcw must write them.
pub type Expected = Vec<(String, Vec<String>)>;

/// Load the 1,000 tokens into the server, each answer's records listed in reverse of the
/// canonical order (and rotated by the server on every answer); return the expected pools.
pub fn zone(server: &dns::DnsServer) -> Expected {
    let mut expected = Vec::new();
    for p in 0..HALF {
        let ips = dns_pool_ips(p);
        server.set_addrs(&format!("a{p}.scale"), &reversed(&ips), 3600);
        expected.push((format!("d{p}"), with_port(&ips)));
    }
    for p in 0..HALF {
        // Targets mc-0 … mc-19: natural order puts mc-2 before mc-10.
        let name = format!("_mc._tcp.s{p}.scale");
        let mut srv = Vec::new();
        let mut ips = Vec::new();
        for t in 0..PER_TOKEN {
            let target = format!("mc-{t}.s{p}.scale");
            let ip = format!("10.{}.{}.{}", 110 + p / 250, p % 250, t + 1);
            server.set_addrs(&target, &[&ip], 3600);
            srv.push(target);
            ips.push(ip);
        }
        let records: Vec<(u16, u16, u16, &str)> = srv
            .iter()
            .rev()
            .map(|t| (10, 1, 11211, t.as_str()))
            .collect();
        server.set_srv(&name, &records, 3600);
        expected.push((format!("s{p}"), with_port(&ips)));
    }
    expected
}

fn with_port(ips: &[String]) -> Vec<String> {
    ips.iter().map(|ip| format!("{ip}:11211")).collect()
}

/// The template, with edit number `edit` as the port of the `edit` pool's server.
pub fn template(edit: u32) -> String {
    let mut pools: Vec<String> = (0..HALF)
        .map(|p| format!("    \"d{p}\": {{\"servers\": [\"dns://a{p}.scale\"]}}"))
        .collect();
    pools.extend(
        (0..HALF)
            .map(|p| format!("    \"s{p}\": {{\"servers\": [\"dnssrv://_mc._tcp.s{p}.scale\"]}}")),
    );
    pools.push(format!(
        "    \"{EDIT_POOL}\": {{\"servers\": [\"10.250.0.1:{}\"]}}",
        EDIT_PORT + edit
    ));
    format!(
        "{{\n  \"pools\": {{\n{}\n  }},\n  \"route\": \"PoolRoute|{FLAPPING}\"\n}}\n",
        pools.join(",\n")
    )
}

/// What one output file says: its edit number and the flapping pool's servers, after checking
/// every other pool against `expected`. Panics on anything missing, extra or out of order.
pub fn check(text: &str, expected: &Expected) -> Seen {
    let config: serde_json::Value = serde_json::from_str(text).expect("a complete JSON file");
    let pools = config["pools"].as_object().expect("pools");
    assert_eq!(pools.len(), expected.len() + 1, "pools lost or added");
    let servers = |pool: &str| -> Vec<String> {
        pools[pool]["servers"]
            .as_array()
            .unwrap_or_else(|| panic!("pool {pool} has no servers"))
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    for (pool, want) in expected {
        if pool != FLAPPING {
            assert_eq!(&servers(pool), want, "pool {pool}");
        }
    }
    let edit: Vec<String> = servers(EDIT_POOL);
    let port: u32 = edit[0].rsplit_once(':').unwrap().1.parse().unwrap();
    (port - EDIT_PORT, servers(FLAPPING))
}

/// Make the flapping pool's name answer two address sets in turn from its next query on, with
/// TTL 1 s; returns the pool's two server lists in canonical order.
pub fn start_flapping(server: &dns::DnsServer) -> [Vec<String>; 2] {
    let first = dns_pool_ips(0);
    let mut second = first.clone();
    second[PER_TOKEN - 1] = FLAP_ADDR.to_string();
    server.set_addrs(FLAPPING_NAME, &reversed(&first), 1);
    server.flap_addrs(FLAPPING_NAME, &reversed(&second), 1);
    [with_port(&first), with_port(&second)]
}

/// The addresses of `dns://` pool `p` in canonical order: 10.100.0.1 … 10.101.243.20, where
/// .1 < .2 < … < .20 numerically (not as text).
fn dns_pool_ips(p: usize) -> Vec<String> {
    (1..=PER_TOKEN)
        .map(|i| format!("10.{}.{}.{i}", 100 + p / 250, p % 250))
        .collect()
}

fn reversed(ips: &[String]) -> Vec<&str> {
    ips.iter().rev().map(String::as_str).collect()
}
