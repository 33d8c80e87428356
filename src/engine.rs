//! The long-running core of `watch` and `run`, as a state machine without I/O.
//!
//! Owns every decision between renders: each query's last good answer and when it is next
//! due, which template is in force, when to render and write, the one write or validation in
//! progress, whether mcrouter confirmed, rejected or cannot tell about a write, what to restore
//! after a rejection, and when to give up at startup. It performs nothing: the caller feeds it
//! [`Event`]s with the current time and performs the [`Action`]s it returns (look up, read the
//! template, write these bytes, validate this candidate, ask mcrouter, start the child, report
//! this), feeding back what happened. No I/O, no clock, no spawning, no logging here — which is
//! why its whole behaviour is a table of unit tests below. `run.rs` is the caller.
//!
//! Invariants: nothing is written while any token lacks an answer (a failing token keeps its
//! last good one); at most one write or validation is in progress; bytes that mcrouter or the
//! validator rejected are not written again until the render changes.

mod confirm;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::confirm::md5_hex;
use crate::error::{Error, FailedToken, StartupFailure, UsageError};
use crate::placement::{self, Share};
use crate::prefix;
use crate::resolve::Query;
use crate::resolve::{self, Answer, Failure, Member};
use crate::template::{self, Rendered, Template, TemplateError};

pub use confirm::{ConfirmSettings, Observed};
use confirm::{Confirmer, Verdict};

/// Settings of the engine (already checked by `settings`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// The template's path, for messages only.
    pub template: PathBuf,
    pub min_refresh: Duration,
    pub max_refresh: Duration,
    pub startup_timeout: Duration,
    pub allow_empty: bool,
    /// In `run` mode, the normalised routing prefix every template must have an alias for.
    pub route_prefix: Option<String>,
    /// `--validate`: each new config is validated (within this time) before it is written.
    pub validate_timeout: Option<Duration>,
    /// `run` mode: start mcrouter once the first config is written.
    pub supervise: bool,
    /// `run` mode with a known admin port: confirm each write.
    pub confirm: Option<ConfirmSettings>,
    /// `--hold-removed`: how long a server that vanished from an answer keeps its slot
    /// (zero: not at all).
    pub hold_removed: Duration,
}

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
    /// The write of `generation` finished: `Ok(true)` written, `Ok(false)` the file already
    /// held those bytes.
    Wrote {
        generation: u64,
        result: Result<bool, String>,
    },
    /// The validator's verdict on the candidate of `generation`.
    Validated {
        generation: u64,
        result: Result<(), String>,
    },
    /// mcrouter was started.
    ChildStarted,
    /// mcrouter's answer to one round of questions: the md5 it runs (or why mcw cannot
    /// tell) and its failed-reload count.
    Running(Observed),
}

/// What to do, returned to the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Look these queries up and feed back [`Event::Looked`].
    Lookup(Vec<Query>),
    /// Read the template and feed back [`Event::Template`].
    ReadTemplate,
    /// Atomically replace the output with `bytes` unless it holds them already; feed back
    /// [`Event::Wrote`].
    Write { generation: u64, bytes: Vec<u8> },
    /// Write `bytes` to a candidate beside the output and validate it; feed back
    /// [`Event::Validated`].
    Validate { generation: u64, bytes: Vec<u8> },
    /// The validation of `generation` is over: stop the validator if it still runs, then
    /// install the candidate (and feed back [`Event::Wrote`]) or discard it.
    EndValidation { generation: u64, install: bool },
    /// Ask mcrouter once which config it runs; feed back [`Event::Running`].
    AskMcrouter,
    /// Start mcrouter (the first config is on disk); feed back [`Event::ChildStarted`].
    StartChild,
    /// Give up: no config could be written before the startup timeout.
    GiveUp(StartupFailure),
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
        /// The share of keys the change sends elsewhere, or why mcw cannot tell.
        remapped: Result<Share, String>,
        /// The pool is no longer in the config.
        gone: bool,
    },
    Wrote {
        generation: u64,
        md5: String,
        pools: usize,
        servers: usize,
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
    /// The file on disk was not the config mcw last wrote (deleted, emptied, replaced): it
    /// was written again.
    Repaired {
        md5: String,
    },
}

