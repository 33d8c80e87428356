//! Properties of rendering and placement over generated DNS answers and templates (proptest):
//! the order DNS answers in never shows in the output; rendering a rendered config changes
//! nothing; Rendezvous tags line up with the servers; reordering a Rendezvous pool remaps no key.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use mcw::dns::Query;
use mcw::dns::{Answer, Records, SrvTarget};
use mcw::placement::{self, Hashing, Pool};
use mcw::template::Template;
use mcw::template::pools::pools_of;
use mcw::template::render::render;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::Value;

/// Addresses from small ranges, so repeats (which must count once) happen.
fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        3 => (0u8..4, 0u8..8).prop_map(|(a, b)| IpAddr::V4(Ipv4Addr::new(10, 0, a, b))),
        1 => (0u16..8).prop_map(|n| IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, n))),
    ]
}

/// SRV targets named as StatefulSet pods and otherwise, in mixed case, some with a trailing
/// dot, so natural and case-insensitive ordering are exercised.
fn target() -> impl Strategy<Value = SrvTarget> {
    let name = prop_oneof![
        (0u8..12).prop_map(|n| format!("mc-{n}.mc.test")),
        (0u8..12).prop_map(|n| format!("MC-{n}.mc.test.")),
        "[a-z]{1,3}[0-9]{0,2}\\.test",
    ];
    (
        0u16..3,
        select(vec![11211u16, 11311]),
        name,
        prop::collection::vec(ip(), 1..3),
    )
        .prop_map(|(priority, port, target, addrs)| SrvTarget {
            weight: 1,
            priority,
            port,
            target,
            addrs,
        })
}

/// The records of one answer, and the same records in another order (targets and each
/// target's addresses permuted).
fn records_twice() -> impl Strategy<Value = (Records, Records)> {
    let records = prop_oneof![
        prop::collection::vec(ip(), 0..12).prop_map(Records::Addrs),
        prop::collection::vec(target(), 0..12).prop_map(Records::Srv),
    ];
    let order = Just((0..12usize).collect::<Vec<_>>()).prop_shuffle();
    (records, order).prop_map(|(records, order)| {
        let permuted = |n: usize| order.iter().copied().filter(move |&i| i < n);
        let other = match &records {
            Records::Addrs(addrs) => {
                Records::Addrs(permuted(addrs.len()).map(|i| addrs[i]).collect())
            }
            Records::Srv(targets) => Records::Srv(
                permuted(targets.len())
                    .map(|i| {
                        let mut t = targets[i].clone();
                        t.addrs.reverse();
                        t
                    })
                    .collect(),
            ),
        };
        (records, other)
    })
}

/// A template with one pool per hashing, each mixing a token with a static server.
fn template(srv: bool, rendezvous: bool) -> String {
    let token = match srv {
        true => "dnssrv://_memcache._tcp.mc.test",
        false => "dns+11311://mc.test",
    };
    let route = match rendezvous {
        true => r#"{"type": "PoolRoute", "pool": "a", "hash": {"hash_func": "Rendezvous"}}"#,
        false => r#"{"type": "PoolRoute", "pool": "a"}"#,
    };
    format!(
        r#"{{
  // generated
  "pools": {{"a": {{"servers": ["10.9.9.9:11211", "{token}", "{token}?protocol=ascii"]}},
            "b": {{"servers": ["{token}"]}}}},
  "route": {route},
}}"#
    )
}

fn parse(text: &str) -> Template {
    Template::parse(Path::new("generated.json"), text).expect("generated templates parse")
}

/// Render `template` with `records` as the answer to each of its queries.
fn rendered(template: &Template, records: &Records) -> Vec<u8> {
    let answers: HashMap<Query, Answer> = template
        .queries()
        .into_iter()
        .map(|q| (q, Answer::new(records.clone(), 30)))
        .collect();
    render(template, &answers)
        .expect("every query answered")
        .bytes
}

fn srv_of(records: &Records) -> bool {
    matches!(records, Records::Srv(_))
}

