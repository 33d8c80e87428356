//! The config template: JSON5 text → a JSON tree plus the DNS tokens found in it.
//!
//! Owns parsing (with file:line:col errors), finding tokens in every array stored under a
//! `servers` key anywhere in the tree, and — in [`render`] — turning the tree plus DNS answers
//! into the strict JSON mcrouter reads. Everything here is pure: reading the file is the only
//! I/O ([`Template::load`]) and nothing here resolves names.

pub mod json5;
pub mod pools;
pub mod render;
pub mod token;

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::dns::Query;

pub use render::{Rendered, render};
pub use token::{Token, TokenError};

/// A parsed template. Cheap to clone relative to a render.
#[derive(Clone, Debug)]
pub struct Template {
    value: Value,
    /// Token sites in document order (the order an operator reads them in).
    sites: Vec<Site>,
    /// Where each site is in `sites`, by the JSON pointer of the string it replaces.
    at: HashMap<String, usize>,
}

/// One token in the template: where it is, what was written, and what it means.
#[derive(Clone, Debug)]
pub struct Site {
    pub pointer: String,
    pub text: String,
    pub token: Token,
}

/// A template that cannot be used. Names the file and the place.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {path}: cannot read it: {source}", path = .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("template {path}:{line}:{col}: {message}", path = .path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        col: usize,
        message: String,
    },
    #[error("template {path}: the top level must be a JSON object (an mcrouter config)", path = .path.display())]
    NotObject { path: PathBuf },
    #[error("template {path}: {}", TokenList(.errors))]
    Tokens {
        path: PathBuf,
        errors: Vec<(String, String, TokenError)>,
    },
    #[error(
        "template {path}: {pointer}/{key} lists one entry per server, but {pointer}/servers holds a DNS token, so how many servers there are changes with DNS: {why}", path = .path.display()
    )]
    PerServer {
        path: PathBuf,
        pointer: String,
        key: &'static str,
        why: String,
    },
    #[error(
        "template {path}: {pointer} gives Rendezvous tags, one per server, but {servers} holds a DNS token, so how many servers there are changes with DNS (mcrouter refuses a config whose tags do not match its servers); remove the tags and mcw writes one per server", path = .path.display()
    )]
    GivenTags {
        path: PathBuf,
        pointer: String,
        servers: String,
    },
    #[error(
        "template {path}: {pointer} gives WeightedCh3 weights, one per server, but {servers} holds a DNS token, so how many servers there are changes with DNS (mcrouter takes weights of another count, logging CONFIG IS BROKEN); give them in the pool instead, one per entry of servers, and mcw writes one per server (a dnssrv:// token's from its SRV weights)", path = .path.display()
    )]
    GivenWeights {
        path: PathBuf,
        pointer: String,
        servers: String,
    },
}

/// Whether a pool's lists of one entry per server (`hostnames`, `weights`,
/// `failure_domains`) can be kept in step with a servers array that holds a token: mcw writes
/// `hostnames` (an SRV target's or the token's name) and `weights` (from SRV weights) for a
/// token's servers, when the template gives one entry per entry of `servers`; it cannot know
/// a server's failure domain. The key and why not, when not.
fn unkeepable_list(pool: &Value, servers: &[Value]) -> Option<(&'static str, String)> {
    let tokens: Vec<Token> = servers
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|t| token::parse(t).ok().flatten())
        .collect();
    if tokens.is_empty() {
        return None;
    }
    if pool.get("failure_domains").is_some() {
        return Some((
            "failure_domains",
            "mcw cannot know a server's failure domain, and mcrouter refuses failure_domains that do not match the servers; remove failure_domains".into(),
        ));
    }
    for key in ["hostnames", "weights"] {
        let Some(list) = pool.get(key) else { continue };
        match list.as_array() {
            Some(list) if list.len() == servers.len() => {}
            _ => {
                return Some((
                    key,
                    format!(
                        "give one entry per entry of servers ({} of them): mcw replaces a token's entry by one per server it resolves to",
                        servers.len()
                    ),
                ));
            }
        }
    }
    if pool.get("weights").is_some() && tokens.iter().any(|t| !t.query.srv) {
        return Some((
            "weights",
            "an address record carries no weight; use dnssrv:// tokens (mcw writes their SRV weights) or remove weights".into(),
        ));
    }
    None
}

struct TokenList<'a>(&'a [(String, String, TokenError)]);

