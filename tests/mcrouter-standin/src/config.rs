//! Building a config: JSON with comments and trailing commas → the route that serves keys.
//! Covers what mcw's configs use: top-level and inline pools (first definition wins), `route`
//! or `routes` with aliases (one must equal the routing prefix), `PoolRoute`, `HashRoute` over
//! `Pool|NAME` or over route children, `PrefixSelectorRoute`, hashing with `Ch3` or
//! `Rendezvous` + `tags`, and `named_handles`. The routes of an `mcw --warm-up` config
//! (`OperationSelectorRoute`, `WarmUpRoute`, `AllSyncRoute`, `AllInitialRoute`,
//! `FailoverRoute`, `NullRoute`, `LatencyInjectionRoute`, `ModifyExptimeRoute`) are checked
//! and then served by their primary child alone (a get's policy or the default, the cold
//! side, the first child, the target): enough to load, confirm and serve them; what they do
//! to both lists is tested against the real mcrouter only.

use std::collections::HashMap;
use std::sync::Arc;

use md5::{Digest, Md5};
use serde_json::{Map, Value};

use crate::hash;

#[derive(Debug)]
pub struct Config {
    /// Lowercase hex md5 of the file's bytes.
    pub md5: String,
    pub route: Route,
    pub aliases: HashMap<String, Route>,
}

#[derive(Debug, Clone)]
pub enum Route {
    Pool {
        servers: Arc<Vec<String>>,
        hash: Hash,
    },
    PrefixSelector {
        policies: Vec<(String, Route)>,
        wildcard: Box<Route>,
    },
    /// A HashRoute over routes: the hash picks the child.
    Hash { hash: Hash, children: Vec<Route> },
    /// Sends nowhere (a miss).
    Null,
}

#[derive(Debug, Clone)]
pub enum Hash {
    Ch3,
    Rendezvous(Vec<String>),
}

pub fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Builder {
    pools: HashMap<String, Arc<Vec<String>>>,
    /// `named_handles`, by name, as defined so far (in order).
    handles: HashMap<String, Route>,
}

pub fn build(bytes: &[u8], route_prefix: &str) -> Result<Config, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let root: Value = json5::from_str(text).map_err(|e| format!("parse error: {e}"))?;
    let obj = root.as_object().ok_or("config is not an object")?;
    if obj
        .get("macros")
        .is_some_and(|m| m.as_object().is_none_or(|m| !m.is_empty()))
    {
        return Err("macros are not supported by the stand-in".into());
    }
    let mut b = Builder {
        pools: HashMap::new(),
        handles: HashMap::new(),
    };
    if let Some(pools) = obj.get("pools") {
        for (name, pool) in pools.as_object().ok_or("pools is not an object")? {
            let servers = b.pool_servers(pool)?;
            b.pools.entry(name.clone()).or_insert(servers);
        }
    }
    if let Some(handles) = obj.get("named_handles") {
        for h in handles.as_array().ok_or("named_handles is not an array")? {
            let name = h
                .get("name")
                .and_then(Value::as_str)
                .ok_or("a named handle without a name")?;
            let route = b.route(h)?;
            b.handles.insert(name.to_string(), route);
        }
    }
    let (route, aliases) = match (obj.get("route"), obj.get("routes")) {
        (Some(r), None) => (b.route(r)?, HashMap::new()),
        (None, Some(Value::Array(routes))) => {
            let mut aliases = HashMap::new();
            for entry in routes {
                let names = entry
                    .get("aliases")
                    .and_then(Value::as_array)
                    .ok_or("routes entry without aliases")?;
                let route = b.route(entry.get("route").ok_or("routes entry without route")?)?;
                for n in names {
                    aliases.insert(
                        n.as_str().ok_or("alias is not a string")?.to_string(),
                        route.clone(),
                    );
                }
            }
            let default = aliases
                .get(route_prefix)
                .cloned()
                .ok_or_else(|| format!("invalid default route: no alias {route_prefix}"))?;
            (default, aliases)
        }
        (Some(_), Some(_)) => return Err("both route and routes".into()),
        _ => return Err("no route or routes".into()),
    };
    Ok(Config {
        md5: md5_hex(bytes),
        route,
        aliases,
    })
}