/// What the engine knows, as of one moment: for `/status`, `/readyz` and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Each distinct token of the template in force, in template order.
    pub tokens: Vec<TokenStatus>,
    /// Each pool's servers in the config the output holds.
    pub pools: BTreeMap<String, Vec<String>>,
    /// md5 of the output, as this process last wrote (or found) it; `None` before the first.
    pub written_md5: Option<String>,
    /// mcrouter's last answer: the md5 it runs (or why mcw cannot tell), and its failures.
    pub running: Option<Observed>,
    /// mcrouter has reported running a config mcw wrote (`run` mode with an admin port).
    pub confirmed: bool,
    /// Where the latest write stands with mcrouter: `not started`, `awaiting`,
    /// `not reloaded yet`, `settled` (confirmed or rejected); `None` without confirmation.
    pub reload: Option<&'static str>,
    /// mcrouter was last seen running exactly what the output holds.
    pub in_sync: bool,
    /// Time since a config was last rendered, and since the output was last written.
    pub since_render: Option<Duration>,
    pub since_write: Option<Duration>,
}

/// One token's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenStatus {
    /// As written in the template.
    pub token: String,
    /// The DNS question it asks.
    pub query: String,
    /// The servers of its last good answer.
    pub servers: Vec<String>,
    pub ttl: Option<u32>,
    /// Age of the last good answer.
    pub age: Option<Duration>,
    /// Why the latest lookup failed, while it does.
    pub error: Option<String>,
    /// The latest lookup failed and the last good answer stands in.
    pub last_good_in_use: bool,
    /// Servers DNS no longer lists that keep their slot (`--hold-removed`).
    pub held: Vec<String>,
}

#[derive(Debug)]
struct QueryState {
    /// The last good answer, with any held servers in it.
    good: Option<Answer>,
    /// `--hold-removed`: servers of `good` that DNS stopped listing, and until when they stay.
    held: Vec<(Member, Instant)>,
    /// When `good` arrived.
    answered: Option<Instant>,
    failure: Option<Failure>,
    due: Instant,
    in_flight: bool,
}

impl QueryState {
    fn due_at(now: Instant) -> QueryState {
        QueryState {
            good: None,
            held: Vec::new(),
            answered: None,
            failure: None,
            due: now,
            in_flight: false,
        }
    }
}

/// A config mcw wrote, or is about to.
#[derive(Clone, Debug)]
struct Config {
    generation: u64,
    md5: String,
    rendered: Rendered,
}

/// Why a config is being written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A new render.
    Render,
    /// The config mcrouter runs, written back after it rejected a newer one.
    Restore,
    /// The config mcw last wrote, again, in case the file on disk no longer holds it.
    Repair,
}

/// The one write or validation in progress.
#[derive(Debug)]
enum Pending {
    Validating { config: Config, deadline: Instant },
    Writing { config: Config, kind: Kind },
}

pub struct Engine {
    s: Settings,
    template: Template,
    /// The template text last read, good or not, so an unchanged file costs no parse.
    seen_text: String,
    /// Why the template could not be read, while it cannot.
    unreadable: Option<String>,
    states: BTreeMap<Query, QueryState>,
    /// Something changed since the last render.
    dirty: bool,
    generation: u64,
    /// What the output holds, as this process last wrote (or found) it.
    current: Option<Config>,
    pending: Option<Pending>,
    /// md5 of bytes mcrouter or the validator rejected: not written again until the render
    /// changes or SIGHUP.
    rejected: Option<String>,
    /// Compare the output on disk with the config at the next chance (SIGHUP, the periodic
    /// template re-read, a refresh): a file deleted or replaced under mcw is written again.
    verify: bool,
    write_retry: Option<Instant>,
    /// A restore whose write failed, to be tried again at `write_retry`.
    failed_restore: Option<Config>,
    template_due: Instant,
    /// When to give up if no config has been written yet; `None` once one has.
    startup_deadline: Option<Instant>,
    /// The last thing that kept a render from the output (for the startup message).
    problem: Option<String>,
    child_started: bool,
    /// When a config was last rendered, and last written (or restored).
    last_render: Option<Instant>,
    last_write: Option<Instant>,
    confirm: Option<Confirmer>,
    rng: u64,
    out: Vec<Action>,
}