impl fmt::Display for TokenList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} bad token{}", if n == 1 { "" } else { "s" })?;
        for (pointer, text, err) in self.0 {
            write!(f, "\n  {pointer}: {text:?}: {err}")?;
        }
        Ok(())
    }
}

/// The largest template mcw reads (a 100 MB file is a mistake, not a config).
pub const MAX_TEMPLATE_BYTES: u64 = 16 << 20;

impl Template {
    /// Read and parse a template file.
    pub fn load(path: &Path) -> Result<Template, TemplateError> {
        Template::parse(path, &Template::read(path)?)
    }

    /// Read a template file's text, with an error naming the file. It must be a regular file
    /// (symlinks are followed: ConfigMap volumes are made of them) of at most
    /// [`MAX_TEMPLATE_BYTES`]; a FIFO or device put in its place is refused, not waited on.
    pub fn read(path: &Path) -> Result<String, TemplateError> {
        use crate::fsx::{Regular, read_regular};
        let err = |source| TemplateError::Read {
            path: path.to_path_buf(),
            source,
        };
        let bytes = match read_regular(path, nix::fcntl::OFlag::empty(), MAX_TEMPLATE_BYTES) {
            Ok(Regular::Bytes(bytes)) => bytes,
            Ok(Regular::NotRegular) => {
                return Err(err(std::io::Error::other("it is not a regular file")));
            }
            Ok(Regular::TooBig) => {
                return Err(err(std::io::Error::other(format!(
                    "it is larger than {} MiB; no mcrouter config is that big",
                    MAX_TEMPLATE_BYTES >> 20
                ))));
            }
            Err(e) => return Err(err(e)),
        };
        String::from_utf8(bytes)
            .map_err(|e| err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
    }

    /// Parse template text (JSON5, which covers mcrouter's JSON with comments and trailing
    /// commas); `path` is only used in error messages.
    pub fn parse(path: &Path, text: &str) -> Result<Template, TemplateError> {
        let syntax = |offset: usize, message: String| {
            let (line, col) = line_col(text, offset);
            TemplateError::Syntax {
                path: path.to_path_buf(),
                line,
                col,
                message,
            }
        };
        let strict = json5::to_strict(text).map_err(|e| syntax(e.offset, e.message))?;
        let value: Value = serde_json::from_str(&strict.text).map_err(|e| {
            let message = e.to_string();
            // serde_json appends " at line L column C"; the prefix already says where.
            let message = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(m, _)| m)
                .to_string();
            let at = offset_of(&strict.text, e.line(), e.column());
            syntax(strict.source_offset(at), message)
        })?;
        if !value.is_object() {
            return Err(TemplateError::NotObject {
                path: path.to_path_buf(),
            });
        }
        let mut sites = Vec::new();
        let mut errors = Vec::new();
        let mut per_server = None;
        for_each_servers_array(&value, &mut |pointer, servers| {
            let pool = pointer.strip_suffix("/servers").unwrap_or(pointer);
            if per_server.is_none()
                && let Some((key, why)) = value
                    .pointer(pool)
                    .and_then(|p| unkeepable_list(p, servers))
            {
                per_server = Some((pool.to_string(), key, why));
            }
            for (i, entry) in servers.iter().enumerate() {
                let Some(text) = entry.as_str() else { continue };
                let pointer = format!("{pointer}/{i}");
                match token::parse(text) {
                    Ok(Some(token)) => {
                        sites.push(Site {
                            pointer,
                            text: text.to_string(),
                            token,
                        });
                    }
                    Ok(None) => {}
                    Err(err) => errors.push((pointer, text.to_string(), err)),
                }
            }
        });
        if !errors.is_empty() {
            return Err(TemplateError::Tokens {
                path: path.to_path_buf(),
                errors,
            });
        }
        if let Some((pointer, key, why)) = per_server {
            return Err(TemplateError::PerServer {
                path: path.to_path_buf(),
                pointer,
                key,
                why,
            });
        }
        let has_token = |servers: &str| {
            value
                .pointer(servers)
                .and_then(Value::as_array)
                .is_some_and(|s| {
                    s.iter()
                        .filter_map(Value::as_str)
                        .any(|t| matches!(token::parse(t), Ok(Some(_))))
                })
        };
        if let Some((pointer, servers)) = pools::given_rendezvous_tags(&value)
            .into_iter()
            .find(|(_, servers)| has_token(servers))
        {
            return Err(TemplateError::GivenTags {
                path: path.to_path_buf(),
                pointer,
                servers,
            });
        }
        if let Some((pointer, servers)) = pools::given_hash_weights(&value)
            .into_iter()
            .find(|(_, servers)| has_token(servers))
        {
            return Err(TemplateError::GivenWeights {
                path: path.to_path_buf(),
                pointer,
                servers,
            });
        }
        let at = sites
            .iter()
            .enumerate()
            .map(|(n, site)| (site.pointer.clone(), n))
            .collect();
        Ok(Template { value, sites, at })
    }

