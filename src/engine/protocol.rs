//! What the engine and its caller say to each other: the events fed in, the actions given
//! out, and the reports among them, with the domain types they carry.
//!
//! Owns the vocabulary only; what each event does is the engine's, performing an action is
//! the event loop's, and turning a report into a log line or a metric is theirs too.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use md5::{Digest, Md5};

use super::WarmedPool;
use crate::dns::{Answer, Failure, Query};
use crate::placement::Change;
use crate::prefix::PrefixError;
use crate::template::TemplateError;

/// Results of one batch of lookups.
pub type Lookups = HashMap<Query, Result<Answer, Failure>>;

/// What happened, fed in by the caller.
#[derive(Debug)]
pub enum Event {
    /// Time passed (also the first event: it starts the first lookups).
    Tick,
    /// Lookups finished.
    Looked(Lookups),
    /// The template file was read (after a change, or the periodic re-read).
    Template(Result<String, TemplateError>),
    /// SIGHUP: re-read the template, re-resolve every token now, write the output again if
    /// the file on disk differs from the render, and lift every "not again" block.
    Refresh,
    /// The write of `generation` finished (or failed, and the file is as it was).
    Wrote {
        generation: u64,
        result: Result<Wrote, String>,
    },
    /// The validator's verdict on the candidate of `generation`.
    Validated {
        generation: u64,
        result: Result<(), String>,
    },
    /// mcrouter was started, on the bytes [`Action::StartChild`] carried.
    ChildStarted,
    /// mcrouter was not started: the bytes it was to start on could not be written.
    StartFailed(String),
    /// mcrouter exited (and the caller may start it again later).
    ChildExited,
    /// Start mcrouter again, on the config in force, once it is on disk.
    Restart,
    /// mcrouter's answer to one round of questions: the md5 it runs (or why mcw cannot
    /// tell) and its failed-reload count.
    Running(Observed),
    /// mcrouter's log said a config failed to load, and why.
    LoadFailed(String),
    /// Which of the servers an [`Action::Probe`] named answered.
    Probed(HashSet<String>),
}

/// What to do, returned to the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Look these queries up and feed back [`Event::Looked`].
    Lookup(Vec<Query>),
    /// Read the template and feed back [`Event::Template`].
    ReadTemplate,
    /// Atomically replace the output with `bytes` unless it holds them already (or, with
    /// `force`, even then: a rename mcrouter notices); feed back [`Event::Wrote`].
    Write {
        generation: u64,
        bytes: Vec<u8>,
        force: bool,
    },
    /// Write `bytes` to a candidate beside the output and validate it; feed back
    /// [`Event::Validated`].
    Validate { generation: u64, bytes: Vec<u8> },
    /// The validation of `generation` is over: stop the validator if it still runs, then
    /// install the candidate (and feed back [`Event::Wrote`]) or discard it.
    EndValidation { generation: u64, install: bool },
    /// Ask mcrouter once which config it runs; feed back [`Event::Running`].
    AskMcrouter,
    /// Make the output hold `bytes` (write-if-changed), then start mcrouter on it; feed back
    /// [`Event::ChildStarted`], or [`Event::StartFailed`] when the write failed (mcrouter is
    /// then not started).
    StartChild { bytes: Vec<u8> },
    /// Give up: no config could be written before the startup timeout.
    GiveUp(StartupFailure),
    /// Ask these memcached servers (`host:port[:…]` as the config lists them) whether they
    /// answer, briefly; feed back [`Event::Probed`] with those that did.
    Probe { servers: Vec<String> },
    /// Tell the operator (and, later, the metrics).
    Report(Report),
}