/// When to ask again after an answer with `ttl`: the TTL clamped to `[min, max]`, plus up to
/// 10 % so replicas and tokens do not ask in lock-step. `jitter` is in `[0, 1)`.
pub fn refresh_after(ttl: u32, min: Duration, max: Duration, jitter: f64) -> Duration {
    let base = Duration::from_secs(u64::from(ttl)).clamp(min, max.max(min));
    base + base.mul_f64(0.1 * jitter.clamp(0.0, 1.0))
}

impl Engine {
    /// An engine for the template `text`; every query is due at `now`. The first
    /// [`Event::Tick`] starts the lookups. `seed` varies the refresh jitter between processes.
    /// A template whose routes lack the `run` mode's routing prefix is refused: the fix is `-R`
    /// or the template, and mcrouter would fail on it.
    pub fn new(s: Settings, text: String, now: Instant, seed: u64) -> Result<Engine, Error> {
        let (template, unchecked) = checked_template(&s, &text)?;
        let out = unchecked.into_iter().collect();
        let states = template
            .queries()
            .into_iter()
            .map(|q| (q, QueryState::due_at(now)))
            .collect();
        let confirm = s.confirm.map(Confirmer::new);
        Ok(Engine {
            template_due: now + s.max_refresh,
            startup_deadline: Some(now + s.startup_timeout),
            s,
            template,
            seen_text: text,
            unreadable: None,
            states,
            dirty: true,
            generation: 0,
            current: None,
            pending: None,
            rejected: None,
            verify: false,
            write_retry: None,
            failed_restore: None,
            problem: None,
            child_started: false,
            last_render: None,
            last_write: None,
            confirm,
            rng: seed | 1,
            out,
        })
    }

