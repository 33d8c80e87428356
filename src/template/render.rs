//! Rendering: a [`Template`] plus one [`Answer`] per query → the strict JSON mcrouter reads.
//!
//! Owns in-place expansion of tokens into `ip:port[:suffixes]` entries (no de-duplication
//! across tokens), the identity `tags` written for pools hashed with `Rendezvous`, and the
//! exact output bytes (pretty JSON, key order kept, trailing newline). Pure: the caller
//! resolves first and writes afterwards.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use serde_json::{Map, Value};

use super::token::{DEFAULT_PORT, Token};
use super::{Template, for_each_servers_array, pointer_escape, walk};
use crate::placement::{Hashing, Pool};
use crate::resolve::Query;
use crate::resolve::{Answer, Records};

/// The output of one render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// Exactly the bytes to write.
    pub bytes: Vec<u8>,
    /// Every `servers` array with how mcrouter hashes it, keyed by a readable pool label (the
    /// pool's name when it has one, else the array's JSON pointer): [`pools_of`] the output.
    /// Used to tell what changed and how many keys that remaps.
    pub pools: BTreeMap<String, Pool>,
    /// What the render could not do as the template asked (a Rendezvous route without a pool
    /// to tag), for the caller to warn about.
    pub notes: Vec<String>,
}

/// A token whose query has no answer: the caller must resolve every query first.
#[derive(Debug, thiserror::Error)]
#[error("no DNS answer for {0}")]
pub struct MissingAnswer(pub Query);

/// One expanded server and the identity Rendezvous hashing should know it by.
pub struct Server {
    pub entry: String,
    pub identity: String,
}

/// Render `template` with `answers` (one per query of [`Template::queries`]).
pub fn render(
    template: &Template,
    answers: &HashMap<Query, Answer>,
) -> Result<Rendered, MissingAnswer> {
    let mut value = template.value.clone();
    // Identities of each rendered servers array, keyed by the array's pointer.
    let mut identities: HashMap<String, Vec<String>> = HashMap::new();
    let mut missing = None;

    let mut arrays = Vec::new();
    for_each_servers_array(&template.value, &mut |pointer, _| {
        arrays.push(pointer.to_string())
    });
    // Last first: a servers array nested in an entry of another is then rendered before the
    // outer one's tokens expand and shift the entry (and the pointer) elsewhere.
    for pointer in arrays.into_iter().rev() {
        let Some(Value::Array(items)) = value.pointer_mut(&pointer) else {
            continue;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ids = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let Some(site) = template.site_at(&format!("{pointer}/{i}")) else {
                // Static entries are kept as written (they need not even be strings).
                ids.push(
                    item.as_str()
                        .map_or_else(|| item.to_string(), str::to_string),
                );
                out.push(item.clone());
                continue;
            };
            match answers.get(&site.token.query) {
                Some(answer) => {
                    for server in expand(&site.token, answer) {
                        out.push(Value::String(server.entry));
                        ids.push(server.identity);
                    }
                }
                None => missing = Some(site.token.query.clone()),
            }
        }
        *items = out;
        identities.insert(pointer, ids);
    }
    if let Some(query) = missing {
        return Err(MissingAnswer(query));
    }

    let notes = add_rendezvous_tags(&mut value, &identities);
    let pools = pools_of(&value);
    let mut bytes = serde_json::to_vec_pretty(&value).expect("a JSON tree always serialises");
    bytes.push(b'\n');
    Ok(Rendered {
        bytes,
        pools,
        notes,
    })
}

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

/// The servers one token stands for, in canonical order.
pub fn expand(token: &Token, answer: &Answer) -> Vec<Server> {
    let server = |ip: &IpAddr, port: u16, identity: String| Server {
        entry: format!("{}{}", host_port(ip, port), token.suffix),
        identity,
    };
    match answer.records() {
        Records::Addrs(addrs) => {
            let port = token.port.unwrap_or(DEFAULT_PORT);
            addrs
                .iter()
                .map(|ip| server(ip, port, host_port(ip, port)))
                .collect()
        }
        Records::Srv(targets) => targets
            .iter()
            .flat_map(|t| {
                let identity = format!("{}:{}", t.target, t.port);
                t.addrs
                    .iter()
                    .map(move |ip| server(ip, t.port, identity.clone()))
            })
            .collect(),
    }
}

