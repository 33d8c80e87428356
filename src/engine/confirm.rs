//! Confirmation of writes with mcrouter (`run` mode with an admin port), as a state machine.
//!
//! Owns what mcw knows of mcrouter's config after each write: the recent writes by md5, the
//! write awaiting mcrouter's word, mcrouter's last answer, when to ask next, and the verdicts.
//! A write is *confirmed* when mcrouter reports its md5; it is *rejected* only on evidence
//! that mcrouter tried it and failed (its `config_failures` grew since the write while the md5
//! stayed another); without that evidence a write mcrouter has not picked up by the deadline
//! is *not reloaded yet* (or mcw *cannot tell*, when mcrouter gives no digest), which is
//! reported and asked about again at a slower pace, never rolled back.
//!
//! A failure is pinned on the awaited write only when no other write can have been the one
//! mcrouter tried: when the awaited write was made while an earlier one was still awaited
//! (written within one poll, say), a failure, or a deadline without a word, asks for the
//! awaited write to be renamed over itself ([`Verdict::Reoffer`]), once, so that mcrouter
//! surely reads it; its next failure is then its own. It decides nothing about writing: what
//! to restore or rename is the engine's to act on.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{Config, ConfirmSettings, Observed};

/// How many recent writes are remembered by md5, to restore what mcrouter reports running.
const RECENT_WRITES: usize = 8;

/// What one answer or deadline tells about the awaited write.
#[derive(Debug)]
pub(super) enum Verdict {
    /// mcrouter runs the awaited write, `after` it was written.
    Confirmed { md5: String, after: Duration },
    /// mcrouter runs an earlier write of mcw's (not the latest, yet).
    RunsEarlier { md5: String },
    /// mcrouter tried the awaited write and failed: it still runs `running`, which is
    /// `restore` when that is one of mcw's recent writes.
    Rejected {
        md5: String,
        running: String,
        failures: u64,
        restore: Option<Config>,
        reason: Option<String>,
    },
    /// mcrouter's log said why it rejected `md5` after the verdict was given.
    Because { md5: String, reason: String },
    /// The deadline passed while mcrouter reported another md5 and no failure: it has not
    /// reloaded yet. Asked about again, slowly.
    NotReloadedYet { md5: String, running: String },
    /// The deadline passed without a digest from mcrouter. Asked about again, slowly.
    CannotTell { md5: String, reason: String },
    /// mcrouter could not load the config file at startup and runs a config it dumped
    /// earlier (md5 `running`). Said once; nothing counts as confirmed until it loads a file.
    RunsDump { md5: String, running: String },
    /// mcrouter failed a load (or gave no word by the deadline) that may have been of an
    /// earlier write: rename the awaited write over itself so that it is tried for sure.
    Reoffer { md5: String, why: &'static str },
}

/// Where confirmation stands.
#[derive(Debug)]
enum State {
    /// mcrouter is not started: writes are only remembered.
    NotStarted,
    /// Nothing is awaited: mcrouter ran the latest write, or rejected it.
    Settled,
    /// The latest write awaits mcrouter's word.
    Awaiting(Awaited),
}

#[derive(Debug)]
struct Awaited {
    md5: String,
    since: Instant,
    deadline: Instant,
    /// mcrouter's `config_failures` when the write was made (the first one seen after it,
    /// when none was known): a count above it is evidence of a failed reload.
    failures_before: Option<u64>,
    /// The deadline passed without a verdict: asked about at the slow pace.
    overdue: bool,
    /// It was written while an earlier write was still awaited, so a failed load may have
    /// been that one's: a failure is not pinned on it until it is offered again.
    ambiguous: bool,
}

/// Confirmation of one output's writes.
#[derive(Debug)]
pub(super) struct Confirmer {
    settings: ConfirmSettings,
    state: State,
    /// Recent writes, newest last, by md5.
    recent: VecDeque<Config>,
    /// mcrouter's last answer.
    last: Option<Observed>,
    /// mcrouter has reported running one of mcw's writes.
    seen_ours: bool,
    /// A question is out.
    asking: bool,
    next_ask: Option<Instant>,
    /// Why mcrouter's latest load failed, as its log said (since the latest write).
    reason: Option<String>,
    /// A rejection reported before its reason arrived.
    unexplained: Option<String>,
    /// mcrouter's most recent reason, whatever write it was about (for `/status`).
    last_reason: Option<String>,
}

impl Confirmer {
    pub(super) fn new(settings: ConfirmSettings) -> Confirmer {
        Confirmer {
            settings,
            state: State::NotStarted,
            recent: VecDeque::new(),
            last: None,
            seen_ours: false,
            asking: false,
            next_ask: None,
            reason: None,
            unexplained: None,
            last_reason: None,
        }
    }

