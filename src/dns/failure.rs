//! Why a DNS question has no usable answer, and the `--allow-empty` policy.
//!
//! Owns the classes of failure the refresh policy tells apart (NXDOMAIN, no records of the
//! type, and the transient kinds the lookup metric counts), their messages, and the one place
//! `--allow-empty` turns an empty answer into an empty server list. Pure.

use std::fmt;

use super::{Answer, Query};

/// Why a query has no usable answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// Every candidate name answered NXDOMAIN.
    NxDomain { tried: Vec<String> },
    /// The name exists but holds no record of the type asked for.
    NoRecords { tried: Vec<String> },
    /// Timeout, SERVFAIL, REFUSED, a connection error, or an SRV target without addresses.
    Transient(Trouble, String),
}

/// The kind of a transient failure, for the lookup-outcome metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trouble {
    ServFail,
    Refused,
    Timeout,
    Other,
}

impl Failure {
    /// A transient failure of no particular kind.
    pub fn other(why: impl Into<String>) -> Failure {
        Failure::Transient(Trouble::Other, why.into())
    }

    /// The outcome label of the lookup metric: `nxdomain`, `nodata`, `servfail`, `refused`,
    /// `timeout` or `other`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Failure::NxDomain { .. } => "nxdomain",
            Failure::NoRecords { .. } => "nodata",
            Failure::Transient(Trouble::ServFail, _) => "servfail",
            Failure::Transient(Trouble::Refused, _) => "refused",
            Failure::Transient(Trouble::Timeout, _) => "timeout",
            Failure::Transient(Trouble::Other, _) => "other",
        }
    }

    /// NXDOMAIN and empty answers: `--allow-empty` turns these into "no servers".
    pub fn is_empty_answer(&self) -> bool {
        !matches!(self, Failure::Transient(..))
    }
}

/// The `--allow-empty` policy, in its one home: with it, NXDOMAIN and empty answers become an
/// answer with no servers; everything else, and everything without it, is unchanged.
pub fn with_allow_empty(
    query: &Query,
    result: Result<Answer, Failure>,
    allow_empty: bool,
) -> Result<Answer, Failure> {
    match result {
        Err(f) if allow_empty && f.is_empty_answer() => Ok(Answer::empty(query.srv)),
        other => other,
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::NxDomain { tried } => write!(f, "NXDOMAIN (tried {})", tried.join(", ")),
            Failure::NoRecords { tried } => {
                write!(f, "no records of that type (tried {})", tried.join(", "))
            }
            Failure::Transient(_, why) => f.write_str(why),
        }
    }
}