impl Builder {
    /// A pool object's servers. Its `hostnames` and `failure_domains` must list one entry per
    /// server (else mcrouter refuses the config); its `weights` of another length are dropped
    /// without a word, as mcrouter drops them.
    fn pool_servers(&mut self, pool: &Value) -> Result<Arc<Vec<String>>, String> {
        let servers = self.servers(pool.get("servers"))?;
        for key in ["hostnames", "failure_domains"] {
            if let Some(list) = pool.get(key).and_then(Value::as_array)
                && list.len() != servers.len()
            {
                return Err(format!(
                    "{key} has {} entries for {} servers",
                    list.len(),
                    servers.len()
                ));
            }
        }
        Ok(servers)
    }

    fn servers(&mut self, list: Option<&Value>) -> Result<Arc<Vec<String>>, String> {
        let list = list
            .and_then(Value::as_array)
            .ok_or("pool without a servers array")?;
        let mut out = Vec::with_capacity(list.len());
        for s in list {
            let s = s.as_str().ok_or("server is not a string")?;
            out.push(parse_server(s)?);
        }
        Ok(Arc::new(out))
    }

    fn pool(&mut self, v: &Value) -> Result<Arc<Vec<String>>, String> {
        match v {
            Value::String(s) => {
                let name = s.strip_prefix("Pool|").unwrap_or(s);
                self.pools
                    .get(name)
                    .cloned()
                    .ok_or_else(|| format!("unknown pool {name}"))
            }
            Value::Object(o) => {
                let servers = self.pool_servers(v)?;
                match o.get("name").and_then(Value::as_str) {
                    Some(name) => Ok(self
                        .pools
                        .entry(name.to_string())
                        .or_insert(servers)
                        .clone()),
                    None => Ok(servers),
                }
            }
            _ => Err("bad pool".into()),
        }
    }

    fn route(&mut self, v: &Value) -> Result<Route, String> {
        match v {
            Value::String(s) if s == "NullRoute" => Ok(Route::Null),
            Value::String(s) if self.handles.contains_key(s) => Ok(self.handles[s].clone()),
            Value::String(s) => match s.split_once('|') {
                Some(("PoolRoute", name)) => {
                    let servers = self.pool(&Value::String(name.into()))?;
                    Ok(Route::Pool {
                        servers,
                        hash: Hash::Ch3,
                    })
                }
                // mcrouter's words for a name that is no handle.
                _ => Err(format!("Unknown type or Missing Name Handle : {s}")),
            },
            Value::Object(o) => match o.get("type").and_then(Value::as_str) {
                Some("PoolRoute") => {
                    let servers = self.pool(o.get("pool").ok_or("PoolRoute without pool")?)?;
                    let hash = hash_of(o.get("hash").and_then(Value::as_object), &servers)?;
                    Ok(Route::Pool { servers, hash })
                }
                Some("HashRoute") => match o.get("children") {
                    Some(Value::Array(children)) => {
                        let children: Vec<Route> = children
                            .iter()
                            .map(|c| self.route(c))
                            .collect::<Result<_, _>>()?;
                        let hash = hash_of(Some(o), &vec![String::new(); children.len()])?;
                        Ok(Route::Hash { hash, children })
                    }
                    other => {
                        let servers = self.pool(other.ok_or("HashRoute without children")?)?;
                        let hash = hash_of(Some(o), &servers)?;
                        Ok(Route::Pool { servers, hash })
                    }
                },
                Some("OperationSelectorRoute") => {
                    let mut get = None;
                    if let Some(ops) = o.get("operation_policies").and_then(Value::as_object) {
                        for (op, r) in ops {
                            if !OPERATIONS.contains(&op.as_str()) {
                                return Err(format!("Unknown operation: {op}"));
                            }
                            let route = self.route(r)?;
                            if op == "get" {
                                get = Some(route);
                            }
                        }
                    }
                    let default = match o.get("default_policy") {
                        Some(r) => Some(self.route(r)?),
                        None => None,
                    };
                    get.or(default)
                        .ok_or_else(|| "OperationSelectorRoute without a policy for get".into())
                }
                Some("WarmUpRoute") => {
                    self.route(o.get("warm").ok_or("WarmUpRoute without warm")?)?;
                    self.route(o.get("cold").ok_or("WarmUpRoute without cold")?)
                }
                Some("AllSyncRoute" | "AllInitialRoute" | "FailoverRoute") => {
                    let children = o
                        .get("children")
                        .and_then(Value::as_array)
                        .ok_or("a route without children")?;
                    let mut built = children.iter().map(|c| self.route(c));
                    let first = built.next().ok_or("a route with no children")??;
                    built.try_for_each(|r| r.map(drop))?;
                    Ok(first)
                }
                Some("LatencyInjectionRoute") => self.route(
                    o.get("child")
                        .ok_or("LatencyInjectionRoute without child")?,
                ),
                Some("ModifyExptimeRoute") => {
                    self.route(o.get("target").ok_or("ModifyExptimeRoute without target")?)
                }
                Some("NullRoute") => Ok(Route::Null),
                Some("PrefixSelectorRoute") => {
                    let mut policies = Vec::new();
                    if let Some(p) = o.get("policies").and_then(Value::as_object) {
                        for (prefix, r) in p {
                            policies.push((prefix.clone(), self.route(r)?));
                        }
                    }
                    let wildcard = Box::new(
                        self.route(
                            o.get("wildcard")
                                .ok_or("PrefixSelectorRoute without wildcard")?,
                        )?,
                    );
                    Ok(Route::PrefixSelector { policies, wildcard })
                }
                // mcrouter's words; the stand-in knows only the three above.
                other => Err(format!(
                    "Unknown RouteHandle: {}",
                    other.unwrap_or("(no type)")
                )),
            },
            _ => Err("bad route".into()),
        }
    }
}