    /// The parsed JSON tree, before any token is expanded.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Token sites in document order: as the template lists them, `/servers/2` before
    /// `/servers/10`, and pools in the order they are written.
    pub fn sites(&self) -> impl Iterator<Item = &Site> {
        self.sites.iter()
    }

    /// The site of the string at `pointer`, if it is a token.
    pub fn site_at(&self, pointer: &str) -> Option<&Site> {
        self.at.get(pointer).map(|n| &self.sites[*n])
    }

    /// The first token that asks `query`, as written; `None` when none does.
    pub fn token_of(&self, query: &Query) -> Option<&str> {
        let mut sites = self.sites.iter();
        sites
            .find(|s| &s.token.query == query)
            .map(|s| s.text.as_str())
    }

    /// The distinct lookups the template needs.
    pub fn queries(&self) -> BTreeSet<Query> {
        self.sites.iter().map(|s| s.token.query.clone()).collect()
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The byte offset of 1-based `line` and `column` (as serde_json counts them: bytes into the
/// line) in `text`.
pub fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    (start + column.saturating_sub(1)).min(text.len())
}

/// Escape one JSON-pointer reference token (RFC 6901).
pub(crate) fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The one walk over a config tree: `f(pointer, node)` for every node, in document order.
pub(crate) fn walk(value: &Value, f: &mut dyn FnMut(&str, &Value)) {
    fn visit(value: &Value, pointer: &mut String, f: &mut dyn FnMut(&str, &Value)) {
        f(pointer, value);
        let len = pointer.len();
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    pointer.push('/');
                    pointer.push_str(&pointer_escape(key));
                    visit(child, pointer, f);
                    pointer.truncate(len);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    pointer.push('/');
                    pointer.push_str(&i.to_string());
                    visit(child, pointer, f);
                    pointer.truncate(len);
                }
            }
            _ => {}
        }
    }
    visit(value, &mut String::new(), f);
}

