//! The plan and the phase configs, checked against mcrouter's own hash functions: for every
//! kind of change and thousands of keys, the slot the warm-up route picks is the plain pool
//! exactly when the key's server did not change.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Value, json};

use super::routes::{self, OLD_TIMEOUT_MS};
use super::*;
use crate::placement::{self, Hashing};
use crate::template::{self, Template};

/// A rendered static config of pool `p` hashed with `hash` ("Ch3", or "Rendezvous" with
/// tags derived from the servers as mcw writes them for static entries: the strings).
fn rendered(servers: &[&str], hash: &str) -> Rendered {
    let route = match hash {
        "Ch3" => json!("PoolRoute|p"),
        _ => json!({"type": "PoolRoute", "pool": "p", "hash": {"hash_func": hash}}),
    };
    let config = json!({"pools": {"p": {"servers": servers}}, "route": route});
    let t = Template::parse("t.json".as_ref(), &config.to_string()).unwrap();
    template::render(&t, &Default::default()).unwrap()
}

/// Servers `a.0` … named after their index, at `10.0.0.N:11211`.
fn servers(names: &[u8]) -> Vec<String> {
    names.iter().map(|n| format!("10.0.0.{n}:11211")).collect()
}

fn index(hashing: &Hashing, key: &[u8], n: usize) -> usize {
    match hashing {
        Hashing::Rendezvous { tags } => placement::rendezvous(key, tags).unwrap(),
        _ => placement::furc(key, n as u32) as usize,
    }
}

/// For each key: the slot the plan's route picks, beside its old and new server.
fn check_split(p: &PoolPlan, alive: &HashSet<String>) -> (usize, usize) {
    let (mut plain, mut moved) = (0, 0);
    for k in 0..4000 {
        let key = format!("key:{k}");
        let key = key.as_bytes();
        let old = &p.before.servers[index(&p.before.hashing, key, p.before.servers.len())];
        let new = &p.after.servers[index(&p.after.hashing, key, p.after.servers.len())];
        let (slot, other) = match &p.split {
            Split::New(s) => (&s[index(&p.after.hashing, key, s.len())], &p.before.hashing),
            Split::Old(s) => (&s[index(&p.before.hashing, key, s.len())], &p.after.hashing),
        };
        let slot = match slot {
            Slot::ByOther(inner) => &inner[index(other, key, inner.len())],
            slot => slot,
        };
        match slot {
            Slot::Plain => {
                assert_eq!(old, new, "{:?}: a key routed plain moved", p.split);
                plain += 1;
            }
            Slot::Warm => {
                assert_ne!(
                    old, new,
                    "{:?}: an unmoved key went through warm-up",
                    p.split
                );
                assert!(alive.contains(old) || p.after.servers.contains(old));
                moved += 1;
            }
            Slot::Cold => {
                assert_ne!(old, new);
                assert!(!alive.contains(old) && !p.after.servers.contains(old));
                moved += 1;
            }
            Slot::ByOther(_) => panic!("nested twice"),
        }
    }
    (plain, moved)
}

fn plan_of(
    before: &[String],
    after: &[String],
    hash: &str,
    dead: &[String],
) -> (Plan, HashSet<String>) {
    fn refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let b = rendered(&refs(before), hash);
    let a = rendered(&refs(after), hash);
    let alive: HashSet<String> = old_servers(&b, &a)
        .into_iter()
        .filter(|s| !dead.contains(s))
        .collect();
    (plan(&b, &a, &alive), alive)
}

/// Every kind of change, under both hashes: the route the plan renders sends exactly the keys
/// whose server changed through the warm-up routes (mcrouter's own hash functions).
#[test]
fn the_split_sends_exactly_the_moved_keys_through_the_warm_up() {
    let cases: Vec<(&str, Vec<String>, Vec<String>)> = vec![
        ("growth 3 -> 4", servers(&[1, 2, 3]), servers(&[1, 2, 3, 4])),
        (
            "growth 3 -> 6",
            servers(&[1, 2, 3]),
            servers(&[1, 2, 3, 4, 5, 6]),
        ),
        ("a pod's new IP", servers(&[1, 2, 3]), servers(&[1, 9, 3])),
        (
            "a new IP and growth",
            servers(&[1, 2, 3]),
            servers(&[1, 9, 3, 4]),
        ),
        ("shrink 4 -> 3", servers(&[1, 2, 3, 4]), servers(&[1, 2, 3])),
        (
            "removal from the middle",
            servers(&[1, 2, 3, 4]),
            servers(&[1, 3, 4]),
        ),
        (
            "one out, one in",
            servers(&[1, 2, 3, 4]),
            servers(&[1, 3, 4, 5]),
        ),
    ];
    for hash in ["Ch3", "Rendezvous"] {
        for (what, before, after) in &cases {
            let (plan, alive) = plan_of(before, after, hash, &[]);
            assert!(plan.skipped.is_empty(), "{hash} {what}: {:?}", plan.skipped);
            let [p] = &plan.pools[..] else {
                panic!("{hash} {what}: {plan:?}")
            };
            let (plain, moved) = check_split(p, &alive);
            assert!(moved > 0 && plain + moved == 4000, "{hash} {what}");
            assert!(plan.warms(), "{hash} {what}");
        }
    }
}

/// Ch3's furc_hash only ever moves a key to a slot a growth adds: what the split relies on.
#[test]
fn ch3_moves_keys_only_to_added_slots() {
    for n in 1..30u32 {
        for grow in 1..4 {
            for k in 0..2000 {
                let key = format!("k{k}");
                let (a, b) = (
                    placement::furc(key.as_bytes(), n),
                    placement::furc(key.as_bytes(), n + grow),
                );
                assert!(a == b || b >= n, "{key}: {a} of {n} -> {b} of {}", n + grow);
            }
        }
    }
}

