//! The configs of a warm-up's phases, built from mcrouter's own routes.
//!
//! Owns the rewriting of a rendered config: each warmed pool `p` gets an old pool
//! (`p.mcw-old`, its old servers, a short `server_timeout`), named handles for the plain and
//! old pool routes and for the per-command composites, and one route (`p.mcw-route`) that picks
//! the key's slot with the pool's own hash and sends unchanged slots to the plain pool and
//! changed ones to the composite; every reference to the pool in the config's routes is
//! replaced by that route. What each phase sends where is in [`moved`]. Which references can
//! be replaced safely (and why not, when not) is [`check`].

use serde_json::{Map, Value, json};

use super::{Phase, Plan, PoolPlan, Slot, Split};
use crate::placement::Hashing;

/// The old pool's `server_timeout` (ms): a dead old server costs one request this long, then
/// mcrouter marks it TKO and fails fast.
pub const OLD_TIMEOUT_MS: u64 = 200;

/// When the second delete of a changed slot's key follows the first (ms): longer than the old
/// pool's timeout, so that a copy read before the delete and written after it is gone.
pub const SECOND_DELETE_MS: u64 = 1000;

/// How the old pool's name ends (`POOL.mcw-old`).
pub const OLD_POOL_SUFFIX: &str = ".mcw-old";

/// The names of what mcw adds for pool `pool`.
struct Names {
    old_pool: String,
    plain: String,
    old: String,
    old_soft: String,
    read: String,
    write: String,
    moved: String,
    route: String,
}

impl Names {
    fn of(pool: &str) -> Names {
        let n = |what: &str| format!("{pool}.mcw-{what}");
        Names {
            old_pool: n("old"),
            plain: n("plain"),
            old: n("old-route"),
            old_soft: n("old-soft"),
            read: n("read"),
            write: n("write"),
            moved: n("moved"),
            route: n("route"),
        }
    }
}

/// The route areas of a config: where pools are referred to.
const ROUTE_KEYS: [&str; 3] = ["route", "routes", "named_handles"];

/// Whether every reference to `pool` in the routes of `config` can be replaced by the warm-up
/// route: `"PoolRoute|POOL"`, a `PoolRoute` object naming it (with at most a `hash`), or a
/// `HashRoute` over `"Pool|POOL"`. Anything else that names it (another route over its
/// destinations, an inline pool, route options such as shadows) cannot, and neither can a
/// config with macros.
pub fn check(config: &Value, pool: &str) -> Result<(), String> {
    let Some(root) = config.as_object() else {
        return Err("the config is not an object".into());
    };
    if root.get("macros").is_some_and(|m| m != &json!({})) {
        return Err("the config uses macros, which mcw cannot see through".into());
    }
    if root.get("named_handles").is_some_and(|h| !h.is_array()) {
        return Err("named_handles is not an array".into());
    }
    let pools = root.get("pools").and_then(Value::as_object);
    if pools.is_none_or(|p| !p.contains_key(pool)) {
        return Err("it is not one of the config's top-level pools".into());
    }
    let names = Names::of(pool);
    if pools.is_some_and(|p| p.contains_key(&names.old_pool)) {
        return Err(format!(
            "the config has a pool named {:?} already",
            names.old_pool
        ));
    }
    let mut scratch = config.clone();
    let mut found = 0;
    for key in ROUTE_KEYS {
        if let Some(v) = scratch.get_mut(key) {
            replace(v, pool, &names.route, &mut found)?;
        }
    }
    match found {
        0 => Err("no route of the config uses it".into()),
        _ => Ok(()),
    }
}

