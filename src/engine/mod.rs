//! The long-running core of `watch` and `run`, as a state machine without I/O.
//!
//! Owns every decision between renders. It performs nothing: the caller feeds it [`Event`]s
//! with the current time and performs the [`Action`]s it returns (look up, read the template,
//! write these bytes, validate this candidate, ask mcrouter, start the child, report this),
//! feeding back what happened. No I/O, no clock, no spawning, no logging, nothing of the
//! command line here — which is why its whole behaviour is a table of unit tests
//! (`tests.rs`). The event loop (`service`) is the caller. This file holds the engine, the
//! template in force and the dispatch of events; the rest is one concept per file:
//! - [`protocol`]: the events, actions and reports, and the domain types they carry;
//! - `queries`: each DNS question's last good answer, refresh timing, holds;
//! - `publish`: render, write, restore, repair, retry; the work in progress as an enum;
//! - `validation`: `--validate`'s verdicts on the work;
//! - `child`: when mcrouter may start (only on a config that is on disk), again after it
//!   exited;
//! - `confirm`: confirmation of writes with mcrouter, as a state enum;
//! - `reload`: each change's way to mcrouter, for the fleet's metrics (propagation time, the
//!   last reload's outcome);
//! - `verdict`: what mcrouter's answers and verdicts do to the engine;
//! - `status`: the snapshot for `/status`, `/readyz` and the metrics.
//!
//! Invariants: nothing is written while any token lacks an answer (a failing token keeps its
//! last good one); at most one write or validation is in progress; bytes that mcrouter or the
//! validator rejected are not written again until the render changes or SIGHUP; mcrouter is
//! only ever started by an action that carries the bytes to put on disk first.

mod child;
mod confirm;
mod protocol;
mod publish;
mod queries;
mod reload;
mod status;
mod validation;
mod verdict;
mod warm;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::dns::Query;
use crate::prefix;
use crate::template::{Rendered, Template, TemplateError};

use child::ChildPhase;
use confirm::Confirmer;
pub use protocol::{
    Action, Event, FailedToken, FailedTokens, Lookups, Observed, Refused, Report, StartupFailure,
    Wrote, md5_hex,
};
use publish::{Due, Work};
use queries::QueryState;
pub use queries::refresh_after;
pub use status::{PairStatus, Status, TokenStatus};
use warm::Warming;
pub use warm::{WarmStatus, WarmUpSettings, WarmedPool};

/// How a write's confirmation is paced.
#[derive(Clone, Copy, Debug)]
pub struct ConfirmSettings {
    /// How long mcrouter may take to report a write's md5 before mcw says so.
    pub timeout: Duration,
    /// How often it is asked until then.
    pub poll: Duration,
    /// How often it is asked after that, until mcw can tell.
    pub slow_poll: Duration,
}

/// Refresh and startup settings, as `watch` and `run` share them (checked by `settings`).
#[derive(Clone, Debug)]
pub struct Refresh {
    pub min_refresh: Duration,
    pub max_refresh: Duration,
    pub startup_timeout: Duration,
    pub allow_empty: bool,
    /// `--hold-removed`: how long a server that vanished from an answer keeps its slot
    /// (zero: not at all).
    pub hold_removed: Duration,
}

/// What `run` adds: mcrouter is started once a config is on disk, and what it takes.
#[derive(Clone, Debug)]
pub struct Supervision {
    /// The normalised routing prefix every template must have an alias for.
    pub route_prefix: String,
    /// `--validate`: each new config is validated (within this time) before it is written.
    pub validate_timeout: Option<Duration>,
    /// With a known admin port: confirm each write.
    pub confirm: Option<ConfirmSettings>,
}

/// Settings of the engine (already checked by `settings`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// The template's path, for messages only.
    pub template: PathBuf,
    pub refresh: Refresh,
    /// `run` mode; `None` in `watch`.
    pub supervision: Option<Supervision>,
    /// `--warm-up`; `None`: off.
    pub warm_up: Option<WarmUpSettings>,
}

/// A config mcw wrote, or is about to.
#[derive(Clone, Debug)]
struct Config {
    generation: u64,
    md5: String,
    rendered: Arc<Rendered>,
}

/// Before the first config is written: when to give up, and the last thing that kept a
/// render from the output (for the message).
#[derive(Debug)]
enum Startup {
    Waiting {
        deadline: Instant,
        problem: Option<String>,
    },
    Done,
}

pub struct Engine {
    s: Settings,
    template: Template,
    /// The template text last read, good or not, so an unchanged file costs no parse.
    seen_text: String,
    /// Why the template could not be read, while it cannot.
    unreadable: Option<String>,
    states: BTreeMap<Query, QueryState>,
    due: Due,
    work: Work,
    generation: u64,
    /// What the output holds, as this process last wrote (or found) it.
    current: Option<Config>,
    /// md5 of bytes mcrouter or the validator rejected: not written again until the render
    /// changes or SIGHUP.
    rejected: Option<String>,
    template_due: Instant,
    startup: Startup,
    child: ChildPhase,
    /// When a config was last rendered, and last written (or restored).
    last_render: Option<Instant>,
    last_write: Option<Instant>,
    confirm: Option<Confirmer>,
    warm: Warming,
    /// md5 of a render whose warm-up was abandoned: written plainly, not warmed again (until
    /// SIGHUP).
    no_warm: Option<String>,
    /// The config the next render's pool changes are told from (a warm-up's start), when not
    /// the one in force.
    report_from: Option<Arc<Rendered>>,
    reloads: reload::Reloads,
    rng: u64,
    out: Vec<Action>,
}