proptest! {
    // A failure prints its minimal input; it becomes a unit test where the bug is fixed
    // (as `a_repeated_record_keeps_the_union_of_its_addresses_whatever_the_order` did), so no
    // regression file is kept.
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Whatever order the DNS server lists records in, the bytes written are the same.
    #[test]
    fn output_does_not_depend_on_answer_order(
        (first, second) in records_twice(),
        rendezvous in any::<bool>(),
    ) {
        let t = parse(&template(srv_of(&first), rendezvous));
        let text = |r: &Records| String::from_utf8(rendered(&t, r)).unwrap();
        prop_assert_eq!(text(&first), text(&second), "{:?}\n{:?}", first, second);
    }

    /// A rendered config, read back as a template, renders to the same bytes: nothing in mcw's
    /// output looks like a token, and tags mcw wrote are kept as the template's own.
    #[test]
    fn rendering_a_render_changes_nothing(
        (records, _) in records_twice(),
        rendezvous in any::<bool>(),
    ) {
        let t = parse(&template(srv_of(&records), rendezvous));
        let once = rendered(&t, &records);
        let again = parse(std::str::from_utf8(&once).unwrap());
        prop_assert!(again.queries().is_empty());
        prop_assert_eq!(rendered(&again, &records), once);
    }

    /// A Rendezvous pool gets one distinct tag per server, in server order: each tag is the
    /// server's identity (its SRV target and port, or its address), numbered when repeated.
    #[test]
    fn rendezvous_tags_match_the_servers_one_to_one((records, _) in records_twice()) {
        let t = parse(&template(srv_of(&records), true));
        let config: Value = serde_json::from_slice(&rendered(&t, &records)).unwrap();
        let servers = config["pools"]["a"]["servers"].as_array().unwrap();
        let tags = config["route"]["hash"]["tags"].as_array().unwrap();
        prop_assert_eq!(tags.len(), servers.len());
        let unique: std::collections::HashSet<&Value> = tags.iter().collect();
        prop_assert_eq!(unique.len(), tags.len());
        // Identities in server order, as the records expand.
        let mut ids = vec!["10.9.9.9:11211".to_string()];
        let answer = Answer::new(records.clone(), 30);
        for _ in 0..2 {
            match answer.records() {
                Records::Addrs(addrs) => ids.extend(addrs.iter().map(|ip| {
                    mcw::template::render::host_port(ip, 11311)
                })),
                Records::Srv(targets) => ids.extend(targets.iter().flat_map(|t| {
                    t.addrs.iter().map(move |_| format!("{}:{}", t.target, t.port))
                })),
            }
        }
        for (tag, id) in tags.iter().zip(&ids) {
            let tag = tag.as_str().unwrap();
            let base = tag.split_once('#').map_or(tag, |(base, _)| base);
            prop_assert_eq!(base, id.as_str());
        }
    }

    /// Reordering the servers of a Rendezvous pool, each keeping its tag, moves no key: the
    /// hash follows tags, not positions.
    #[test]
    fn reordering_a_rendezvous_pool_remaps_nothing(
        order in Just((0..12usize).collect::<Vec<_>>()).prop_shuffle(),
        n in 1usize..12,
    ) {
        let servers: Vec<String> = (0..n).map(|i| format!("10.0.0.{i}:11211")).collect();
        let tags: Vec<String> = (0..n).map(|i| format!("mc-{i}.mc.test:11211")).collect();
        let order: Vec<usize> = order.into_iter().filter(|&i| i < n).collect();
        let before = Pool {
            servers: servers.clone(),
            hashing: Hashing::Rendezvous { tags: tags.clone() },
        };
        let after = Pool {
            servers: order.iter().map(|&i| servers[i].clone()).collect(),
            hashing: Hashing::Rendezvous { tags: order.iter().map(|&i| tags[i].clone()).collect() },
        };
        let share = placement::remapped(Some(&before), Some(&after)).unwrap();
        prop_assert_eq!(share.ratio(), 0.0);
        // Under Ch3, which hashes to positions, the same reordering does move keys.
        let ch3 = |p: &Pool| Pool { servers: p.servers.clone(), hashing: Hashing::Ch3 };
        let moved = placement::remapped(Some(&ch3(&before)), Some(&ch3(&after))).unwrap();
        let identity = order.iter().enumerate().all(|(i, &j)| i == j);
        prop_assert_eq!(moved.ratio() > 0.0, !identity);
    }

    /// What mcw reads back from a config it rendered (to log and measure the next change)
    /// names each pool with the servers the file lists, in the file's order, hashed as the
    /// file's route says: checked against the JSON itself, not against mcw's own reading.
    #[test]
    fn pools_read_back_match_the_render(
        (records, _) in records_twice(),
        rendezvous in any::<bool>(),
    ) {
        let t = parse(&template(srv_of(&records), rendezvous));
        let bytes = rendered(&t, &records);
        let config: Value = serde_json::from_slice(&bytes).unwrap();
        let listed = |pool: &str| -> Vec<String> {
            config["pools"][pool]["servers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        };
        let back = pools_of(&config);
        prop_assert_eq!(back.keys().collect::<Vec<_>>(), ["a", "b"]);
        prop_assert_eq!(&back["a"].servers, &listed("a"));
        prop_assert_eq!(&back["b"].servers, &listed("b"));
        // Pool a: the static server, then the token's servers twice (plain, then ascii).
        let expanded = listed("b").len();
        prop_assert_eq!(listed("a").len(), 1 + 2 * expanded);
        match &back["a"].hashing {
            Hashing::Rendezvous { tags } => {
                prop_assert!(rendezvous);
                let written: Vec<String> = config["route"]["hash"]["tags"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t.as_str().unwrap().to_string())
                    .collect();
                prop_assert_eq!(tags, &written);
            }
            Hashing::Ch3 => prop_assert!(!rendezvous),
            other => prop_assert!(false, "unexpected hashing {:?}", other),
        }
    }
}
