//! The DNS token grammar: `dns://NAME`, `dns+PORT://NAME`, `dnssrv://NAME`, each with an
//! optional `?family=…&protocol=…&security=…&compression=…` query.
//!
//! Owns recognising a token inside a `servers` string and validating every part of it. It does
//! not know where in the template the string sits (the caller adds the JSON path) and never
//! touches the network.

use crate::dns::{Family, NameError, Query, validate_name};

/// Port mcrouter's memcached servers use when a `dns://` token names none.
pub const DEFAULT_PORT: u16 = 11211;

/// A parsed token: the lookup plus how each resolved address is written back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub query: Query,
    /// Port for address tokens; `None` for SRV tokens, whose records carry the port.
    pub port: Option<u16>,
    /// mcrouter's positional suffixes, each with its leading colon (`:ascii:plain`), or empty.
    pub suffix: String,
}

/// Why a `servers` string that looks like a token is not a valid one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("unknown token scheme \"{0}\" (use dns://, dns+PORT:// or dnssrv://)")]
    UnknownScheme(String),
    #[error("bad port \"{0}\" in token scheme (use dns+PORT:// with PORT from 1 to 65535)")]
    BadPort(String),
    #[error(transparent)]
    BadName(#[from] NameError),
    #[error("unknown query key \"{0}\" (known keys: family, protocol, security, compression)")]
    UnknownKey(String),
    #[error("query key \"{0}\" is given twice")]
    RepeatedKey(String),
    #[error("bad {key} \"{value}\" (expected one of: {expected})")]
    BadValue {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(
        "{0} needs {1} as well: mcrouter reads server suffixes by position (host:port:protocol:security:compression)"
    )]
    MissingPositional(&'static str, &'static str),
}

const PROTOCOLS: &[&str] = &["ascii", "caret", "thrift"];
const SECURITIES: &[&str] = &["plain", "ssl", "tls_to_plain", "fizz", "ktls12"];
const COMPRESSIONS: &[&str] = &["compressed", "notcompressed"];

/// Parse one `servers` string. `Ok(None)` means it is a static entry (no `://`), kept as is.
pub fn parse(text: &str) -> Result<Option<Token>, TokenError> {
    let Some((scheme, rest)) = text.split_once("://") else {
        return Ok(None);
    };
    let (srv, port) = match scheme {
        "dns" => (false, Some(DEFAULT_PORT)),
        "dnssrv" => (true, None),
        _ => match scheme.strip_prefix("dns+") {
            Some(digits) => (false, Some(parse_port(digits)?)),
            None => return Err(TokenError::UnknownScheme(scheme.to_string())),
        },
    };
    let (name, query) = rest.split_once('?').unwrap_or((rest, ""));
    validate_name(name)?;
    let opts = parse_query(query)?;
    Ok(Some(Token {
        query: Query {
            name: name.to_string(),
            srv,
            family: opts.family,
        },
        port,
        suffix: opts.suffix,
    }))
}

fn parse_port(digits: &str) -> Result<u16, TokenError> {
    let bad = || TokenError::BadPort(digits.to_string());
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match digits.parse::<u16>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(port) => Ok(port),
    }
}

struct Options {
    family: Family,
    suffix: String,
}