    /// mcrouter was started on the output, which holds `md5`.
    pub(super) fn started(&mut self, md5: &str, now: Instant) {
        self.state = State::Settled;
        self.await_write(md5.to_string(), now);
    }

    /// mcrouter exited: what it said is no longer true of anything running, and nothing is
    /// awaited until the next one starts. (The caller drops the questions still out.)
    pub(super) fn stopped(&mut self) {
        self.state = State::NotStarted;
        self.last = None;
        self.seen_ours = false;
        self.asking = false;
        self.next_ask = None;
        self.reason = None;
        self.unexplained = None;
    }

    /// The awaited write was renamed over itself: its deadline starts again, and a failure
    /// from now on is its own.
    pub(super) fn reoffered(&mut self, now: Instant) {
        if let State::Awaiting(a) = &mut self.state {
            a.since = now;
            a.deadline = now + self.settings.timeout;
            a.overdue = false;
            a.ambiguous = false;
            if let Some(failures) = self.last.as_ref().and_then(|o| o.failures) {
                a.failures_before = Some(failures);
            }
            if !self.asking {
                self.next_ask = Some(now);
            }
        }
    }

    /// `config` was written: remember it and, once mcrouter runs, wait for its word.
    pub(super) fn wrote(&mut self, config: Config, now: Instant) {
        let md5 = config.md5.clone();
        self.recent.retain(|r| r.md5 != md5);
        self.recent.push_back(config);
        if self.recent.len() > RECENT_WRITES {
            self.recent.pop_front();
        }
        if !matches!(self.state, State::NotStarted) {
            self.await_write(md5, now);
        }
    }

    fn await_write(&mut self, md5: String, now: Instant) {
        self.reason = None;
        let (inherited, ambiguous) = match &self.state {
            State::Awaiting(a) => (a.failures_before, true),
            _ => (None, false),
        };
        let failures_before = self.last.as_ref().and_then(|o| o.failures).or(inherited);
        self.state = State::Awaiting(Awaited {
            md5,
            since: now,
            deadline: now + self.settings.timeout,
            failures_before,
            overdue: false,
            ambiguous,
        });
        if !self.asking {
            self.next_ask = Some(now);
        }
    }

