//! The crate's error type, and the one place exit codes are decided.
//!
//! Owns [`Error`] (why a command failed), [`UsageError`] (what the user typed that cannot work,
//! exit 2) and [`Error::exit_code`]. Each module keeps its own error enum for its own failures;
//! they meet here. Messages are lowercase, context first, and say what to do when they can.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::output::WriteError;
use crate::prefix::PrefixError;
use crate::resolve::{Failure, SetupError};
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

/// A token that has no usable answer, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedToken {
    pub pointer: String,
    pub text: String,
    pub failure: Failure,
}

/// `watch`/`run` gave up before writing a first config: which tokens never answered, and what
/// went wrong otherwise (a write that failed, a config the validator rejected).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct StartupFailure {
    pub timeout: Duration,
    pub missing: Vec<FailedToken>,
    pub problem: Option<String>,
    /// The output that was never written, when mcw keeps several (`watch` with several pairs).
    pub output: Option<PathBuf>,
}

impl fmt::Display for StartupFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "startup timed out after {:?} without writing a config",
            self.timeout
        )?;
        if let Some(output) = &self.output {
            write!(f, " to {}", output.display())?;
        }
        if let Some(problem) = &self.problem {
            write!(f, "; the last attempt failed: {problem}")?;
        }
        if !self.missing.is_empty() {
            f.write_str("; ")?;
            list_tokens(f, &self.missing, "never resolved", "")?;
        }
        Ok(())
    }
}

struct FailedTokens<'a>(&'a [FailedToken]);

impl fmt::Display for FailedTokens<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        list_tokens(f, self.0, "could not be resolved", "; nothing was written")
    }
}

/// `N token(s) VERB SUFFIX` and one indented line per token.
fn list_tokens(
    f: &mut fmt::Formatter<'_>,
    tokens: &[FailedToken],
    verb: &str,
    suffix: &str,
) -> fmt::Result {
    let n = tokens.len();
    let s = if n == 1 { "" } else { "s" };
    write!(f, "{n} token{s} {verb}{suffix}")?;
    for t in tokens {
        write!(f, "\n  {} {}: {}", t.pointer, t.text, t.failure)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_startup_failure_names_the_cause_whether_tokens_or_writes() {
        let token = FailedToken {
            pointer: "/pools/a/servers/0".into(),
            text: "dns://a.test".into(),
            failure: Failure::Transient(crate::resolve::Trouble::Timeout, "timed out".into()),
        };
        let both = StartupFailure {
            timeout: Duration::from_secs(1),
            missing: vec![token],
            problem: None,
            output: Some("/run/mcw/b.json".into()),
        }
        .to_string();
        assert!(both.contains("1 token never resolved"), "{both}");
        assert!(both.contains("config to /run/mcw/b.json;"), "{both}");
        assert!(
            both.contains("/pools/a/servers/0 dns://a.test: timed out"),
            "{both}"
        );
        let write = StartupFailure {
            timeout: Duration::from_secs(1),
            missing: vec![],
            problem: Some("output /x: cannot write: disk full".into()),
            output: None,
        }
        .to_string();
        assert!(!write.contains("token"), "{write}");
        assert!(
            write.contains("the last attempt failed: output /x"),
            "{write}"
        );
    }

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