impl Engine {
    /// An engine for the template `text`; every query is due at `now`. The first
    /// [`Event::Tick`] starts the lookups. `seed` varies the refresh jitter between processes.
    /// A template whose routes lack the `run` mode's routing prefix is refused: the fix is `-R`
    /// or the template, and mcrouter would fail on it.
    pub fn new(s: Settings, text: String, now: Instant, seed: u64) -> Result<Engine, Refused> {
        let (template, unchecked) = checked_template(&s, &text)?;
        let out = unchecked.into_iter().collect();
        let states = template
            .queries()
            .into_iter()
            .map(|q| (q, QueryState::due_at(now)))
            .collect();
        let supervision = s.supervision.as_ref();
        let confirm = supervision.and_then(|r| r.confirm).map(Confirmer::new);
        let child = match supervision {
            Some(_) => ChildPhase::Waiting,
            None => ChildPhase::None,
        };
        Ok(Engine {
            template_due: now + s.refresh.max_refresh,
            startup: Startup::Waiting {
                deadline: now + s.refresh.startup_timeout,
                problem: None,
            },
            s,
            template,
            seen_text: text,
            unreadable: None,
            states,
            due: Due {
                render: true,
                disk_check: false,
            },
            work: Work::Idle,
            generation: 0,
            current: None,
            rejected: None,
            child,
            last_render: None,
            last_write: None,
            confirm,
            warm: Warming::Off,
            no_warm: None,
            report_from: None,
            reloads: reload::Reloads::default(),
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
            Event::StartFailed(reason) => self.start_failed(reason, now),
            Event::ChildExited => self.child_exited(),
            Event::Restart => self.restart(),
            Event::Running(answer) => self.running(answer, now),
            Event::LoadFailed(reason) => self.load_failed(reason, now),
            Event::Probed(alive) => self.probed(alive, now),
        }
        self.publish(now);
        self.start_if_waiting();
        std::mem::take(&mut self.out)
    }

    /// The token of the template in force that asks `query`, as written; `None` when the
    /// template asks no such question.
    pub fn token_of(&self, query: &Query) -> Option<&str> {
        self.template.token_of(query)
    }

    /// When the next [`Event::Tick`] is due: a lookup, a write retry, the periodic re-read of
    /// the template, the startup deadline, a validator's or a confirmation's deadline, the next
    /// question to mcrouter, or another try at starting it.
    pub fn next_wake(&self) -> Instant {
        let lookups = self.states.values().filter(|s| !s.in_flight).map(|s| s.due);
        let work = match &self.work {
            Work::Validating { deadline, .. } => Some(*deadline),
            Work::Waiting { at, .. } => Some(*at),
            Work::Idle | Work::Writing { .. } => None,
        };
        let startup = match &self.startup {
            Startup::Waiting { deadline, .. } => Some(*deadline),
            Startup::Done => None,
        };
        let confirm = self.confirm.as_ref().and_then(Confirmer::next_wake);
        let holds = self
            .states
            .values()
            .flat_map(|s| s.held.iter().map(|(_, until)| *until));
        lookups
            .chain(holds)
            .chain(work)
            .chain(startup)
            .chain(confirm)
            .chain(self.child.next_wake())
            .chain(self.warm_wake())
            .fold(self.template_due, Instant::min)
    }

    fn tick(&mut self, now: Instant) {
        if let Startup::Waiting { deadline, problem } = &self.startup
            && now >= *deadline
        {
            let failure = StartupFailure {
                timeout: self.s.refresh.startup_timeout,
                missing: self.missing(),
                problem: problem.clone(),
                output: None,
            };
            self.out.push(Action::GiveUp(failure));
            return;
        }
        self.take_lookups(|s| s.due <= now);
        self.release_holds(now);
        if self.template_due <= now {
            self.template_due = now + self.s.refresh.max_refresh;
            self.out.push(Action::ReadTemplate);
        }
        self.retry_if_due(now);
        self.validation_timed_out(now);
        self.child_tick(now);
        self.confirm_tick(now);
        self.warm_tick(now);
    }

    /// SIGHUP: re-read the template, re-resolve every token, compare the output on disk, and
    /// lift the block on rejected bytes (a validator that was merely slow, a config fixed by
    /// hand on mcrouter's side: the operator asks to try again).
    fn refresh(&mut self) {
        self.rejected = None;
        self.no_warm = None;
        self.due.disk_check = true;
        // Bytes blocked until now may be what the last good answers render.
        self.due.render = true;
        self.out.push(Action::ReadTemplate);
        self.lookup_all();
    }

    /// A new template text: parse it and, when it is good, re-resolve every token. A broken
    /// edit is reported and the last good template stays in force.
    fn template_read(&mut self, read: Result<String, TemplateError>, now: Instant) {
        let text = match read {
            // Whether or not the template changed, the output on disk is checked against the
            // config in force (a deleted file or directory comes back).
            Ok(text) => {
                self.due.disk_check = true;
                text
            }
            Err(e) => {
                // Said once, not at every read while it lasts.
                let reason = e.to_string();
                if self.unreadable.as_ref() != Some(&reason) {
                    self.reloads.failed();
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
                self.reloads.failed();
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
        self.reloads.edited();
        self.due.render = true;
        self.lookup_all();
    }
}

/// Parse template `text` and, in `run` mode, check it has the routing prefix's alias.
fn checked_template(s: &Settings, text: &str) -> Result<(Template, Option<Action>), Refused> {
    let template = Template::parse(&s.template, text)?;
    let Some(p) = s.supervision.as_ref().map(|r| &r.route_prefix) else {
        return Ok((template, None));
    };
    match prefix::check_aliases(template.value(), p) {
        Ok(aliases) => Ok((template, unchecked(aliases))),
        Err(source) => Err(Refused::Prefix {
            path: s.template.clone(),
            source,
        }),
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

#[cfg(test)]
mod tests;
