//! Rendering: a [`Template`] plus one [`Answer`] per query → the strict JSON mcrouter reads.
//!
//! Owns in-place expansion of tokens into `ip:port[:suffixes]` entries (no de-duplication
//! across tokens), each server's identity, and the exact output bytes (pretty JSON, key order
//! kept, trailing newline). Which pool is hashed how, and the Rendezvous `tags` written from
//! the identities, are [`pools`](super::pools)'. Pure: the caller resolves first and writes
//! afterwards.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde_json::Value;

use super::pools::{add_rendezvous_tags, pools_of};
use super::token::{DEFAULT_PORT, Token};
use super::{Template, for_each_servers_array};
use crate::dns::Query;
use crate::dns::{Answer, Records};
use crate::placement::Pool;

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

/// One expanded server, the identity Rendezvous hashing should know it by, and what a pool's
/// parallel lists say of it: its host name (an SRV record's target, or the token's name) and,
/// from an SRV record, its weight.
pub struct Server {
    pub entry: String,
    pub identity: String,
    pub hostname: String,
    pub weight: Option<u16>,
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
        // Per template entry: its own position (static) or the servers it expanded to.
        let mut expanded: Vec<Result<usize, Vec<Server>>> = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let Some(site) = template.site_at(&format!("{pointer}/{i}")) else {
                // Static entries are kept as written (they need not even be strings).
                ids.push(
                    item.as_str()
                        .map_or_else(|| item.to_string(), str::to_string),
                );
                out.push(item.clone());
                expanded.push(Ok(i));
                continue;
            };
            match answers.get(&site.token.query) {
                Some(answer) => {
                    let servers = expand(&site.token, answer);
                    for server in &servers {
                        out.push(Value::String(server.entry.clone()));
                        ids.push(server.identity.clone());
                    }
                    expanded.push(Err(servers));
                }
                None => missing = Some(site.token.query.clone()),
            }
        }
        *items = out;
        identities.insert(pointer.clone(), ids);
        let pool = pointer.strip_suffix("/servers").unwrap_or(&pointer);
        if let Some(Value::Object(pool)) = value.pointer_mut(pool) {
            parallel_lists(pool, &expanded);
        }
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

/// A pool's `hostnames` and `weights` kept in step with its servers (the template has one
/// entry per entry of `servers`, checked when it was read): a static entry keeps its own, a
/// token's is replaced by one per server it expanded to — the SRV target's name or the token's
/// name; the SRV record's weight over the heaviest of the pool's SRV weights (mcrouter's
/// WeightedCh3 takes weights in [0, 1]).
fn parallel_lists(
    pool: &mut serde_json::Map<String, Value>,
    expanded: &[Result<usize, Vec<Server>>],
) {
    let heaviest = expanded
        .iter()
        .filter_map(|e| e.as_ref().err())
        .flatten()
        .filter_map(|s| s.weight)
        .max()
        .unwrap_or(0);
    for key in ["hostnames", "weights"] {
        let Some(Value::Array(given)) = pool.get(key) else {
            continue;
        };
        let mut out = Vec::new();
        for e in expanded {
            match e {
                Ok(i) => out.extend(given.get(*i).cloned()),
                Err(servers) => out.extend(servers.iter().map(|s| match key {
                    "hostnames" => Value::String(s.hostname.clone()),
                    _ => match (s.weight, heaviest) {
                        (Some(w), h) if h > 0 => serde_json::json!(f64::from(w) / f64::from(h)),
                        _ => serde_json::json!(0),
                    },
                })),
            }
        }
        pool.insert(key.into(), Value::Array(out));
    }
}

/// The servers one token stands for, in canonical order.
pub fn expand(token: &Token, answer: &Answer) -> Vec<Server> {
    let server = |ip: &IpAddr, port: u16, identity: String, hostname: &str, weight| Server {
        entry: format!("{}{}", host_port(ip, port), token.suffix),
        identity,
        hostname: hostname.to_string(),
        weight,
    };
    match answer.records() {
        Records::Addrs(addrs) => {
            let port = token.port.unwrap_or(DEFAULT_PORT);
            let name = token.query.name.trim_end_matches('.');
            addrs
                .iter()
                .map(|ip| server(ip, port, host_port(ip, port), name, None))
                .collect()
        }
        Records::Srv(targets) => targets
            .iter()
            .flat_map(|t| {
                let identity = format!("{}:{}", t.target, t.port);
                t.addrs
                    .iter()
                    .map(move |ip| server(ip, t.port, identity.clone(), &t.target, Some(t.weight)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::SrvTarget;
    use crate::placement::Hashing;
    use std::path::Path;

    fn srv(targets: &[(&str, u16, &[&str])]) -> Answer {
        let targets = targets
            .iter()
            .map(|(name, port, addrs)| SrvTarget {
                weight: 1,
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

    /// A pool's hostnames and weights stay one per server: a static entry keeps its own, a
    /// token's entry becomes one per server it resolved to, in server order — the SRV target
    /// (or the token's name) and the SRV weight over the pool's heaviest.
    #[test]
    fn hostnames_and_weights_follow_the_servers_a_token_expands_to() {
        let weighted = |target: &str, weight, addrs: &[&str]| SrvTarget {
            weight,
            priority: 0,
            port: 11211,
            target: target.into(),
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        };
        let answer = Answer::new(
            Records::Srv(vec![
                weighted("mc-10.mc.test", 40, &["10.0.0.10", "10.0.0.11"]),
                weighted("mc-2.mc.test", 10, &["10.0.0.2"]),
            ]),
            30,
        );
        let text = r#"{"pools": {"p": {
            "servers": ["10.9.9.9:1", "dnssrv://_m._tcp.mc.test"],
            "hostnames": ["static.test", "ignored"],
            "weights": [0.5, "ignored"]}}}"#;
        let out = render_with(text, &answer);
        assert_eq!(
            out.pointer("/pools/p/servers").unwrap(),
            &serde_json::json!([
                "10.9.9.9:1",
                "10.0.0.2:11211",
                "10.0.0.10:11211",
                "10.0.0.11:11211"
            ])
        );
        assert_eq!(
            out.pointer("/pools/p/hostnames").unwrap(),
            &serde_json::json!([
                "static.test",
                "mc-2.mc.test",
                "mc-10.mc.test",
                "mc-10.mc.test"
            ])
        );
        assert_eq!(
            out.pointer("/pools/p/weights").unwrap(),
            &serde_json::json!([0.5, 0.25, 1.0, 1.0])
        );
        // An address token's servers are known by the token's name.
        let text = r#"{"pools": {"p": {"servers": ["dns://mc.test"], "hostnames": ["x"]}}}"#;
        let out = render_with(
            text,
            &Answer::new(Records::Addrs(vec!["10.0.0.1".parse().unwrap()]), 30),
        );
        assert_eq!(
            out.pointer("/pools/p/hostnames").unwrap(),
            &serde_json::json!(["mc.test"])
        );
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
    fn repeated_identities_get_numbered_tags_and_given_tags_of_static_pools_are_kept() {
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
        // Beside DNS tokens given tags are a template error (mod.rs); over static servers they
        // are the template's own.
        let tagged = text
            .replace(r#""Rendezvous""#, r#""Rendezvous", "tags": ["mine"]"#)
            .replace(
                r#""dnssrv://_m._tcp.mc.test", "dnssrv://_m._tcp.mc.test""#,
                r#""10.0.0.1:1""#,
            );
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
}