/// Call `f(pointer, array)` for every array stored under a `servers` key, in document order.
/// (A pointer segment `servers` is always an object key: array indices are numbers.)
pub(crate) fn for_each_servers_array(value: &Value, f: &mut dyn FnMut(&str, &[Value])) {
    walk(value, &mut |pointer, node| {
        if let Value::Array(items) = node
            && pointer.rsplit('/').next() == Some("servers")
        {
            f(pointer, items);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO, a directory or a 100 MB file where the template should be: refused at once,
    /// with the path and the reason.
    #[test]
    fn only_a_regular_file_of_sane_size_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.json");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let huge = dir.path().join("huge.json");
        std::fs::File::create(&huge)
            .unwrap()
            .set_len(100 << 20)
            .unwrap();
        for (path, why) in [
            (fifo, "not a regular file"),
            (dir.path().to_path_buf(), "not a regular file"),
            (huge, "larger than 16 MiB"),
        ] {
            let e = Template::read(&path).unwrap_err().to_string();
            assert!(
                e.contains(why) && e.contains(&*path.to_string_lossy()),
                "{e}"
            );
        }
    }

    fn parse(text: &str) -> Result<Template, TemplateError> {
        Template::parse(Path::new("t.json"), text)
    }

    #[test]
    fn finds_tokens_under_every_servers_key() {
        let t = parse(
            r#"{
              // top-level pool
              "pools": {"a": {"servers": ["dns://a.test", "10.0.0.1:11211",]}},
              "route": {"type": "PoolRoute", "pool": {"name": "inline", "servers": ["dnssrv://_m._tcp.b.test"]}},
              "macros": {"m": {"type": "macroDef", "result": {"servers": ["dns+1://c.test"]}}},
              "notes": ["dns://not-a-token.test"], /* not under servers */
            }"#,
        )
        .unwrap();
        let pointers: Vec<_> = t.sites().map(|s| s.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            [
                "/pools/a/servers/0",
                "/route/pool/servers/0",
                "/macros/m/result/servers/0",
            ]
        );
        assert_eq!(t.queries().len(), 3);
    }

    /// Regression: tokens were listed in string order of their JSON pointers (`/servers/10`
    /// before `/servers/2`, pool `alpha` before `zeta`), not in the order the template has them.
    #[test]
    fn tokens_are_listed_in_template_order() {
        let servers: Vec<String> = (0..12).map(|i| format!("\"dns://m{i}.test\"")).collect();
        let t = parse(&format!(
            r#"{{"pools": {{"zeta": {{"servers": [{}]}}, "alpha": {{"servers": ["dns://a.test"]}}}}}}"#,
            servers.join(", ")
        ))
        .unwrap();
        let pointers: Vec<String> = t.sites().map(|s| s.pointer.clone()).collect();
        let mut want: Vec<String> = (0..12)
            .map(|i| format!("/pools/zeta/servers/{i}"))
            .collect();
        want.push("/pools/alpha/servers/0".into());
        assert_eq!(pointers, want);
        assert_eq!(
            t.site_at("/pools/zeta/servers/10").unwrap().text,
            "dns://m10.test"
        );
    }

    /// Templates written for the original MCW, in JSON5: bare keys and single quotes are
    /// read, the output is strict JSON, and an error still points at the template's own line
    /// and column.
    #[test]
    fn json5_templates_of_the_original_mcw_are_read() {
        let t = parse(
            "{\n  pools: {\n    kubernetes: {servers: ['dns://memcache.domain', '10.0.0.9:11211']},\n  },\n  route: 'PoolRoute|kubernetes',\n}",
        )
        .unwrap();
        assert_eq!(
            t.value()["pools"]["kubernetes"]["servers"][1],
            "10.0.0.9:11211"
        );
        assert_eq!(t.sites().next().unwrap().text, "dns://memcache.domain");
        let err = parse("{\n  pools: {a: 'x'},\n  route: 'PoolRoute|a' 'oops',\n}")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("template t.json:3:24: "), "{err}");
    }

    #[test]
    fn line_col_counts_from_one() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(offset_of("ab\ncd", 2, 2), 4);
    }

    #[test]
    fn syntax_errors_name_file_line_and_column() {
        let err = parse("{\n  // fine\n  \"pools\": {,}\n}")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("template t.json:3:"), "{err}");
        let err = parse("{\n /* never closed").unwrap_err().to_string();
        assert_eq!(err, "template t.json:2:2: unterminated /* comment");
        let err = parse("[1]").unwrap_err().to_string();
        assert!(err.contains("must be a JSON object"), "{err}");
    }

    #[test]
    fn every_bad_token_is_reported_with_its_json_path() {
        let err = parse(
            r#"{"pools": {"c": {"servers": ["dns://ok.test", "dns://x%id%.test", "dnsx://y"]}}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("2 bad tokens"), "{err}");
        assert!(
            err.contains("/pools/c/servers/1: \"dns://x%id%.test\""),
            "{err}"
        );
        assert!(err.contains("/pools/c/servers/2: \"dnsx://y\""), "{err}");
    }

    /// mcrouter refuses a pool whose hostnames or failure_domains do not list one entry per
    /// server, and drops such weights silently. Beside a DNS token mcw writes hostnames and
    /// (from SRV records) weights, one per server, when the template gives one entry per
    /// entry of servers; anything it cannot keep in step is a template error.
    #[test]
    fn per_server_lists_beside_a_token_are_refused_unless_mcw_can_keep_them() {
        let refused = [
            (
                r#""servers": ["dns://a.test"], "failure_domains": ["x"]"#,
                "failure_domains",
                "remove failure_domains",
            ),
            (
                r#""servers": ["dns://a.test"], "hostnames": ["x", "y"]"#,
                "hostnames",
                "one entry per entry of servers (1 of them)",
            ),
            (
                r#""servers": ["dnssrv://_m._tcp.a.test", "10.0.0.1:1"], "weights": [1]"#,
                "weights",
                "(2 of them)",
            ),
            (
                r#""servers": ["dnssrv://_m._tcp.a.test"], "weights": 1"#,
                "weights",
                "one entry per entry",
            ),
            (
                r#""servers": ["dns://a.test"], "weights": [1]"#,
                "weights",
                "use dnssrv:// tokens",
            ),
        ];
        for (pool, key, why) in refused {
            let err = parse(&format!(r#"{{"pools": {{"a": {{{pool}}}}}}}"#))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("/pools/a/{key} lists one entry per server"))
                    && err.contains(why),
                "{pool}: {err}"
            );
        }
        for pool in [
            r#""servers": ["dns://a.test"], "hostnames": ["x"]"#,
            r#""servers": ["dnssrv://_m._tcp.a.test", "10.0.0.1:1"], "hostnames": ["x", "y"], "weights": [1, 0.5]"#,
            r#""servers": ["10.0.0.1:1"], "hostnames": ["x", "y"], "failure_domains": []"#,
        ] {
            assert!(
                parse(&format!(r#"{{"pools": {{"a": {{{pool}}}}}}}"#)).is_ok(),
                "{pool}"
            );
        }
    }

    /// mcrouter reads WeightedCh3 weights from the hash object too, and takes a count that is
    /// not one per server (logging "CONFIG IS BROKEN"): over a pool with a DNS token they are
    /// a template error pointing to the pool, where mcw keeps them in step.
    #[test]
    fn weighted_hash_weights_over_a_token_are_refused() {
        let pools = r#""pools": {"a": {"servers": ["dnssrv://_m._tcp.a.test"]}, "s": {"servers": ["10.0.0.1:1"]}}"#;
        for (route, pointer) in [
            (
                r#"{"type": "PoolRoute", "pool": "a", "hash": {"hash_func": "WeightedCh3", "weights": [1]}}"#,
                "/route/hash/weights",
            ),
            (
                r#"{"type": "HashRoute", "children": "Pool|a", "hash_func": "WeightedCh3", "weights": [1]}"#,
                "/route/weights",
            ),
        ] {
            let err = parse(&format!(r#"{{{pools}, "route": {route}}}"#))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("{pointer} gives WeightedCh3 weights"))
                    && err.contains("give them in the pool instead"),
                "{err}"
            );
        }
        let static_pool = r#"{"type": "PoolRoute", "pool": "s", "hash": {"hash_func": "WeightedCh3", "weights": [1]}}"#;
        assert!(parse(&format!(r#"{{{pools}, "route": {static_pool}}}"#)).is_ok());
        let in_pool = r#""pools": {"a": {"servers": ["dnssrv://_m._tcp.a.test"], "weights": [1]}}"#;
        let route = r#"{"type": "PoolRoute", "pool": "a", "hash": {"hash_func": "WeightedCh3"}}"#;
        assert!(parse(&format!(r#"{{{in_pool}, "route": {route}}}"#)).is_ok());
    }

    /// mcrouter refuses a Rendezvous hash whose tags are not one per server ("number of tags
    /// 1 doesn't match number of route handles 2"): the template's own tags over a pool with a
    /// DNS token are a template error, whichever way the route names the pool; over static
    /// servers they are the template's business.
    #[test]
    fn given_rendezvous_tags_over_a_token_are_refused() {
        let pools =
            r#""pools": {"a": {"servers": ["dns://a.test"]}, "s": {"servers": ["10.0.0.1:1"]}}"#;
        for (route, pointer) in [
            (
                r#"{"type": "PoolRoute", "pool": "a", "hash": {"hash_func": "Rendezvous", "tags": ["x"]}}"#,
                "/route/hash/tags",
            ),
            (
                r#"{"type": "HashRoute", "children": "Pool|a", "hash_func": "Rendezvous", "tags": ["x"]}"#,
                "/route/tags",
            ),
            (
                r#"{"type": "PoolRoute", "pool": {"name": "b", "servers": ["dnssrv://_m._tcp.b.test"]}, "hash": {"hash_func": "Rendezvous", "tags": ["x"]}}"#,
                "/route/hash/tags",
            ),
        ] {
            let err = parse(&format!(r#"{{{pools}, "route": {route}}}"#))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("{pointer} gives Rendezvous tags"))
                    && err.contains("remove the tags"),
                "{err}"
            );
        }
        let static_pool = r#"{"type": "PoolRoute", "pool": "s", "hash": {"hash_func": "Rendezvous", "tags": ["x"]}}"#;
        assert!(parse(&format!(r#"{{{pools}, "route": {static_pool}}}"#)).is_ok());
        let untagged = r#"{"type": "PoolRoute", "pool": "a", "hash": {"hash_func": "Rendezvous"}}"#;
        assert!(parse(&format!(r#"{{{pools}, "route": {untagged}}}"#)).is_ok());
    }

    #[test]
    fn pointer_segments_are_escaped() {
        let t = parse(r#"{"pools": {"a/b~c": {"servers": ["dns://a.test"]}}}"#).unwrap();
        assert_eq!(
            t.sites().next().unwrap().pointer,
            "/pools/a~1b~0c/servers/0"
        );
    }
}
