//! Pools as mcrouter sees them in a config: which servers array each route hashes, with which
//! function, and the Rendezvous `tags` mcw writes where a route asks for them.
//!
//! Owns reading hashing the way mcrouter does (a PoolRoute's `hash`, a HashRoute's
//! `hash_func` over `children`, the `"PoolRoute|NAME"` shorthand; Ch3 where none is named),
//! naming each pool readably, and writing one distinct tag per server for an untagged
//! Rendezvous. Pure; what a change of a pool remaps is [`placement`](crate::placement)'s.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{Map, Value};

use super::{for_each_servers_array, pointer_escape, walk};
use crate::placement::{Hashing, Pool};

/// Every servers array of a rendered config (a fresh render, or one mcw wrote earlier), by
/// pool label, with how mcrouter hashes it.
pub fn pools_of(config: &Value) -> BTreeMap<String, Pool> {
    let mut hashing = pool_hashing(config);
    let mut pools = BTreeMap::new();
    for_each_servers_array(config, &mut |pointer, items| {
        let servers = items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect();
        let hashing = hashing.remove(pointer).unwrap_or_else(|| {
            Hashing::Unknown("no PoolRoute or HashRoute hashes this pool".into())
        });
        pools.insert(pool_label(config, pointer), Pool { servers, hashing });
    });
    pools
}

/// How each pool (by its servers array's pointer) is hashed in a rendered config, read as
/// mcrouter reads it: a PoolRoute's `hash` (a name, or an object with `hash_func`), a
/// HashRoute's `hash_func` over `children`, and the `"PoolRoute|NAME"` shorthand; Ch3 where
/// none is named. A pool hashed two different ways, or by a function mcw does not model, is
/// [`Hashing::Unknown`].
pub fn pool_hashing(root: &Value) -> HashMap<String, Hashing> {
    let pools = pool_index(root);
    let mut found: HashMap<String, Hashing> = HashMap::new();
    let mut record = |pool: Option<PoolRef>, hashing: Hashing| {
        let pointer = match pool {
            Some(PoolRef::Name(name)) => match pools.get(&name) {
                Some(p) => p.clone(),
                None => return,
            },
            Some(PoolRef::Inline(p)) => p,
            None => return,
        };
        let merged = match found.remove(&pointer) {
            None => hashing,
            Some(seen) if seen == hashing => seen,
            Some(seen) => Hashing::Unknown(format!(
                "hashed two ways ({} and {})",
                seen.name(),
                hashing.name()
            )),
        };
        found.insert(pointer, merged);
    };
    walk(root, &mut |pointer, node| match node {
        Value::String(s) => {
            if let Some(name) = s.strip_prefix("PoolRoute|")
                && !name.contains('|')
            {
                record(Some(PoolRef::Name(name.to_string())), Hashing::Ch3);
            }
        }
        Value::Object(map) => {
            if let Some(pool) = map.get("pool") {
                let hashing = match map.get("hash") {
                    None => Hashing::Ch3,
                    Some(Value::String(name)) => named_hashing(name, None),
                    Some(Value::Object(hash)) => {
                        let name = hash.get("hash_func").and_then(Value::as_str);
                        named_hashing(name.unwrap_or("Ch3"), Some(hash))
                    }
                    Some(other) => Hashing::Unknown(format!("hash {other}")),
                };
                record(pool_ref(pool, &format!("{pointer}/pool")), hashing);
            } else if let Some(children) = map.get("children")
                && (map.contains_key("hash_func")
                    || map.get("type").and_then(Value::as_str) == Some("HashRoute"))
            {
                let name = map.get("hash_func").and_then(Value::as_str);
                let hashing = named_hashing(name.unwrap_or("Ch3"), Some(map));
                record(pool_ref(children, &format!("{pointer}/children")), hashing);
            }
        }
        _ => {}
    });
    found
}

