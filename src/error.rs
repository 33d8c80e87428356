//! The crate's error type, and the one place exit codes are decided.
//!
//! Owns [`Error`] (why a command failed), [`UsageError`] (what the user typed that cannot work,
//! exit 2) and [`Error::exit_code`]. Each module keeps its own error enum for its own failures;
//! they meet here. Messages are lowercase, context first, and say what to do when they can.

use std::path::PathBuf;
use std::time::Duration;

use crate::engine::{FailedToken, FailedTokens, Refused, StartupFailure};
use crate::output::WriteError;
use crate::prefix::PrefixError;
use crate::resolve::SetupError;
use crate::supervise::SpawnError;
use crate::supervise::args::ArgError;
use crate::template::TemplateError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Dns(#[from] SetupError),
    #[error("template {path}: {}", FailedTokens(.failed), path = .path.display())]
    Resolve {
        path: PathBuf,
        failed: Vec<FailedToken>,
    },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("cannot write to stdout: {0}")]
    Stdout(std::io::Error),
    #[error("template {}: check found {count} problem(s), listed above", .path.display())]
    Check { count: usize, path: PathBuf },
    #[error(transparent)]
    StartupTimeout(#[from] StartupFailure),
    #[error("cannot create the output directory {}: {source}; pass --output with a writable path", .dir.display())]
    OutputDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set up {what}: {source}")]
    Setup {
        what: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error("cannot read {} to compare with: {source}; {hint}", .path.display())]
    DiffInput {
        path: PathBuf,
        source: std::io::Error,
        hint: &'static str,
    },
    /// `mcw diff` failed: whatever the cause, its exit status is 2, as `diff`'s.
    #[error(transparent)]
    Trouble(Box<Error>),
    #[error(
        "cannot listen on {addr} (--metrics-listen): {source}; pick a free address or stop what holds it"
    )]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "cannot listen on {addr} for mcrouter: {source}; stop what holds the port, or pass --hold-port false to leave it to mcrouter"
    )]
    HoldPort {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// A command line that cannot work: nothing was started.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("{flag} {value:?} is too long: at most {max:?}")]
    TooLong {
        flag: &'static str,
        value: Duration,
        max: Duration,
    },
    #[error("{flag} {value:?} is too short: at least {min:?}")]
    TooShort {
        flag: &'static str,
        value: Duration,
        min: Duration,
    },
    #[error("--min-refresh ({min:?}) is longer than --max-refresh ({max:?})")]
    RefreshOrder { min: Duration, max: Duration },
    #[error(transparent)]
    Args(#[from] ArgError),
    #[error(transparent)]
    Prefix(#[from] PrefixError),
    #[error("template {}: {source}", .path.display())]
    TemplatePrefix { path: PathBuf, source: PrefixError },
    #[error(
        "--validate runs mcrouter --validate-config, but no word of the command is named mcrouter (see --mcrouter-name)"
    )]
    ValidateWithoutMcrouter,
    #[error(
        "{} (--template/--source) but {} (--output): give one --output per template, in the same order",
        counted(*.templates, "template"), counted(*.outputs, "output")
    )]
    PairCount { templates: usize, outputs: usize },
    #[error(
        "output {} is given twice: each template needs its own output file", .0.display()
    )]
    SharedOutput(PathBuf),
    #[error(
        "--confirm-timeout {timeout:?} is too short for mcrouter's --reconfiguration-delay-ms={delay} and --reconfiguration-jitter-ms={jitter}: mcrouter may take up to 3 x delay + jitter = {needed:?} to reload a file; pass --confirm-timeout {needed:?} or more, or a shorter delay"
    )]
    ConfirmTooShort {
        timeout: Duration,
        delay: u64,
        jitter: u64,
        needed: Duration,
    },
    #[error(
        "mcw run takes one --template and one --output, not {0}: mcrouter reads a single config file (-f); use mcw watch for several configs, or one mcw run per mcrouter"
    )]
    RunOnePair(usize),
    #[error(
        "--warm-up-ttl {ttl:?} must be longer than --warm-up {duration:?}: a copy that expires with the warm-up only puts the misses off"
    )]
    WarmUpTtl { duration: Duration, ttl: Duration },
}

/// A template the engine refused at start: one that does not parse is a failure (exit 1), one
/// whose routes lack mcrouter's routing prefix a usage error (exit 2: the fix is `-R` or the
/// template, before anything starts).
impl From<Refused> for Error {
    fn from(refused: Refused) -> Error {
        match refused {
            Refused::Template(e) => Error::Template(e),
            Refused::Prefix { path, source } => {
                Error::Usage(UsageError::TemplatePrefix { path, source })
            }
        }
    }
}

impl Error {
    /// 2 for usage errors, 126/127 when mcrouter cannot be started, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Trouble(_) => 2,
            Error::Spawn(e) => e.code,
            _ => 1,
        }
    }
}

/// `1 template`, `2 templates`.
fn counted(n: usize, word: &str) -> String {
    match n {
        1 => format!("1 {word}"),
        n => format!("{n} {word}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_exit_2_spawn_errors_carry_their_code_the_rest_1() {
        assert_eq!(
            Error::from(UsageError::ValidateWithoutMcrouter).exit_code(),
            2
        );
        let spawn = SpawnError {
            program: "x".into(),
            reason: "not found".into(),
            code: 127,
        };
        assert_eq!(Error::from(spawn).exit_code(), 127);
        let check = Error::Check {
            count: 1,
            path: "t".into(),
        };
        assert_eq!(check.exit_code(), 1);
    }
}