    /// mcrouter answered.
    pub(super) fn observed(&mut self, answer: Observed, now: Instant) -> Option<Verdict> {
        self.asking = false;
        if answer.from_disk {
            return self.runs_dump(answer, now);
        }
        let ours = |md5: &str| self.recent.iter().any(|r| r.md5 == md5);
        if answer.md5().is_some_and(ours) {
            self.seen_ours = true;
        }
        let changed = self.last.as_ref() != Some(&answer);
        let verdict = match &mut self.state {
            State::Awaiting(a) => {
                if a.failures_before.is_none() {
                    a.failures_before = answer.failures;
                }
                let failed = match (answer.failures, a.failures_before) {
                    (Some(now), Some(before)) => now > before,
                    _ => false,
                };
                match answer.md5() {
                    Some(md5) if md5 == a.md5 => Some(Verdict::Confirmed {
                        md5: a.md5.clone(),
                        after: now.saturating_duration_since(a.since),
                    }),
                    // The failure may have been an earlier write's: offer this one again.
                    Some(_) if failed && a.ambiguous => {
                        a.ambiguous = false;
                        a.failures_before = answer.failures;
                        a.deadline = now + self.settings.timeout;
                        Some(Verdict::Reoffer {
                            md5: a.md5.clone(),
                            why: "mcrouter failed a load that may have been of an earlier write",
                        })
                    }
                    Some(running) if failed => {
                        if self.reason.is_none() {
                            self.unexplained = Some(a.md5.clone());
                        }
                        Some(Verdict::Rejected {
                            md5: a.md5.clone(),
                            running: running.to_string(),
                            failures: answer.failures.unwrap_or_default(),
                            restore: self.recent.iter().find(|r| r.md5 == running).cloned(),
                            reason: self.reason.clone(),
                        })
                    }
                    // A newer write never takes the verdict from an older one: if mcrouter
                    // runs an earlier write, that write was accepted. It read the file before
                    // the awaited write, and failed nothing since: whatever it tries next is
                    // the awaited write.
                    Some(running) if changed && ours(running) => {
                        a.ambiguous = false;
                        Some(Verdict::RunsEarlier {
                            md5: running.to_string(),
                        })
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        if matches!(
            verdict,
            Some(Verdict::Confirmed { .. } | Verdict::Rejected { .. })
        ) {
            self.state = State::Settled;
        }
        self.last = Some(answer);
        if let State::Awaiting(a) = &self.state {
            let pace = match a.overdue {
                true => self.settings.slow_poll,
                false => self.settings.poll,
            };
            self.next_ask = Some(now + pace);
        }
        verdict
    }

    /// mcrouter runs a dumped config: no verdict on the awaited write counts, and mcw keeps
    /// asking until mcrouter loads a file (the next write, or SIGHUP, makes it try).
    fn runs_dump(&mut self, answer: Observed, now: Instant) -> Option<Verdict> {
        let first = !self.last.as_ref().is_some_and(|o| o.from_disk);
        let running = match &answer.running {
            Ok(md5) => md5.clone(),
            Err(why) => why.clone(),
        };
        self.last = Some(answer);
        let State::Awaiting(a) = &self.state else {
            return None;
        };
        let pace = match a.overdue {
            true => self.settings.slow_poll,
            false => self.settings.poll,
        };
        self.next_ask = Some(now + pace);
        let md5 = a.md5.clone();
        first.then_some(Verdict::RunsDump { md5, running })
    }

    /// mcrouter's log said a load failed, and why: kept for the next verdict, or given to the
    /// last one if it went without.
    pub(super) fn load_failed(&mut self, reason: String) -> Option<Verdict> {
        self.reason = Some(reason.clone());
        self.last_reason = Some(reason.clone());
        let md5 = self.unexplained.take()?;
        Some(Verdict::Because { md5, reason })
    }

    /// Why mcrouter's most recent load failed, as its log said.
    pub(super) fn last_reason(&self) -> Option<&str> {
        self.last_reason.as_deref()
    }

    /// mcrouter was last seen running a config it dumped, not one it loaded from the file.
    pub(super) fn runs_a_dump(&self) -> bool {
        self.last.as_ref().is_some_and(|o| o.from_disk)
    }

    /// Time passed: whether to ask mcrouter now, and what the deadline says.
    pub(super) fn tick(&mut self, now: Instant) -> (bool, Option<Verdict>) {
        let mut verdict = None;
        if let State::Awaiting(a) = &mut self.state
            && !a.overdue
            && a.deadline <= now
            && a.ambiguous
        {
            // No word by the deadline, and an earlier write's failure may have hidden this
            // one's: offer it again before calling it late.
            a.ambiguous = false;
            a.deadline = now + self.settings.timeout;
            let md5 = a.md5.clone();
            verdict = Some(Verdict::Reoffer {
                md5,
                why: "mcrouter has not loaded it, and an earlier write was still awaited when it was made",
            });
        } else if let State::Awaiting(a) = &mut self.state
            && !a.overdue
            && a.deadline <= now
        {
            a.overdue = true;
            let md5 = a.md5.clone();
            verdict = Some(match self.last.as_ref().map(|o| &o.running) {
                Some(Ok(running)) => Verdict::NotReloadedYet {
                    md5,
                    running: running.clone(),
                },
                Some(Err(reason)) => Verdict::CannotTell {
                    md5,
                    reason: reason.clone(),
                },
                None => Verdict::CannotTell {
                    md5,
                    reason: "mcrouter has not answered yet".into(),
                },
            });
            if !self.asking {
                self.next_ask = Some(now + self.settings.slow_poll);
            }
        }
        let ask = !self.asking && self.next_ask.is_some_and(|t| t <= now);
        if ask {
            self.next_ask = None;
            self.asking = true;
        }
        (ask, verdict)
    }

    /// When [`Confirmer::tick`] next has something to do.
    pub(super) fn next_wake(&self) -> Option<Instant> {
        let ask = self.next_ask.filter(|_| !self.asking);
        let deadline = match &self.state {
            State::Awaiting(a) if !a.overdue => Some(a.deadline),
            _ => None,
        };
        ask.into_iter().chain(deadline).min()
    }

    /// Where the latest write stands, for `/status`.
    pub(super) fn phase(&self) -> &'static str {
        if self.runs_a_dump() {
            return "runs its dump";
        }
        match &self.state {
            State::NotStarted => "not started",
            State::Settled => "settled",
            State::Awaiting(a) if a.overdue => "not reloaded yet",
            State::Awaiting(_) => "awaiting",
        }
    }

    /// A write awaits mcrouter's word, and its deadline has not passed.
    pub(super) fn awaiting(&self) -> bool {
        matches!(&self.state, State::Awaiting(a) if !a.overdue)
    }

    /// mcrouter's last answer.
    pub(super) fn last(&self) -> Option<&Observed> {
        self.last.as_ref()
    }

    /// mcrouter has reported running a config mcw wrote.
    pub(super) fn seen_ours(&self) -> bool {
        self.seen_ours
    }
}
