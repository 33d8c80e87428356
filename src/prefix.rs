//! mcrouter's routing prefix (`-R /region/cluster/`) and the default-route rule.
//!
//! Owns normalising a prefix the way mcrouter does and checking it against a config's
//! `routes` aliases, so mcw can refuse what mcrouter would silently fall back from or fail on.
//! Pure: takes strings and a JSON tree.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error(
        "routing prefix {0:?} is not /region/cluster/ (two non-empty parts); mcrouter would ignore it and use /././"
    )]
    Malformed(String),
    #[error(
        "routing prefix {prefix:?} matches no alias in the config's routes (aliases: {}); mcrouter would fail with \"invalid default route\"; pass one of them with -R, or add {prefix:?} to a route's aliases",
        .aliases.join(", ")
    )]
    NoAlias {
        prefix: String,
        aliases: Vec<String>,
    },
}

/// Normalise a routing prefix: add the leading and trailing `/` when missing, then require
/// exactly two non-empty parts.
pub fn normalise(raw: &str) -> Result<String, PrefixError> {
    let mut p = raw.to_string();
    if !p.starts_with('/') {
        p.insert(0, '/');
    }
    if !p.ends_with('/') {
        p.push('/');
    }
    let inner = p.strip_prefix('/').and_then(|s| s.strip_suffix('/'));
    let two_parts = inner.is_some_and(|inner| {
        let parts: Vec<&str> = inner.split('/').collect();
        parts.len() == 2 && parts.iter().all(|part| !part.is_empty())
    });
    if !two_parts {
        return Err(PrefixError::Malformed(raw.to_string()));
    }
    Ok(p)
}

/// How a config passed the alias check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aliases {
    /// A single `route`, or an alias equal to the prefix.
    Match,
    /// No plain alias matched, but this many route entries or aliases are macro calls or hold
    /// macro parameters, which cannot be checked: let through (callers say so at debug level).
    Unverifiable(usize),
}

/// Check that a config with `routes` has an alias equal to `prefix` (already normalised), byte
/// for byte. Configs with a single `route` accept any prefix. Route entries that are macro
/// calls, and aliases holding macro parameters, cannot be checked; when such entries exist and
/// nothing else matched, the check passes as [`Aliases::Unverifiable`].
pub fn check_aliases(config: &Value, prefix: &str) -> Result<Aliases, PrefixError> {
    let Some(Value::Array(routes)) = config.get("routes") else {
        return Ok(Aliases::Match);
    };
    let mut aliases = Vec::new();
    let mut unverifiable = 0;
    for route in routes {
        match route.get("aliases") {
            Some(Value::Array(list)) => {
                for alias in list {
                    match alias.as_str() {
                        Some(a) if a.contains('%') || a.starts_with('@') => unverifiable += 1,
                        Some(a) => aliases.push(a.to_string()),
                        None => unverifiable += 1,
                    }
                }
            }
            _ => unverifiable += 1,
        }
    }
    if aliases.iter().any(|a| a == prefix) {
        return Ok(Aliases::Match);
    }
    if unverifiable > 0 {
        return Ok(Aliases::Unverifiable(unverifiable));
    }
    Err(PrefixError::NoAlias {
        prefix: prefix.to_string(),
        aliases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalisation_table() {
        let ok = [
            ("/datacenter/cluster0/", "/datacenter/cluster0/"),
            ("datacenter/cluster0", "/datacenter/cluster0/"),
            ("/dc/c0", "/dc/c0/"),
            ("dc/c0/", "/dc/c0/"),
        ];
        for (raw, want) in ok {
            assert_eq!(normalise(raw).as_deref(), Ok(want), "{raw}");
        }
        for bad in ["/a/", "", "/", "//", "/a//", "/a/b/c/", "a", "//b/"] {
            assert!(normalise(bad).is_err(), "{bad} should be refused");
        }
    }

    fn seed_config() -> Value {
        json!({"routes": [
            {"aliases": ["/datacenter/cluster0/"], "route": "PoolRoute|a"},
            {"aliases": ["/datacenter/cluster1/"], "route": "PoolRoute|b"}
        ]})
    }

    #[test]
    fn the_seed_example_prefixes() {
        let config = seed_config();
        assert!(check_aliases(&config, "/datacenter/cluster0/").is_ok());
        let err = check_aliases(&config, "/datacenter/cluster2/").unwrap_err();
        assert!(err.to_string().contains("invalid default route"), "{err}");
        assert!(err.to_string().contains("/datacenter/cluster1/"), "{err}");
    }

    #[test]
    fn single_route_and_macro_routes_pass() {
        let single = check_aliases(&json!({"route": "PoolRoute|a"}), "/x/y/");
        assert_eq!(single.unwrap(), Aliases::Match);
        let macros = json!({"routes": ["@cluster_route(0)", "@cluster_route(1)"]});
        assert_eq!(
            check_aliases(&macros, "/x/y/").unwrap(),
            Aliases::Unverifiable(2)
        );
        let params = json!({"routes": [{"aliases": ["/dc/cluster%id%/"]}]});
        assert_eq!(
            check_aliases(&params, "/dc/cluster3/").unwrap(),
            Aliases::Unverifiable(1)
        );
    }
}