/// A hash function by its name in mcrouter's config; `spec` is the object holding its options.
fn named_hashing(name: &str, spec: Option<&Map<String, Value>>) -> Hashing {
    let option = |key: &str| spec.and_then(|s| s.get(key));
    match name {
        // A salt changes which keys go where (not how many move), and mcw does not model it.
        "Ch3" if option("salt").is_some() => Hashing::Unknown("Ch3 with a salt".into()),
        "Ch3" => Hashing::Ch3,
        "Rendezvous" => match option("tags").and_then(Value::as_array) {
            Some(tags) => match tags
                .iter()
                .map(|t| t.as_str().map(str::to_string))
                .collect()
            {
                Some(tags) => Hashing::Rendezvous { tags },
                None => Hashing::Unknown("Rendezvous tags that are not strings".into()),
            },
            None => Hashing::Unknown("Rendezvous without tags".into()),
        },
        other => Hashing::Unknown(format!("{other} hash")),
    }
}

/// A readable name for the pool owning the servers array at `pointer`.
fn pool_label(root: &Value, pointer: &str) -> String {
    let parent = pointer.strip_suffix("/servers").unwrap_or(pointer);
    if let Some(name) = parent.strip_prefix("/pools/")
        && !name.contains('/')
    {
        return unescape(name);
    }
    match root.pointer(parent).and_then(|p| p.get("name")) {
        Some(Value::String(name)) => name.clone(),
        _ => pointer.to_string(),
    }
}

fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// Give every object that hashes a pool with `"hash_func": "Rendezvous"` and has no `tags` one
/// tag per server of that pool, in server order. Returns why some got none.
pub(super) fn add_rendezvous_tags(
    root: &mut Value,
    identities: &HashMap<String, Vec<String>>,
) -> Vec<String> {
    let pools = pool_index(root);
    let mut notes = Vec::new();
    for (at, pool) in find_rendezvous(root, false) {
        let Some(pool) = pool else {
            notes.push(format!(
                "{at}: Rendezvous hash over something other than one pool; tags not written"
            ));
            continue;
        };
        let pointer = match pool {
            PoolRef::Name(name) => match pools.get(&name) {
                Some(p) => p.clone(),
                None => {
                    notes.push(format!(
                        "{at}: Rendezvous hash names pool {name:?}, which the template does not define; tags not written"
                    ));
                    continue;
                }
            },
            PoolRef::Inline(p) => p,
        };
        let Some(ids) = identities.get(&pointer) else {
            continue;
        };
        if let Some(Value::Object(obj)) = root.pointer_mut(&at) {
            obj.insert("tags".into(), Value::from(unique_tags(ids)));
        }
    }
    notes
}

/// The template's own Rendezvous `tags`, each with the pointer of the servers array they tag
/// (where that is one pool the template defines): `(tags pointer, servers pointer)`.
pub(super) fn given_rendezvous_tags(root: &Value) -> Vec<(String, String)> {
    given(root, &|hash| is_rendezvous(hash, true), "tags")
}

/// WeightedCh3 hash objects that give their own `weights` (mcrouter reads them there as well
/// as in the pool), each with the pointer of the servers array of the pool it hashes: one
/// weight per server, which DNS changes the count of when that array holds a token.
pub(super) fn given_hash_weights(root: &Value) -> Vec<(String, String)> {
    let weighted = |hash: &Map<String, Value>| {
        hash.get("hash_func").and_then(Value::as_str) == Some("WeightedCh3")
            && hash.contains_key("weights")
    };
    given(root, &weighted, "weights")
}

/// Hash objects for which `pick` holds, as `(pointer of their KEY, pointer of the servers
/// array of the pool they hash)`.
fn given(
    root: &Value,
    pick: &dyn Fn(&Map<String, Value>) -> bool,
    key: &str,
) -> Vec<(String, String)> {
    let pools = pool_index(root);
    find_hashes(root, pick)
        .into_iter()
        .filter_map(|(at, pool)| {
            let servers = match pool? {
                PoolRef::Name(name) => pools.get(&name)?.clone(),
                PoolRef::Inline(p) => p,
            };
            Some((format!("{at}/{key}"), servers))
        })
        .collect()
}

enum PoolRef {
    Name(String),
    /// Pointer of an inline pool's servers array.
    Inline(String),
}