/// Replace every reference to `pool` under `node` by `with`, counting them; an unsafe one is an
/// error saying what it is.
fn replace(node: &mut Value, pool: &str, with: &str, found: &mut usize) -> Result<(), String> {
    let shorthand = format!("PoolRoute|{pool}");
    let destinations = format!("Pool|{pool}");
    match node {
        Value::String(s) if *s == shorthand => {
            *s = with.to_string();
            *found += 1;
            Ok(())
        }
        Value::String(s) if s.starts_with('@') => Err(format!(
            "a route is a macro call ({s:?}), which mcw cannot see through"
        )),
        Value::String(s) if *s == destinations || s.ends_with(&format!("|{destinations}")) => Err(
            format!("a route sends to its destinations directly ({s:?})"),
        ),
        Value::Object(map) => {
            if let Some(kind) = refers(map, pool) {
                let allowed: &[&str] = match kind {
                    Ref::PoolRoute => &["type", "pool", "hash"],
                    Ref::HashRoute => &["type", "children", "hash_func", "tags"],
                };
                let extra: Vec<&String> = map
                    .keys()
                    .filter(|k| !allowed.contains(&k.as_str()))
                    .collect();
                if !extra.is_empty() {
                    return Err(format!(
                        "a route over it sets {} (mcw rewrites only plain PoolRoutes and HashRoutes)",
                        extra
                            .iter()
                            .map(|k| format!("{k:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                *node = Value::String(with.to_string());
                *found += 1;
                return Ok(());
            }
            if map
                .get("pool")
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str)
                == Some(pool)
            {
                return Err("a route defines it inline".into());
            }
            map.values_mut()
                .try_for_each(|v| replace(v, pool, with, found))
        }
        Value::Array(items) => items
            .iter_mut()
            .try_for_each(|v| replace(v, pool, with, found)),
        _ => Ok(()),
    }
}

enum Ref {
    PoolRoute,
    HashRoute,
}

/// Whether `map` is a route object over `pool`, and which kind.
fn refers(map: &Map<String, Value>, pool: &str) -> Option<Ref> {
    let kind = map.get("type").and_then(Value::as_str);
    if map.get("pool").and_then(Value::as_str) == Some(pool)
        && kind.is_none_or(|k| k == "PoolRoute")
    {
        return Some(Ref::PoolRoute);
    }
    let destinations = format!("Pool|{pool}");
    if map.get("children").and_then(Value::as_str) == Some(destinations.as_str())
        && (kind == Some("HashRoute") || map.contains_key("hash_func"))
    {
        return Some(Ref::HashRoute);
    }
    None
}

/// The config of `phase`: `after` (the plain render, as JSON) with every pool of `plan` routed
/// through the warm-up routes; `before` is the config the change started from (the old pools'
/// own settings come from it); `copy_ttl` is the exptime (s) of the copies a read makes.
pub fn phase_config(
    after: &Value,
    before: &Value,
    plan: &Plan,
    phase: Phase,
    copy_ttl: u64,
) -> Result<Value, String> {
    let mut config = after.clone();
    let mut handles = Vec::new();
    for p in plan.pools.iter().filter(|p| !p.warmed().is_empty()) {
        let names = Names::of(&p.pool);
        let mut found = 0;
        for key in ROUTE_KEYS {
            if let Some(v) = config.get_mut(key) {
                replace(v, &p.pool, &names.route, &mut found)
                    .map_err(|why| format!("pool {}: {why}", p.pool))?;
            }
        }
        let old_pool = old_pool(before, after, p);
        let pools = config
            .get_mut("pools")
            .and_then(Value::as_object_mut)
            .ok_or("the config has no pools")?;
        pools.insert(names.old_pool.clone(), old_pool);
        handles.extend(pool_handles(p, &names, phase, copy_ttl));
    }
    let root = config
        .as_object_mut()
        .ok_or("the config is not an object")?;
    let theirs = match root.remove("named_handles") {
        Some(Value::Array(theirs)) => theirs,
        _ => Vec::new(),
    };
    // Ours first: theirs may now refer to them, and mcrouter defines them in order.
    handles.extend(theirs);
    root.insert("named_handles".into(), Value::Array(handles));
    Ok(config)
}

/// The old pool: the pool's own settings as the old config had them, its old servers, and a
/// short timeout.
fn old_pool(before: &Value, after: &Value, p: &PoolPlan) -> Value {
    let own = |config: &Value| {
        config
            .get("pools")
            .and_then(|pools| pools.get(&p.pool))
            .and_then(Value::as_object)
            .cloned()
    };
    let mut pool = own(before).or_else(|| own(after)).unwrap_or_default();
    pool.insert("servers".into(), json!(p.before.servers));
    pool.insert("server_timeout".into(), json!(OLD_TIMEOUT_MS));
    Value::Object(pool)
}

/// A PoolRoute over `pool` hashed as `hashing`.
fn pool_route(name: &str, pool: &str, hashing: &Hashing) -> Value {
    match hashing {
        Hashing::Rendezvous { tags } => json!({
            "name": name, "type": "PoolRoute", "pool": pool,
            "hash": {"hash_func": "Rendezvous", "tags": tags},
        }),
        _ => json!({"name": name, "type": "PoolRoute", "pool": pool}),
    }
}

/// The named handles of one warmed pool, in the order mcrouter must define them.
fn pool_handles(p: &PoolPlan, n: &Names, phase: Phase, copy_ttl: u64) -> Vec<Value> {
    vec![
        pool_route(&n.plain, &p.pool, &p.after.hashing),
        pool_route(&n.old, &n.old_pool, &p.before.hashing),
        // An error from the old list reads as a miss (a dead old server is no client error).
        json!({"name": n.old_soft, "type": "FailoverRoute", "children": [n.old, "NullRoute"]}),
        // The new list; on a miss the old one, whose hit is copied to the new list with `add`.
        json!({
            "name": n.read, "type": "WarmUpRoute",
            "cold": n.plain, "warm": n.old_soft, "exptime": copy_ttl,
        }),
        // The new list's reply; the same command to the old list, without waiting.
        json!({"name": n.write, "type": "AllInitialRoute", "children": [n.plain, n.old]}),
        moved(n, phase),
        route(p, n),
    ]
}

/// What a changed slot's keys do in `phase`, command by command (the operation names this
/// mcrouter accepts: add append cas decr delete flushall flushre gat gats get gets incr
/// lease-get lease-set metaget prepend replace set touch).
fn moved(n: &Names, phase: Phase) -> Value {
    let mut ops = Map::new();
    let mut put = |names: &[&str], route: Value| {
        for name in names {
            ops.insert((*name).into(), route.clone());
        }
    };
    let both = |first: &str, second: Value| json!({"type": "AllInitialRoute", "children": [first, second]});
    let default = match phase {
        Phase::FirstBracket => {
            // Reads (and cas) from the old list; writes to it, with the new list's copy
            // invalidated (an exptime of -1 stores nothing) or changed alike.
            put(&["get", "gets", "gat", "gats"], json!(n.old_soft));
            put(&["cas"], json!(n.old));
            put(
                &["delete"],
                json!({"type": "AllSyncRoute", "children": [n.old, n.plain]}),
            );
            let invalidate = json!({
                "type": "ModifyExptimeRoute", "target": n.plain, "exptime": -1, "action": "set",
            });
            put(
                &["set", "add", "replace", "touch"],
                both(&n.old, invalidate),
            );
            put(
                &["append", "prepend", "incr", "decr"],
                both(&n.old, json!(n.plain)),
            );
            &n.old
        }
        Phase::WarmUp | Phase::LastBracket => {
            match phase {
                Phase::WarmUp => {
                    put(&["get", "gets"], json!(n.read));
                    // The old copy gets the same new TTL.
                    put(&["gat", "gats"], both(&n.read, json!(n.old)));
                }
                _ => put(&["get", "gets", "gat", "gats"], json!(n.plain)),
            }
            // Both lists, waiting for both; a second delete removes a copy that raced the
            // first one.
            put(
                &["delete"],
                json!({"type": "AllInitialRoute", "children": [
                    {"type": "AllSyncRoute", "children": [n.plain, n.old_soft]},
                    {"type": "LatencyInjectionRoute", "before_latency_ms": SECOND_DELETE_MS,
                     "child": n.plain},
                ]}),
            );
            // NOT_STORED when either list holds the key.
            put(
                &["add"],
                json!({"type": "AllSyncRoute", "children": [n.plain, n.old]}),
            );
            put(
                &[
                    "set", "replace", "append", "prepend", "incr", "decr", "touch",
                ],
                json!(n.write),
            );
            &n.plain
        }
    };
    json!({
        "name": n.moved, "type": "OperationSelectorRoute",
        "default_policy": default, "operation_policies": ops,
    })
}

/// The route that replaces the pool: its hash picks the slot; unchanged slots (and changed ones
/// whose old server did not answer) go to the plain pool, changed ones to the composite.
fn route(p: &PoolPlan, n: &Names) -> Value {
    let (hashing, other, slots) = match &p.split {
        Split::New(slots) => (&p.after.hashing, &p.before.hashing, slots),
        Split::Old(slots) => (&p.before.hashing, &p.after.hashing, slots),
    };
    let child = |slot: &Slot| -> Value {
        match slot {
            Slot::Warm => json!(n.moved),
            Slot::Plain | Slot::Cold => json!(n.plain),
            Slot::ByOther(inner) => hash_route(
                other,
                inner.iter().map(|s| match s {
                    Slot::Warm => json!(n.moved),
                    _ => json!(n.plain),
                }),
            ),
        }
    };
    let mut r = hash_route(hashing, slots.iter().map(child));
    if let Some(o) = r.as_object_mut() {
        o.insert("name".into(), json!(n.route));
    }
    r
}

/// A HashRoute with `hashing` over `children`.
fn hash_route(hashing: &Hashing, children: impl Iterator<Item = Value>) -> Value {
    let children: Vec<Value> = children.collect();
    match hashing {
        Hashing::Rendezvous { tags } => json!({
            "type": "HashRoute", "hash_func": "Rendezvous", "tags": tags, "children": children,
        }),
        _ => json!({"type": "HashRoute", "hash_func": "Ch3", "children": children}),
    }
}

/// The bytes mcw writes for a config (as a render's: pretty, trailing newline).
pub fn bytes(config: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(config).expect("a JSON tree always serialises");
    bytes.push(b'\n');
    bytes
}