fn parse_query(query: &str) -> Result<Options, TokenError> {
    let mut family = None;
    let mut protocol = None;
    let mut security = None;
    let mut compression = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (slot, name, allowed, expected): (&mut Option<String>, _, &[&str], _) = match key {
            "family" => (
                &mut family,
                "family",
                &["ipv4", "ipv6", "any"],
                "ipv4, ipv6, any",
            ),
            "protocol" => (&mut protocol, "protocol", PROTOCOLS, "ascii, caret, thrift"),
            "security" => (
                &mut security,
                "security",
                SECURITIES,
                "plain, ssl, tls_to_plain, fizz, ktls12",
            ),
            "compression" => (
                &mut compression,
                "compression",
                COMPRESSIONS,
                "compressed, notcompressed",
            ),
            other => return Err(TokenError::UnknownKey(other.to_string())),
        };
        if slot.is_some() {
            return Err(TokenError::RepeatedKey(name.to_string()));
        }
        if !allowed.contains(&value) {
            return Err(TokenError::BadValue {
                key: name,
                value: value.to_string(),
                expected,
            });
        }
        *slot = Some(value.to_string());
    }
    if security.is_some() && protocol.is_none() {
        return Err(TokenError::MissingPositional("security", "protocol"));
    }
    if compression.is_some() && security.is_none() {
        return Err(TokenError::MissingPositional("compression", "security"));
    }
    let family = match family.as_deref() {
        Some("ipv6") => Family::Ipv6,
        Some("any") => Family::Any,
        _ => Family::Ipv4,
    };
    let suffix = [protocol, security, compression]
        .into_iter()
        .flatten()
        .fold(String::new(), |acc, part| acc + ":" + &part);
    Ok(Options { family, suffix })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(name: &str, srv: bool, family: Family, port: Option<u16>, suffix: &str) -> Token {
        Token {
            query: Query {
                name: name.into(),
                srv,
                family,
            },
            port,
            suffix: suffix.into(),
        }
    }

    #[test]
    fn valid_tokens() {
        let cases = [
            (
                "dns://memcache.ns.svc",
                token("memcache.ns.svc", false, Family::Ipv4, Some(11211), ""),
            ),
            (
                "dns+11311://mc.example.",
                token("mc.example.", false, Family::Ipv4, Some(11311), ""),
            ),
            (
                "dnssrv://_memcache._tcp.mc",
                token("_memcache._tcp.mc", true, Family::Ipv4, None, ""),
            ),
            (
                "dns://mc?family=any",
                token("mc", false, Family::Any, Some(11211), ""),
            ),
            (
                "dnssrv://_m._tcp.mc?family=ipv6&protocol=caret",
                token("_m._tcp.mc", true, Family::Ipv6, None, ":caret"),
            ),
            (
                "dns://mc?compression=compressed&security=ssl&protocol=ascii",
                token(
                    "mc",
                    false,
                    Family::Ipv4,
                    Some(11211),
                    ":ascii:ssl:compressed",
                ),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), Ok(Some(want)), "{text}");
        }
    }

    #[test]
    fn static_entries_are_not_tokens() {
        for text in [
            "10.0.0.1:11211",
            "[::1]:5000:ascii",
            "memcache.host:11211",
            "",
        ] {
            assert_eq!(parse(text), Ok(None), "{text}");
        }
    }

    #[test]
    fn bad_tokens_say_what_is_wrong() {
        let cases = [
            ("dnsx://mc", "unknown token scheme \"dnsx\""),
            ("dns+0://mc", "bad port \"0\""),
            ("dns+65536://mc", "bad port \"65536\""),
            ("dns+://mc", "bad port \"\""),
            ("dns+12a://mc", "bad port \"12a\""),
            ("dns://", "it is empty"),
            ("dns://cluster%id%.pool", "macro parameter"),
            ("dns://mc.example:11211", "write dns+PORT://NAME"),
            ("dns://a..b", "empty label"),
            ("dns://a b", "only letters"),
            ("dns://mc?famly=ipv4", "unknown query key \"famly\""),
            ("dns://mc?family=ipv5", "bad family \"ipv5\""),
            ("dns://mc?family=any&family=ipv4", "given twice"),
            ("dns://mc?security=ssl", "security needs protocol"),
            (
                "dns://mc?protocol=ascii&compression=compressed",
                "compression needs security",
            ),
            ("dns://mc?protocol=http", "bad protocol \"http\""),
        ];
        for (text, want) in cases {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains(want), "{text}: {err:?} lacks {want:?}");
        }
    }

    #[test]
    fn long_labels_and_names_are_refused() {
        let label = "a".repeat(64);
        assert!(parse(&format!("dns://{label}.x")).is_err());
        let name = vec!["abcdefghi"; 26].join(".");
        assert!(name.len() > 253);
        assert!(parse(&format!("dns://{name}")).is_err());
    }
}