/// Pool name → pointer of its servers array. Top-level pools first, then inline pool objects in
/// document order; the first definition of a name wins, as in mcrouter.
fn pool_index(root: &Value) -> HashMap<String, String> {
    let mut index = HashMap::new();
    if let Some(Value::Object(pools)) = root.get("pools") {
        for name in pools.keys() {
            let pointer = format!("/pools/{}/servers", pointer_escape(name));
            index.entry(name.clone()).or_insert(pointer);
        }
    }
    for_each_servers_array(root, &mut |pointer, _| {
        let parent = pointer.strip_suffix("/servers").unwrap_or(pointer);
        if let Some(Value::String(name)) = root.pointer(parent).and_then(|p| p.get("name")) {
            index
                .entry(name.clone())
                .or_insert_with(|| pointer.to_string());
        }
    });
    index
}

/// Objects that hash a pool with a Rendezvous, untagged or `tagged`: a HashRoute-like object
/// itself, or the `hash` object beside a PoolRoute's `pool`. Each with the pool it hashes.
fn find_rendezvous(root: &Value, tagged: bool) -> Vec<(String, Option<PoolRef>)> {
    find_hashes(root, &|hash| is_rendezvous(hash, tagged))
}

/// Objects that hash a pool and for which `pick` holds: a HashRoute-like object itself, or
/// the `hash` object beside a PoolRoute's `pool`. Each with the pool it hashes.
fn find_hashes(
    root: &Value,
    pick: &dyn Fn(&Map<String, Value>) -> bool,
) -> Vec<(String, Option<PoolRef>)> {
    let mut out = Vec::new();
    walk(root, &mut |pointer, node| {
        let Value::Object(map) = node else { return };
        if let Some(pool) = hashed_pool(map, pointer, pick) {
            out.push((pointer.to_string(), pool));
        }
        if let (Some(pool), Some(Value::Object(hash))) = (map.get("pool"), map.get("hash"))
            && pick(hash)
        {
            let at = format!("{pointer}/hash");
            out.push((at, pool_ref(pool, &format!("{pointer}/pool"))));
        }
    });
    out
}

fn is_rendezvous(obj: &Map<String, Value>, tagged: bool) -> bool {
    obj.get("hash_func").and_then(Value::as_str) == Some("Rendezvous")
        && obj.contains_key("tags") == tagged
}

/// A HashRoute-like object hashing over `children: "Pool|NAME"` (or an inline pool), for
/// which `pick` holds.
fn hashed_pool(
    map: &Map<String, Value>,
    pointer: &str,
    pick: &dyn Fn(&Map<String, Value>) -> bool,
) -> Option<Option<PoolRef>> {
    if !pick(map) {
        return None;
    }
    let children = map.get("children")?;
    Some(pool_ref(children, &format!("{pointer}/children")))
}

fn pool_ref(value: &Value, pointer: &str) -> Option<PoolRef> {
    match value {
        Value::String(s) => {
            let name = s.strip_prefix("Pool|").unwrap_or(s);
            (!name.contains('|')).then(|| PoolRef::Name(name.to_string()))
        }
        Value::Object(obj) if obj.contains_key("servers") => {
            Some(PoolRef::Inline(format!("{pointer}/servers")))
        }
        _ => None,
    }
}

/// Tags must be distinct; a repeated identity (the same server twice, or an SRV target with
/// several addresses) gets `#2`, `#3`… in order of appearance.
fn unique_tags(ids: &[String]) -> Vec<String> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut taken: HashSet<String> = ids.iter().cloned().collect();
    ids.iter()
        .map(|id| {
            let n = seen.entry(id).or_insert(0);
            *n += 1;
            if *n == 1 {
                return id.clone();
            }
            loop {
                let candidate = format!("{id}#{n}");
                if taken.insert(candidate.clone()) {
                    return candidate;
                }
                *n += 1;
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_tags_never_collide_with_a_given_identity() {
        let ids: Vec<String> = ["a", "a#2", "a"].iter().map(|s| s.to_string()).collect();
        assert_eq!(unique_tags(&ids), ["a", "a#2", "a#3"]);
    }
}