/// Something worth telling, with its facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    TemplateChanged {
        tokens: usize,
    },
    /// A template edit that does not parse, holds a bad token, or lacks the routing prefix.
    TemplateRejected {
        reason: String,
    },
    TemplateUnreadable {
        reason: String,
    },
    /// No plain alias matched the routing prefix, and this many routes are macro calls that
    /// cannot be checked.
    PrefixUnchecked {
        routes: usize,
    },
    LookupFailed {
        token: String,
        failure: Failure,
        /// Whether a last good answer is kept.
        kept: bool,
    },
    /// `--hold-removed`: a server vanished from a token's answer and keeps its slot for `hold`.
    Holding {
        token: String,
        server: String,
        hold: Duration,
    },
    /// A held server is back in DNS (`back`: nothing changes), or its hold ran out (it is
    /// removed).
    HoldEnded {
        token: String,
        server: String,
        back: bool,
    },
    DnsRecovered {
        token: String,
    },
    /// A new config was rendered (its bytes differ from the output's).
    Rendered {
        generation: u64,
        md5: String,
    },
    PoolChanged {
        pool: String,
        added: Vec<String>,
        removed: Vec<String>,
        servers: usize,
        /// The pool before and after, to measure the share of keys the change sends elsewhere
        /// ([`Change::remapped`]; costly for a large Rendezvous pool, so the caller decides
        /// where).
        change: Change,
        /// The pool is no longer in the config.
        gone: bool,
    },
    Wrote {
        generation: u64,
        md5: String,
        pools: usize,
        servers: usize,
        /// How long since the DNS answer whose change this is the first write to carry.
        propagation: Option<Duration>,
    },
    /// Something in the written config is not as the template asked.
    RenderNote {
        note: String,
    },
    /// The output already held the rendered bytes (found on disk at start, say).
    AlreadyOnDisk {
        md5: String,
    },
    WriteFailed {
        reason: String,
    },
    /// The config was renamed into place but its directory could not be fsync'd: mcrouter
    /// sees it, but a power loss may take it back.
    Unsynced {
        md5: String,
        reason: String,
    },
    /// mcrouter was not (re)started: the config it is to start on could not be written;
    /// tried again at `--min-refresh`.
    StartDeferred {
        reason: String,
    },
    /// The render equals bytes mcrouter or the validator rejected; not written again.
    SkippedRejected {
        md5: String,
    },
    ValidatorRejected {
        generation: u64,
        reason: String,
    },
    Confirmed {
        md5: String,
        after: Duration,
        /// How long since the DNS answer whose change mcrouter now runs, the first time it
        /// runs a config that carries it.
        propagation: Option<Duration>,
    },
    /// mcrouter runs an earlier write of mcw's, not the latest (yet).
    RunsEarlier {
        md5: String,
    },
    /// mcrouter tried `md5` and failed (its `config_failures` grew to `failures`): it still
    /// runs `running`.
    Rejected {
        md5: String,
        running: String,
        failures: u64,
        /// The running config's bytes are being written back.
        restoring: bool,
        /// Why, as mcrouter's log said, when it said so before the verdict.
        reason: Option<String>,
    },
    /// mcrouter's reason for rejecting `md5`, when its log said it after the verdict.
    RejectedBecause {
        md5: String,
        reason: String,
    },
    /// The running config's bytes are back in the output.
    Restored {
        md5: String,
    },
    /// The deadline passed while mcrouter still ran `running`, with no sign that it tried
    /// `md5` and failed: it has not reloaded yet. No verdict, no rollback; asked again.
    NotReloadedYet {
        md5: String,
        running: String,
    },
    /// At the deadline mcw could not tell what mcrouter runs; no verdict, no rollback; asked
    /// again.
    CannotTell {
        md5: String,
        reason: String,
    },
    /// mcrouter could not load the config file at startup (`md5`, or an earlier write) and
    /// serves a config it dumped in an earlier run (`running`): mcw's file is not what runs.
    RunsDump {
        md5: String,
        running: String,
    },
    /// The file on disk was not the config mcw last wrote (deleted, emptied, replaced): it
    /// was written again.
    Repaired {
        md5: String,
    },
    /// A failed load (or no word by the deadline) may have been of an earlier write: `md5`
    /// is renamed over itself so that mcrouter surely tries it.
    Reoffering {
        md5: String,
        why: &'static str,
    },
    /// `md5` was renamed over itself.
    Reoffered {
        md5: String,
    },
    /// A change of these pools' servers is warmed up, its slots through mcrouter's warm-up
    /// routes, in three phases; the other changed pools change plainly (why: `skipped`).
    WarmUpStarted {
        pools: Vec<WarmedPool>,
        skipped: Vec<(String, String)>,
        bracket: Duration,
        duration: Duration,
    },
    /// A phase's config was written.
    WarmUpPhase {
        phase: &'static str,
        generation: u64,
        md5: String,
        /// As for [`Report::Wrote`]: the first bracket carries the change first.
        propagation: Option<Duration>,
    },
    /// mcrouter runs a phase's config (or could not tell by the deadline): it lasts `lasts`.
    WarmUpTimer {
        phase: &'static str,
        lasts: Duration,
    },
    /// A change of pools' servers is written plainly: none of them could be warmed.
    WarmUpSkipped {
        skipped: Vec<(String, String)>,
    },
    /// The warm-up is over: the plain config follows.
    WarmUpFinished {
        pools: Vec<String>,
    },
    /// The warm-up ended early (a phase's config was rejected): the plain config follows.
    WarmUpAbandoned {
        reason: String,
    },
    /// A change came during a warm-up: it waits for the end.
    WarmUpDeferring {
        phase: &'static str,
    },
}

/// A write that worked: the file already held the bytes, or it holds them now (with its
/// directory fsync'd, or not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wrote {
    Unchanged,
    Replaced,
    /// Renamed into place; the directory's fsync failed, for this reason.
    Unsynced(String),
}

/// mcrouter's answer to one round of questions on its admin port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The md5 of the config it runs (32 lowercase hex digits), or why mcw cannot tell.
    pub running: Result<String, String>,
    /// Its `config_failures` counter (`stats detailed`), when it gave one.
    pub failures: Option<u64>,
    /// Its `configs_from_disk` is not 0: it could not load the config file at startup and runs
    /// a copy it dumped earlier, which is never mcw's config, whatever its md5.
    pub from_disk: bool,
}

impl Observed {
    /// The digest, when mcrouter gave one.
    pub fn md5(&self) -> Option<&str> {
        self.running.as_deref().ok()
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

/// A list of tokens that could not be resolved, as an error message shows it.
pub struct FailedTokens<'a>(pub &'a [FailedToken]);

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

/// Lowercase hex md5, as mcrouter reports it.
pub fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A template the engine will not take: it does not parse, or (in `run` mode) its routes lack
/// the routing prefix mcrouter runs with.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("template {}: {source}", .path.display())]
    Prefix { path: PathBuf, source: PrefixError },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_startup_failure_names_the_cause_whether_tokens_or_writes() {
        let token = FailedToken {
            pointer: "/pools/a/servers/0".into(),
            text: "dns://a.test".into(),
            failure: Failure::Transient(crate::dns::Trouble::Timeout, "timed out".into()),
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
    fn md5_is_lowercase_hex() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
    }
}