fn hash_of(obj: Option<&Map<String, Value>>, servers: &[String]) -> Result<Hash, String> {
    let Some(obj) = obj else { return Ok(Hash::Ch3) };
    match obj.get("hash_func").and_then(Value::as_str) {
        None | Some("Ch3") => Ok(Hash::Ch3),
        // Accepted as mcrouter accepts it; the stand-in places keys by plain Ch3 (no test
        // reads where a weighted pool puts a key).
        Some("WeightedCh3") => Ok(Hash::Ch3),
        Some("Rendezvous") => {
            let tags: Vec<String> = obj
                .get("tags")
                .and_then(Value::as_array)
                .ok_or("Rendezvous hash needs tags")?
                .iter()
                .map(|t| t.as_str().map(String::from).ok_or("tag is not a string"))
                .collect::<Result<_, _>>()?;
            if tags.len() != servers.len() {
                // mcrouter's words.
                return Err(format!(
                    "HashRoute: number of tags {} doesn't match number of route handles {}",
                    tags.len(),
                    servers.len()
                ));
            }
            Ok(Hash::Rendezvous(tags))
        }
        Some(other) => Err(format!("unsupported hash_func {other}")),
    }
}

/// The operation names mcrouter's OperationSelectorRoute accepts.
const OPERATIONS: [&str; 19] = [
    "add",
    "append",
    "cas",
    "decr",
    "delete",
    "flushall",
    "flushre",
    "gat",
    "gats",
    "get",
    "gets",
    "incr",
    "lease-get",
    "lease-set",
    "metaget",
    "prepend",
    "replace",
    "set",
    "touch",
];

/// `host:port[:protocol[:security[:compression]]]` or `[v6]:port…`; returns the `host:port`
/// to connect to.
pub fn parse_server(s: &str) -> Result<String, String> {
    let (host, rest) = match s.strip_prefix('[') {
        Some(v6) => {
            let (h, r) = v6
                .split_once(']')
                .ok_or_else(|| format!("bad server {s}"))?;
            (
                format!("[{h}]"),
                r.strip_prefix(':')
                    .ok_or_else(|| format!("server {s} has no port"))?,
            )
        }
        None => {
            let (h, r) = s
                .split_once(':')
                .ok_or_else(|| format!("server {s} has no port"))?;
            (h.to_string(), r)
        }
    };
    let mut parts = rest.split(':');
    let port: u16 = parts
        .next()
        .unwrap_or("")
        .parse()
        .map_err(|_| format!("server {s}: bad port"))?;
    let allowed: [&[&str]; 3] = [
        &["ascii", "caret", "thrift"],
        &["plain", "ssl", "tls_to_plain", "fizz", "ktls12"],
        &["compressed", "notcompressed"],
    ];
    for (i, part) in parts.enumerate() {
        if i >= 3 || !allowed[i].contains(&part) {
            return Err(format!("server {s}: bad suffix {part}"));
        }
    }
    if host.is_empty() {
        return Err(format!("server {s}: empty host"));
    }
    Ok(format!("{host}:{port}"))
}