/// `ip:port`, with IPv6 in brackets as mcrouter expects.
pub fn host_port(ip: &IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
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
fn add_rendezvous_tags(root: &mut Value, identities: &HashMap<String, Vec<String>>) -> Vec<String> {
    let pools = pool_index(root);
    let mut notes = Vec::new();
    for (at, pool) in find_rendezvous(root) {
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

/// Objects that hash a pool with an untagged Rendezvous: a HashRoute-like object itself, or
/// the `hash` object beside a PoolRoute's `pool`. Each with the pool it hashes.
fn find_rendezvous(root: &Value) -> Vec<(String, Option<PoolRef>)> {
    let mut out = Vec::new();
    walk(root, &mut |pointer, node| {
        let Value::Object(map) = node else { return };
        if let Some(pool) = hashed_pool(map, pointer) {
            out.push((pointer.to_string(), pool));
        }
        if let (Some(pool), Some(Value::Object(hash))) = (map.get("pool"), map.get("hash"))
            && is_untagged_rendezvous(hash)
        {
            let at = format!("{pointer}/hash");
            out.push((at, pool_ref(pool, &format!("{pointer}/pool"))));
        }
    });
    out
}

fn is_untagged_rendezvous(obj: &Map<String, Value>) -> bool {
    obj.get("hash_func").and_then(Value::as_str) == Some("Rendezvous") && !obj.contains_key("tags")
}

/// A HashRoute-like object hashing over `children: "Pool|NAME"` (or an inline pool).
fn hashed_pool(map: &Map<String, Value>, pointer: &str) -> Option<Option<PoolRef>> {
    if !is_untagged_rendezvous(map) {
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
    use crate::resolve::SrvTarget;
    use std::path::Path;

    fn srv(targets: &[(&str, u16, &[&str])]) -> Answer {
        let targets = targets
            .iter()
            .map(|(name, port, addrs)| SrvTarget {
                priority: 0,
                port: *port,
                target: name.to_string(),
                addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            })
            .collect();
        Answer::new(Records::Srv(targets), 30)
    }

    /// Render `text` with `answer` for every query it holds.
    fn rendered_with(text: &str, answer: &Answer) -> Rendered {
        let template = Template::parse(Path::new("t.json"), text).unwrap();
        let answers = template
            .queries()
            .into_iter()
            .map(|q| (q, answer.clone()))
            .collect();
        render(&template, &answers).unwrap()
    }

    /// The same, the output as JSON.
    fn render_with(text: &str, answer: &Answer) -> Value {
        serde_json::from_slice(&rendered_with(text, answer).bytes).unwrap()
    }

    fn pods() -> Answer {
        srv(&[
            ("mc-10.mc.test", 11211, &["10.0.0.10"]),
            ("mc-2.mc.test", 11211, &["10.0.0.2"]),
        ])
    }

    #[test]
    fn each_pool_is_known_by_the_hash_mcrouter_will_use() {
        let text = r#"{
          "pools": {
            "plain": {"servers": ["dnssrv://_mc._tcp.mc.test"]},
            "object": {"servers": ["dnssrv://_mc._tcp.mc.test"]},
            "hashed": {"servers": ["dnssrv://_mc._tcp.mc.test"]},
            "tagged": {"servers": ["dnssrv://_mc._tcp.mc.test"]},
            "crc": {"servers": ["dnssrv://_mc._tcp.mc.test"]},
            "twice": {"servers": ["dnssrv://_mc._tcp.mc.test"]},
            "unused": {"servers": ["dnssrv://_mc._tcp.mc.test"]}
          },
          "routes": [{"aliases": ["/a/b/"], "route": {"type": "OperationSelectorRoute",
            "default_policy": "PoolRoute|plain",
            "operation_policies": {
              "get": {"type": "PoolRoute", "pool": "object", "hash": {"hash_func": "Ch3"}},
              "set": {"type": "HashRoute", "children": "Pool|hashed"},
              "delete": {"type": "PoolRoute", "pool": "tagged", "hash": {"hash_func": "Rendezvous"}},
              "add": {"type": "PoolRoute", "pool": "crc", "hash": "Crc32"},
              "incr": {"type": "PoolRoute", "pool": "twice"},
              "decr": {"type": "PoolRoute", "pool": "twice", "hash": {"hash_func": "Rendezvous"}}
            }}}]
        }"#;
        let pools = rendered_with(text, &pods()).pools;
        let hashing = |label: &str| &pools[label].hashing;
        assert_eq!(*hashing("plain"), Hashing::Ch3);
        assert_eq!(*hashing("object"), Hashing::Ch3);
        assert_eq!(*hashing("hashed"), Hashing::Ch3);
        assert_eq!(
            *hashing("tagged"),
            Hashing::Rendezvous {
                tags: vec!["mc-2.mc.test:11211".into(), "mc-10.mc.test:11211".into()]
            }
        );
        assert_eq!(*hashing("crc"), Hashing::Unknown("Crc32 hash".into()));
        assert!(matches!(hashing("twice"), Hashing::Unknown(why) if why.contains("two ways")));
        assert!(matches!(hashing("unused"), Hashing::Unknown(_)));
    }

    #[test]
    fn rendezvous_pools_get_one_tag_per_server_in_server_order() {
        let cases = [
            // PoolRoute with a hash object, over a top-level pool.
            (
                r#"{"pools": {"p": {"servers": ["10.9.9.9:1", "dnssrv://_m._tcp.mc.test"]}},
                    "route": {"type": "PoolRoute", "pool": "p", "hash": {"hash_func": "Rendezvous"}}}"#,
                "/route/hash/tags",
            ),
            // HashRoute over Pool|NAME.
            (
                r#"{"pools": {"p": {"servers": ["10.9.9.9:1", "dnssrv://_m._tcp.mc.test"]}},
                    "route": {"type": "HashRoute", "children": "Pool|p", "hash_func": "Rendezvous"}}"#,
                "/route/tags",
            ),
            // PoolRoute over an inline pool.
            (
                r#"{"route": {"type": "PoolRoute", "hash": {"hash_func": "Rendezvous"},
                    "pool": {"name": "p", "servers": ["10.9.9.9:1", "dnssrv://_m._tcp.mc.test"]}}}"#,
                "/route/hash/tags",
            ),
        ];
        for (text, at) in cases {
            let out = render_with(text, &pods());
            let tags = out
                .pointer(at)
                .unwrap_or_else(|| panic!("no {at} in {out}"));
            // Static entries are their own identity; SRV entries are target:port, in natural
            // order (mc-2 before mc-10).
            assert_eq!(
                tags,
                &serde_json::json!(["10.9.9.9:1", "mc-2.mc.test:11211", "mc-10.mc.test:11211"]),
                "{text}"
            );
        }
    }

    #[test]
    fn repeated_identities_get_numbered_tags_and_given_tags_are_kept() {
        // The same token twice, and an SRV target with two addresses.
        let answer = srv(&[("mc-0.mc.test", 11211, &["10.0.0.1", "10.0.0.2"])]);
        let text = r#"{"pools": {"p": {"servers": ["dnssrv://_m._tcp.mc.test", "dnssrv://_m._tcp.mc.test"]}},
            "route": {"type": "PoolRoute", "pool": "p", "hash": {"hash_func": "Rendezvous"}}}"#;
        let out = render_with(text, &answer);
        let id = "mc-0.mc.test:11211";
        assert_eq!(
            out.pointer("/route/hash/tags").unwrap(),
            &serde_json::json!([id, format!("{id}#2"), format!("{id}#3"), format!("{id}#4")])
        );
        let tagged = text.replace(r#""Rendezvous""#, r#""Rendezvous", "tags": ["mine"]"#);
        let out = render_with(&tagged, &answer);
        assert_eq!(
            out.pointer("/route/hash/tags").unwrap(),
            &serde_json::json!(["mine"])
        );
    }

    #[test]
    fn a_rendezvous_route_over_an_unknown_pool_is_noted_not_tagged() {
        let text = r#"{"pools": {"p": {"servers": ["dns://a.test"]}},
            "route": {"type": "HashRoute", "children": "Pool|nope", "hash_func": "Rendezvous"}}"#;
        let a = Answer::new(Records::Addrs(vec!["10.0.0.1".parse().unwrap()]), 30);
        let rendered = rendered_with(text, &a);
        assert_eq!(rendered.notes.len(), 1);
        assert!(
            rendered.notes[0].starts_with("/route: "),
            "{:?}",
            rendered.notes
        );
        assert!(
            rendered.notes[0].contains("\"nope\""),
            "{:?}",
            rendered.notes
        );
    }

    #[test]
    fn other_hash_functions_get_no_tags() {
        let text = r#"{"pools": {"p": {"servers": ["dnssrv://_m._tcp.mc.test"]}},
            "route": {"type": "PoolRoute", "pool": "p", "hash": {"hash_func": "Ch3"}}}"#;
        let out = render_with(text, &pods());
        assert!(out.pointer("/route/hash/tags").is_none(), "{out}");
    }

    /// Found by fuzzing (fuzz/fuzz_targets/template.rs): a servers array inside an entry of
    /// another kept its token when an earlier token of the outer array expanded.
    #[test]
    fn a_servers_array_nested_in_another_is_rendered_too() {
        let text = r#"{"pools": {"a": {"servers": ["dns://x.test",
            {"pools": {"b": {"servers": ["dns://y.test"]}}}]}}, "route": "PoolRoute|a"}"#;
        let t = Template::parse(Path::new("t.json"), text).unwrap();
        let answers: HashMap<Query, Answer> = t
            .queries()
            .into_iter()
            .map(|q| {
                let ips = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
                (q, Answer::new(Records::Addrs(ips), 5))
            })
            .collect();
        let out = String::from_utf8(render(&t, &answers).unwrap().bytes).unwrap();
        assert!(!out.contains("://"), "{out}");
    }

    #[test]
    fn unique_tags_never_collide_with_a_given_identity() {
        let ids: Vec<String> = ["a", "a#2", "a"].iter().map(|s| s.to_string()).collect();
        assert_eq!(unique_tags(&ids), ["a", "a#2", "a#3"]);
    }
}