    /// Take one event at `now`; return what to do, in order.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        match event {
            Event::Tick => self.tick(now),
            Event::Looked(results) => self.looked(results, now),
            Event::Template(read) => self.template_read(read, now),
            Event::Refresh => self.refresh(),
            Event::Wrote { generation, result } => self.wrote(generation, result, now),
            Event::Validated { generation, result } => self.validated(generation, result),
            Event::ChildStarted => self.child_started(now),
            Event::Running(answer) => self.running(answer, now),
        }
        self.publish(now);
        std::mem::take(&mut self.out)
    }

    /// When the next [`Event::Tick`] is due: a lookup, a write retry, the periodic re-read of
    /// the template, the startup deadline, a validator's or a confirmation's deadline, or the
    /// next question to mcrouter.
    pub fn next_wake(&self) -> Instant {
        let lookups = self.states.values().filter(|s| !s.in_flight).map(|s| s.due);
        let validation = match &self.pending {
            Some(Pending::Validating { deadline, .. }) => Some(*deadline),
            _ => None,
        };
        let confirm = self.confirm.as_ref().and_then(Confirmer::next_wake);
        let holds = self
            .states
            .values()
            .flat_map(|s| s.held.iter().map(|(_, until)| *until));
        lookups
            .chain(holds)
            .chain(self.write_retry)
            .chain(validation)
            .chain(self.startup_deadline)
            .chain(confirm)
            .fold(self.template_due, Instant::min)
    }

    /// Whether mcrouter was last seen running exactly what the output holds.
    pub fn in_sync(&self) -> bool {
        let running = self.confirm.as_ref().and_then(|c| c.last()?.md5());
        matches!((&self.current, running), (Some(c), Some(r)) if c.md5 == r)
    }

    /// A config has been written (or found on disk) since start.
    pub fn written(&self) -> bool {
        self.current.is_some()
    }

    /// mcrouter has reported running a config mcw wrote (`run` mode with an admin port).
    pub fn confirmed(&self) -> bool {
        self.confirm.as_ref().is_some_and(Confirmer::seen_ours)
    }

    /// The token of the template in force that asks `query`, as written; `None` when the
    /// template asks no such question.
    pub fn token_of(&self, query: &Query) -> Option<String> {
        site_text(&self.template, query)
    }

    /// The state as of `now`.
    pub fn status(&self, now: Instant) -> Status {
        let mut seen = BTreeSet::new();
        let tokens = self
            .template
            .sites()
            .filter(|site| seen.insert(site.text.as_str()))
            .filter_map(|site| {
                let state = self.states.get(&site.token.query)?;
                let servers = state.good.as_ref().map_or_else(Vec::new, |a| {
                    template::render::expand(&site.token, a)
                        .into_iter()
                        .map(|s| s.entry)
                        .collect()
                });
                Some(TokenStatus {
                    token: site.text.clone(),
                    query: site.token.query.to_string(),
                    servers,
                    ttl: state.good.as_ref().map(Answer::ttl),
                    age: state.answered.map(|t| now.saturating_duration_since(t)),
                    error: state.failure.as_ref().map(Failure::to_string),
                    last_good_in_use: state.failure.is_some() && state.good.is_some(),
                    held: state.held.iter().map(|(m, _)| m.to_string()).collect(),
                })
            })
            .collect();
        let since = |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t));
        Status {
            tokens,
            pools: self
                .current
                .as_ref()
                .map(|c| {
                    let pools = c.rendered.pools.iter();
                    pools.map(|(l, p)| (l.clone(), p.servers.clone())).collect()
                })
                .unwrap_or_default(),
            written_md5: self.current.as_ref().map(|c| c.md5.clone()),
            running: self.confirm.as_ref().and_then(|c| c.last().cloned()),
            confirmed: self.confirmed(),
            reload: self.confirm.as_ref().map(Confirmer::phase),
            in_sync: self.in_sync(),
            since_render: since(self.last_render),
            since_write: since(self.last_write),
        }
    }

    fn tick(&mut self, now: Instant) {
        if self.startup_deadline.is_some_and(|d| now >= d) {
            let failure = StartupFailure {
                timeout: self.s.startup_timeout,
                missing: self.missing(),
                problem: self.problem.clone(),
                output: None,
            };
            self.out.push(Action::GiveUp(failure));
            return;
        }
        self.take_lookups(|s| s.due <= now);
        self.release_holds(now);
        if self.template_due <= now {
            self.template_due = now + self.s.max_refresh;
            self.out.push(Action::ReadTemplate);
        }
        if self.write_retry.is_some_and(|t| t <= now) {
            self.write_retry = None;
            match self.failed_restore.take() {
                Some(config) if self.pending.is_none() => self.restore(config),
                _ => self.dirty = true,
            }
        }
        if let Some(Pending::Validating { deadline, .. }) = &self.pending
            && *deadline <= now
        {
            let timeout = self.s.validate_timeout.unwrap_or_default();
            self.validation_failed(format!("timed out after {timeout:?}; killed"));
        }
        self.confirm_tick(now);
    }

    /// Holds that ran out: their servers leave the answers, and the pools shrink.
    fn release_holds(&mut self, now: Instant) {
        for (query, state) in &mut self.states {
            let expired: Vec<Member> = state
                .held
                .iter()
                .filter(|(_, until)| *until <= now)
                .map(|(m, _)| m.clone())
                .collect();
            if expired.is_empty() {
                continue;
            }
            state.held.retain(|(_, until)| *until > now);
            state.good = state.good.as_ref().map(|g| g.without(&expired));
            self.dirty = true;
            let token = token_text(&self.template, query);
            for m in expired {
                self.out.push(Action::Report(Report::HoldEnded {
                    token: token.clone(),
                    server: m.to_string(),
                    back: false,
                }));
            }
        }
    }

    /// SIGHUP: re-read the template, re-resolve every token, compare the output on disk, and
    /// lift the block on rejected bytes (a validator that was merely slow, a config fixed by
    /// hand on mcrouter's side: the operator asks to try again).
    fn refresh(&mut self) {
        self.rejected = None;
        self.verify = true;
        // Bytes blocked until now may be what the last good answers render.
        self.dirty = true;
        self.out.push(Action::ReadTemplate);
        self.lookup_all();
    }

    /// Every query not already in flight, now (SIGHUP, template change).
    fn lookup_all(&mut self) {
        self.take_lookups(|_| true);
    }

    /// Look up the queries not in flight that `pick` wants, marking them in flight.
    fn take_lookups(&mut self, pick: impl Fn(&QueryState) -> bool) {
        let queries: Vec<Query> = self
            .states
            .iter_mut()
            .filter(|(_, s)| !s.in_flight && pick(s))
            .map(|(q, s)| {
                s.in_flight = true;
                q.clone()
            })
            .collect();
        if !queries.is_empty() {
            self.out.push(Action::Lookup(queries));
        }
    }

    /// Record lookup results; an answer with the same records as before (only its TTL
    /// differs) does not call for a render.
    fn looked(&mut self, results: Lookups, now: Instant) {
        for (query, result) in results {
            let result = resolve::with_allow_empty(&query, result, self.s.allow_empty);
            let jitter = self.jitter();
            let template = &self.template;
            // A query dropped from the template while its lookup ran: nothing to record.
            let Some(state) = self.states.get_mut(&query) else {
                continue;
            };
            state.in_flight = false;
            match result {
                Ok(answer) => {
                    let answer = if self.s.hold_removed.is_zero() {
                        answer
                    } else {
                        let token = || token_text(template, &query);
                        hold_vanished(
                            state,
                            answer,
                            now,
                            self.s.hold_removed,
                            token,
                            &mut self.out,
                        )
                    };
                    if state.failure.take().is_some() && state.good.is_some() {
                        let token = token_text(template, &query);
                        self.out
                            .push(Action::Report(Report::DnsRecovered { token }));
                    }
                    state.due = now
                        + refresh_after(
                            answer.ttl(),
                            self.s.min_refresh,
                            self.s.max_refresh,
                            jitter,
                        );
                    if state
                        .good
                        .as_ref()
                        .is_none_or(|g| g.records() != answer.records())
                    {
                        self.dirty = true;
                    }
                    state.good = Some(answer);
                    state.answered = Some(now);
                }
                Err(failure) => {
                    if state.failure.as_ref() != Some(&failure) {
                        self.out.push(Action::Report(Report::LookupFailed {
                            token: token_text(template, &query),
                            failure: failure.clone(),
                            kept: state.good.is_some(),
                        }));
                    }
                    state.failure = Some(failure);
                    state.due = now + self.s.min_refresh;
                }
            }
        }
    }

    /// A new template text: parse it and, when it is good, re-resolve every token. A broken
    /// edit is reported and the last good template stays in force.
    fn template_read(&mut self, read: Result<String, TemplateError>, now: Instant) {
        let text = match read {
            // Whether or not the template changed, the output on disk is checked against the
            // config in force (a deleted file or directory comes back).
            Ok(text) => {
                self.verify = true;
                text
            }
            Err(e) => {
                // Said once, not at every read while it lasts.
                let reason = e.to_string();
                if self.unreadable.as_ref() != Some(&reason) {
                    self.unreadable = Some(reason.clone());
                    self.out
                        .push(Action::Report(Report::TemplateUnreadable { reason }));
                }
                return;
            }
        };
        self.unreadable = None;
        if text == self.seen_text {
            return;
        }
        self.seen_text = text;
        let template = match checked_template(&self.s, &self.seen_text) {
            Ok((t, unchecked)) => {
                self.out.extend(unchecked);
                t
            }
            Err(e) => {
                let reason = e.to_string();
                self.out
                    .push(Action::Report(Report::TemplateRejected { reason }));
                return;
            }
        };
        let queries = template.queries();
        self.states.retain(|q, _| queries.contains(q));
        for q in queries {
            self.states
                .entry(q)
                .or_insert_with(|| QueryState::due_at(now));
        }
        let tokens = template.sites().count();
        self.out
            .push(Action::Report(Report::TemplateChanged { tokens }));
        self.template = template;
        self.dirty = true;
        self.lookup_all();
    }

    /// Render from the last good answers and start writing (or validating) when the bytes
    /// are new; when they are not and the disk is due a check, write the config in force
    /// again through the same write-if-changed (a no-op when the file holds it). Nothing
    /// happens while any token lacks an answer or a write is in progress.
    fn publish(&mut self, now: Instant) {
        if self.pending.is_some() {
            return;
        }
        if !self.dirty {
            return self.repair_if_due();
        }
        self.dirty = false;
        let mut answers = HashMap::with_capacity(self.states.len());
        for (q, s) in &self.states {
            match &s.good {
                Some(a) => answers.insert(q.clone(), a.clone()),
                None => return,
            };
        }
        let Ok(rendered) = template::render(&self.template, &answers) else {
            return; // unreachable: every query has an answer
        };
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.rendered.bytes == rendered.bytes)
        {
            return self.repair_if_due();
        }
        let md5 = md5_hex(&rendered.bytes);
        if self.rejected.as_ref() == Some(&md5) {
            self.out
                .push(Action::Report(Report::SkippedRejected { md5 }));
            return self.repair_if_due();
        }
        self.generation += 1;
        let generation = self.generation;
        self.last_render = Some(now);
        self.out.push(Action::Report(Report::Rendered {
            generation,
            md5: md5.clone(),
        }));
        let bytes = rendered.bytes.clone();
        let config = Config {
            generation,
            md5,
            rendered,
        };
        match self.s.validate_timeout {
            Some(limit) => {
                self.pending = Some(Pending::Validating {
                    config,
                    deadline: now + limit,
                });
                self.out.push(Action::Validate { generation, bytes });
            }
            None => self.write(config, Kind::Render),
        }
    }

    /// When the disk is due a check, write the config in force again (write-if-changed
    /// compares it with the file, so this costs a read when nothing is wrong).
    fn repair_if_due(&mut self) {
        // After SIGHUP, once its lookups are in: a changed answer is then written as a new
        // render, and the file is compared once, not twice.
        let asking = self.states.values().any(|s| s.in_flight);
        if !self.verify || self.pending.is_some() || asking {
            return;
        }
        self.verify = false;
        if let Some(config) = self.current.clone() {
            self.write(config, Kind::Repair);
        }
    }

    /// Start writing `config`.
    fn write(&mut self, config: Config, kind: Kind) {
        let generation = config.generation;
        let bytes = config.rendered.bytes.clone();
        self.pending = Some(Pending::Writing { config, kind });
        self.out.push(Action::Write { generation, bytes });
    }

    fn wrote(&mut self, generation: u64, result: Result<bool, String>, now: Instant) {
        let (config, kind) = match self.pending.take() {
            Some(Pending::Writing { config, kind }) if config.generation == generation => {
                (config, kind)
            }
            other => {
                self.pending = other; // not the write in progress: stale
                return;
            }
        };
        let written = match result {
            Ok(written) => written,
            Err(reason) => {
                self.out.push(Action::Report(Report::WriteFailed {
                    reason: reason.clone(),
                }));
                self.problem = Some(reason);
                self.write_retry = Some(now + self.s.min_refresh);
                // A failed restore is retried as a restore: a fresh render would be the
                // rejected bytes, which are not written again.
                self.failed_restore = (kind == Kind::Restore).then_some(config);
                return;
            }
        };
        // The file now holds the config in force, whatever happened to it before.
        self.verify = false;
        let md5 = config.md5.clone();
        let report = match (kind, written) {
            (Kind::Render, true) => {
                self.report_pool_changes(&config.rendered);
                for note in &config.rendered.notes {
                    let note = note.clone();
                    self.out.push(Action::Report(Report::RenderNote { note }));
                }
                let r = &config.rendered;
                Some(Report::Wrote {
                    generation,
                    md5,
                    pools: r.pools.len(),
                    servers: r.pools.values().map(|p| p.servers.len()).sum(),
                })
            }
            (Kind::Render, false) => Some(Report::AlreadyOnDisk { md5 }),
            (Kind::Restore, true) => {
                self.report_pool_changes(&config.rendered);
                Some(Report::Restored { md5 })
            }
            (Kind::Repair, true) => Some(Report::Repaired { md5 }),
            // The file already held these bytes: nothing happened worth telling.
            (Kind::Restore | Kind::Repair, false) => None,
        };
        self.out.extend(report.map(Action::Report));
        if written {
            self.last_write = Some(now);
        }
        self.problem = None;
        self.startup_deadline = None;
        self.current = Some(config.clone());
        if self.s.supervise && !self.child_started {
            self.child_started = true;
            self.out.push(Action::StartChild);
        }
        // The same config again is nothing new for mcrouter to confirm.
        if kind != Kind::Repair {
            self.remember(config, now);
        }
        // Lookups that finished meanwhile left `dirty` set: the next publish catches up.
    }

    fn validated(&mut self, generation: u64, result: Result<(), String>) {
        let is_current = matches!(&self.pending,
            Some(Pending::Validating { config, .. }) if config.generation == generation);
        if !is_current {
            return;
        }
        match result {
            Ok(()) => {
                if let Some(Pending::Validating { config, .. }) = self.pending.take() {
                    self.pending = Some(Pending::Writing {
                        config,
                        kind: Kind::Render,
                    });
                }
                self.out.push(Action::EndValidation {
                    generation,
                    install: true,
                });
            }
            Err(reason) => self.validation_failed(reason),
        }
    }

    /// The candidate in validation is rejected (by the validator, or by its timeout): discard
    /// it and do not write those bytes again until the render changes (or SIGHUP).
    fn validation_failed(&mut self, reason: String) {
        let Some(Pending::Validating { config, .. }) = self.pending.take() else {
            return;
        };
        let generation = config.generation;
        self.out.push(Action::EndValidation {
            generation,
            install: false,
        });
        self.problem = Some(format!("mcrouter --validate-config rejected it: {reason}"));
        self.out.push(Action::Report(Report::ValidatorRejected {
            generation,
            reason,
        }));
        self.rejected = Some(config.md5);
    }

    fn child_started(&mut self, now: Instant) {
        let current = self.current.as_ref().map(|c| c.md5.as_str());
        if let Some(c) = &mut self.confirm {
            c.started(current, now);
        }
    }

    /// Keep `config` among the recent writes and, once mcrouter runs, wait for its word.
    fn remember(&mut self, config: Config, now: Instant) {
        if let Some(c) = &mut self.confirm {
            c.wrote(config, now);
        }
    }

    fn running(&mut self, answer: Observed, now: Instant) {
        let Some(c) = &mut self.confirm else { return };
        if let Some(verdict) = c.observed(answer, now) {
            self.verdict(verdict);
        }
    }

    fn confirm_tick(&mut self, now: Instant) {
        let Some(c) = &mut self.confirm else { return };
        let (ask, verdict) = c.tick(now);
        if ask {
            self.out.push(Action::AskMcrouter);
        }
        if let Some(verdict) = verdict {
            self.verdict(verdict);
        }
    }

    /// Report a verdict on a write and act on a rejection: block those bytes and write back
    /// the bytes whose md5 mcrouter reports, so the file matches what runs (unless a newer
    /// write is already on its way; it gets its own verdict).
    fn verdict(&mut self, verdict: Verdict) {
        let report = match verdict {
            Verdict::Confirmed { md5, after } => Report::Confirmed { md5, after },
            Verdict::RunsEarlier { md5 } => Report::RunsEarlier { md5 },
            Verdict::NotReloadedYet { md5, running } => Report::NotReloadedYet { md5, running },
            Verdict::CannotTell { md5, reason } => Report::CannotTell { md5, reason },
            Verdict::Rejected {
                md5,
                running,
                failures,
                restore,
            } => {
                let restore = restore.filter(|_| self.pending.is_none());
                self.rejected = Some(md5.clone());
                self.out.push(Action::Report(Report::Rejected {
                    md5,
                    running,
                    failures,
                    restoring: restore.is_some(),
                }));
                if let Some(config) = restore {
                    self.restore(config);
                }
                return;
            }
        };
        self.out.push(Action::Report(report));
    }

    /// Write `config` back (it is what mcrouter runs).
    fn restore(&mut self, mut config: Config) {
        self.generation += 1;
        config.generation = self.generation;
        self.write(config, Kind::Restore);
    }

    /// Tokens that have never had an answer, with the latest reason.
    fn missing(&self) -> Vec<FailedToken> {
        self.template
            .sites()
            .filter_map(|site| {
                let state = self.states.get(&site.token.query)?;
                if state.good.is_some() {
                    return None;
                }
                Some(FailedToken {
                    pointer: site.pointer.clone(),
                    text: site.text.clone(),
                    failure: state
                        .failure
                        .clone()
                        .unwrap_or_else(|| Failure::other("no answer yet")),
                })
            })
            .collect()
    }

    /// One report per pool whose servers changed: `+added -removed`.
    fn report_pool_changes(&mut self, after: &Rendered) {
        let Some(before) = self.current.as_ref().map(|c| &c.rendered) else {
            return;
        };
        let labels: BTreeSet<&String> = before.pools.keys().chain(after.pools.keys()).collect();
        for label in labels {
            let (was, is) = (before.pools.get(label), after.pools.get(label));
            let (old, new) = (placement::servers_of(was), placement::servers_of(is));
            if old == new {
                continue;
            }
            let (added, removed) = placement::added_removed(old, new);
            let remapped = placement::remapped(was, is);
            self.out.push(Action::Report(Report::PoolChanged {
                pool: label.clone(),
                added: added.into_iter().cloned().collect(),
                removed: removed.into_iter().cloned().collect(),
                servers: new.len(),
                remapped,
                gone: is.is_none(),
            }));
        }
    }

    /// xorshift64: jitter only needs to differ between processes and calls.
    fn jitter(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Parse template `text` and, in `run` mode, check it has the routing prefix's alias.
fn checked_template(s: &Settings, text: &str) -> Result<(Template, Option<Action>), Error> {
    let template = Template::parse(&s.template, text)?;
    let Some(p) = &s.route_prefix else {
        return Ok((template, None));
    };
    match prefix::check_aliases(template.value(), p) {
        Ok(aliases) => Ok((template, unchecked(aliases))),
        Err(source) => {
            let path = s.template.clone();
            Err(UsageError::TemplatePrefix { path, source }.into())
        }
    }
}

/// The report that the routing prefix could not be checked against some routes, if so.
fn unchecked(aliases: prefix::Aliases) -> Option<Action> {
    match aliases {
        prefix::Aliases::Match => None,
        prefix::Aliases::Unverifiable(routes) => {
            Some(Action::Report(Report::PrefixUnchecked { routes }))
        }
    }
}

/// The first token of `template` that makes `query`, as written (for reports).
fn token_text(template: &Template, query: &Query) -> String {
    site_text(template, query).unwrap_or_else(|| query.to_string())
}

/// The first token of `template` that makes `query`, as written; `None` when none does.
fn site_text(template: &Template, query: &Query) -> Option<String> {
    let mut sites = template.sites();
    sites
        .find(|s| &s.token.query == query)
        .map(|s| s.text.clone())
}

/// `--hold-removed`: `fresh` with the servers it dropped (since `state.good`) kept for `hold`,
/// each in the slot canonical order gives it. A held server that is back is no longer held.
fn hold_vanished(
    state: &mut QueryState,
    fresh: Answer,
    now: Instant,
    hold: Duration,
    token: impl Fn() -> String,
    out: &mut Vec<Action>,
) -> Answer {
    state.held.retain(|(m, _)| {
        let back = fresh.has(m);
        if back {
            out.push(Action::Report(Report::HoldEnded {
                token: token(),
                server: m.to_string(),
                back: true,
            }));
        }
        !back
    });
    if let Some(previous) = &state.good {
        for m in previous.members() {
            if !fresh.has(&m) && !state.held.iter().any(|(h, _)| h.same(&m)) {
                out.push(Action::Report(Report::Holding {
                    token: token(),
                    server: m.to_string(),
                    hold,
                }));
                state.held.push((m, now + hold));
            }
        }
    }
    let held: Vec<Member> = state.held.iter().map(|(m, _)| m.clone()).collect();
    fresh.with(&held)
}

#[cfg(test)]
mod tests;