impl Config {
    /// Every destination any route can send to (`ip:port`), each once.
    pub fn destinations(&self) -> Vec<String> {
        fn walk(route: &Route, out: &mut std::collections::BTreeSet<String>) {
            match route {
                Route::Pool { servers, .. } => out.extend(servers.iter().cloned()),
                Route::PrefixSelector { policies, wildcard } => {
                    policies.iter().for_each(|(_, r)| walk(r, out));
                    walk(wildcard, out);
                }
                Route::Hash { children, .. } => children.iter().for_each(|r| walk(r, out)),
                Route::Null => {}
            }
        }
        let mut out = std::collections::BTreeSet::new();
        walk(&self.route, &mut out);
        self.aliases.values().for_each(|r| walk(r, &mut out));
        out.into_iter().collect()
    }

    /// The backend for `key`, and the key as it is sent there (explicit prefix stripped).
    pub fn backend<'k>(&self, key: &'k str) -> Option<(String, &'k str)> {
        let (route, key) = match explicit_prefix(key) {
            Some((prefix, rest)) => (self.aliases.get(prefix)?, rest),
            None => (&self.route, key),
        };
        let mut route = route;
        loop {
            match route {
                Route::PrefixSelector { policies, wildcard } => {
                    route = policies
                        .iter()
                        .filter(|(p, _)| key.starts_with(p.as_str()))
                        .max_by_key(|(p, _)| p.len())
                        .map_or(wildcard.as_ref(), |(_, r)| r);
                }
                Route::Pool { servers, hash: h } => {
                    if servers.is_empty() {
                        return None;
                    }
                    return Some((servers[pick(h, key, servers.len())].clone(), key));
                }
                Route::Hash { hash: h, children } => {
                    if children.is_empty() {
                        return None;
                    }
                    route = &children[pick(h, key, children.len())];
                }
                Route::Null => return None,
            }
        }
    }
}

/// The index `hash` gives `key` among `n`.
fn pick(hash: &Hash, key: &str, n: usize) -> usize {
    match hash {
        Hash::Ch3 => hash::furc_hash(key.as_bytes(), n as u32) as usize,
        Hash::Rendezvous(tags) => hash::rendezvous(key.as_bytes(), tags),
    }
}

/// `/region/cluster/rest` → (`/region/cluster/`, `rest`).
fn explicit_prefix(key: &str) -> Option<(&str, &str)> {
    let body = key.strip_prefix('/')?;
    let (_, after_region) = body.split_once('/')?;
    let (_, rest) = after_region.split_once('/')?;
    let cut = key.len() - rest.len();
    Some((&key[..cut], rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_routes() {
        let cfg = br#"{
          // comment
          "pools": {"a": {"servers": ["127.0.0.1:1", "127.0.0.1:2",]}, "a2": {"servers": ["[::1]:3:ascii:plain"]}},
          "routes": [
            {"aliases": ["/dc/c0/"], "route": {"type": "PrefixSelectorRoute", "policies": {"shr:": "PoolRoute|a2"}, "wildcard": "PoolRoute|a"}},
            {"aliases": ["/dc/c1/"], "route": {"type": "HashRoute", "children": "Pool|a", "hash_func": "Rendezvous", "tags": ["x", "y"]}},
          ],
        }"#;
        let c = build(cfg, "/dc/c0/").unwrap();
        assert_eq!(c.md5, md5_hex(cfg));
        assert_eq!(c.backend("shr:k").unwrap().0, "[::1]:3");
        assert!(c.backend("k").unwrap().0.starts_with("127.0.0.1:"));
        assert_eq!(c.backend("/dc/c1/k").unwrap().1, "k");
        assert!(
            build(cfg, "/dc/c9/")
                .unwrap_err()
                .contains("invalid default route")
        );
    }

    #[test]
    fn rejects_what_mcrouter_rejects() {
        for (bad, why) in [
            (r#"{"route": "PoolRoute|nope"}"#, "unknown pool"),
            (
                r#"{"pools": {"a": {"servers": ["1.2.3.4"]}}, "route": "PoolRoute|a"}"#,
                "no port",
            ),
            (
                r#"{"pools": {"a": {"servers": ["1.2.3.4:1:http"]}}, "route": "PoolRoute|a"}"#,
                "bad suffix",
            ),
            (r#"{"pools": {}}"#, "no route"),
            (
                r#"{"pools": {"a": {"servers": ["1.2.3.4:1"]}}, "route": {"type": "PoolRoute", "pool": "a", "hash": {"hash_func": "Rendezvous"}}}"#,
                "needs tags",
            ),
            (r#"{"route": "#, "parse error"),
        ] {
            let err = build(bad.as_bytes(), "/././").unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
