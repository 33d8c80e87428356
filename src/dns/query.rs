//! What DNS is asked for a token, and what counts as a name to ask about.
//!
//! Owns the question ([`Query`]: a name, SRV or not, which address families) and the rule for
//! a valid DNS name, which template tokens and SRV targets from DNS answers must both follow.
//! Pure.

use std::fmt;

/// Which address families a token expands to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    Ipv4,
    Ipv6,
    Any,
}

impl Family {
    pub fn wants_v4(self) -> bool {
        matches!(self, Family::Ipv4 | Family::Any)
    }
    pub fn wants_v6(self) -> bool {
        matches!(self, Family::Ipv6 | Family::Any)
    }
}

/// What DNS is asked for a token; tokens that differ only in port or suffix share one lookup.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Query {
    /// The name as written in the template (a trailing dot makes it absolute).
    pub name: String,
    pub srv: bool,
    pub family: Family,
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.srv { "SRV" } else { "address" };
        let family = match self.family {
            Family::Ipv4 => "",
            Family::Ipv6 => " (IPv6)",
            Family::Any => " (IPv4+IPv6)",
        };
        write!(f, "{kind} lookup of {}{family}", self.name)
    }
}

/// A string that is not a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("\"{name}\" is not a valid DNS name: {why}")]
pub struct NameError {
    pub name: String,
    pub why: &'static str,
}

/// A DNS name as resolvers accept it: dot-separated labels of letters, digits, `-` and `_`
/// (SRV names start with `_service._proto`), at most 63 bytes each and 253 in all, optionally
/// ending with a dot.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    let bad = |why| {
        Err(NameError {
            name: name.to_string(),
            why,
        })
    };
    let body = name.strip_suffix('.').unwrap_or(name);
    if body.is_empty() {
        return bad("it is empty");
    }
    if body.len() > 253 {
        return bad("it is longer than 253 characters");
    }
    if name.contains('%') {
        return bad(
            "it holds '%', probably an mcrouter macro parameter; tokens are resolved before mcrouter expands macros, so write the name out in full",
        );
    }
    if name.contains(':') {
        return bad("it holds ':'; to choose a port write dns+PORT://NAME");
    }
    for label in body.split('.') {
        if label.is_empty() {
            return bad("it has an empty label (two dots in a row, or a leading dot)");
        }
        if label.len() > 63 {
            return bad("a label is longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return bad("labels may hold only letters, digits, '-' and '_'");
        }
    }
    Ok(())
}