/// An old server that does not answer is not warmed from: its slot goes to the new list only.
#[test]
fn a_dead_old_server_is_not_warmed_from() {
    let before = servers(&[1, 2, 3]);
    let after = servers(&[1, 9, 3]);
    let dead = vec![before[1].clone()];
    let (plan, alive) = plan_of(&before, &after, "Ch3", &dead);
    let p = &plan.pools[0];
    assert_eq!(
        p.split,
        Split::New(vec![Slot::Plain, Slot::Cold, Slot::Plain])
    );
    assert!(!plan.warms());
    check_split(p, &alive);
    // A growth takes keys from every old slot into the new one.
    let (plan, _) = plan_of(&servers(&[1, 2]), &servers(&[1, 2, 3]), "Ch3", &[]);
    assert_eq!(plan.pools[0].warmed(), [2]);
}

/// A pool mcw cannot model, or whose routes it cannot rewrite, is changed plainly, with the
/// reason.
#[test]
fn a_pool_that_cannot_be_warmed_safely_says_why() {
    let config = |route: Value, extra: Value| {
        let mut c =
            json!({"pools": {"p": {"servers": ["10.0.0.1:1", "10.0.0.2:1"]}}, "route": route});
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(extra.clone());
        }
        c
    };
    let cases = [
        (
            config(
                json!({"type": "AllSyncRoute", "children": "Pool|p"}),
                json!({}),
            ),
            "sends to its destinations directly",
        ),
        (
            config(
                json!({"type": "PoolRoute", "pool": "p", "shadows": []}),
                json!({}),
            ),
            "\"shadows\"",
        ),
        (
            config(
                json!("PoolRoute|p"),
                json!({"macros": {"x": {"type": "constDef", "result": 1}}}),
            ),
            "macros",
        ),
        (
            config(json!("PoolRoute|q"), json!({})),
            "no route of the config uses it",
        ),
    ];
    for (config, want) in cases {
        let why = routes::check(&config, "p").unwrap_err();
        assert!(why.contains(want), "{config}: {why}");
    }
    for fine in [
        json!("PoolRoute|p"),
        json!({"type": "PoolRoute", "pool": "p", "hash": {"hash_func": "Ch3"}}),
        json!({"type": "HashRoute", "hash_func": "Ch3", "children": "Pool|p"}),
        json!({"type": "PrefixSelectorRoute", "policies": {"a": "PoolRoute|p"}, "wildcard": "PoolRoute|p"}),
    ] {
        routes::check(&config(fine.clone(), json!({})), "p")
            .unwrap_or_else(|e| panic!("{fine}: {e}"));
    }
}

/// What each phase's config holds: the pool's references replaced by the warm-up route, the
/// old pool with a short timeout, mcw's handles first, and per command the routes of the phase.
#[test]
fn each_phase_routes_commands_as_designed() {
    let before = rendered(&["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"], "Ch3");
    let after = rendered(
        &["10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1", "10.0.0.4:1"],
        "Ch3",
    );
    let plan = plan(&before, &after, &HashSet::new());
    let value = |r: &Rendered| serde_json::from_slice::<Value>(&r.bytes).unwrap();
    let mut ops_of: BTreeMap<&str, Value> = BTreeMap::new();
    for phase in [Phase::FirstBracket, Phase::WarmUp, Phase::LastBracket] {
        let c = routes::phase_config(&value(&after), &value(&before), &plan, phase, 900).unwrap();
        assert_eq!(c["route"], json!("p.mcw-route"));
        assert_eq!(
            c["pools"]["p.mcw-old"]["server_timeout"],
            json!(OLD_TIMEOUT_MS)
        );
        assert_eq!(
            c["pools"]["p.mcw-old"]["servers"].as_array().unwrap().len(),
            3
        );
        let handles = c["named_handles"].as_array().unwrap();
        let by_name = |n: &str| {
            handles
                .iter()
                .find(|h| h["name"] == json!(n))
                .unwrap()
                .clone()
        };
        assert_eq!(
            by_name("p.mcw-route")["children"],
            json!(["p.mcw-plain", "p.mcw-plain", "p.mcw-plain", "p.mcw-moved"])
        );
        assert_eq!(by_name("p.mcw-read")["exptime"], json!(900));
        ops_of.insert(
            phase.name(),
            by_name("p.mcw-moved")["operation_policies"].clone(),
        );
    }
    assert_eq!(ops_of["first_bracket"]["get"], json!("p.mcw-old-soft"));
    assert_eq!(ops_of["first_bracket"]["cas"], json!("p.mcw-old-route"));
    assert_eq!(
        ops_of["first_bracket"]["set"]["children"][1]["exptime"],
        json!(-1)
    );
    assert_eq!(ops_of["warm_up"]["get"], json!("p.mcw-read"));
    assert_eq!(ops_of["warm_up"]["set"], json!("p.mcw-write"));
    assert_eq!(ops_of["last_bracket"]["get"], json!("p.mcw-plain"));
    assert_eq!(ops_of["last_bracket"]["set"], json!("p.mcw-write"));
    for phase in ["warm_up", "last_bracket"] {
        let delete = &ops_of[phase]["delete"]["children"];
        assert_eq!(delete[0]["type"], json!("AllSyncRoute"));
        assert_eq!(
            delete[1]["before_latency_ms"],
            json!(routes::SECOND_DELETE_MS)
        );
        assert_eq!(ops_of[phase]["add"]["type"], json!("AllSyncRoute"));
    }
}
