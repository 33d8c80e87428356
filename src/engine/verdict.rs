//! The engine's side of confirmation: what each write sets awaiting, and what each of
//! mcrouter's answers, reasons and deadlines does to the engine (a rejection blocks the
//! rejected bytes and writes back what runs; a failure that may have been an earlier write's
//! has the latest one renamed over itself, so mcrouter tries it for sure). The confirmation
//! state itself is [`Confirmer`](super::confirm)'s.

use std::time::Instant;

use super::confirm::Verdict;
use super::publish::Kind;
use super::{Action, Config, Engine, Observed, Report};

impl Engine {
    /// Keep `config` among the recent writes and, once mcrouter runs, wait for its word.
    pub(super) fn remember(&mut self, config: Config, now: Instant) {
        if let Some(c) = &mut self.confirm {
            c.wrote(config, now);
        }
    }

    /// The config in force was renamed over itself: mcrouter's word on it is awaited afresh.
    pub(super) fn reoffered(&mut self, now: Instant) {
        if let Some(c) = &mut self.confirm {
            c.reoffered(now);
        }
    }

    pub(super) fn running(&mut self, answer: Observed, now: Instant) {
        let Some(c) = &mut self.confirm else { return };
        if let Some(verdict) = c.observed(answer, now) {
            self.verdict(verdict, now);
        }
    }

    pub(super) fn load_failed(&mut self, reason: String, now: Instant) {
        let Some(c) = &mut self.confirm else { return };
        if let Some(verdict) = c.load_failed(reason) {
            self.verdict(verdict, now);
        }
    }

    pub(super) fn confirm_tick(&mut self, now: Instant) {
        let Some(c) = &mut self.confirm else { return };
        let (ask, verdict) = c.tick(now);
        if ask {
            self.out.push(Action::AskMcrouter);
        }
        if let Some(verdict) = verdict {
            self.verdict(verdict, now);
        }
    }

    /// Report a verdict on a write and act on it: a rejection blocks those bytes and writes
    /// back the bytes whose md5 mcrouter reports, so the file matches what runs (unless other
    /// work is under way; a newer write gets its own verdict); a failure that cannot be pinned
    /// on the awaited write has it renamed over itself.
    pub(super) fn verdict(&mut self, verdict: Verdict, now: Instant) {
        // A warm-up's phase runs from its confirmation; past the deadline without a word it
        // runs anyway (the phase's brackets keep replicas apart by time, not by word).
        match &verdict {
            Verdict::Confirmed { md5, .. }
            | Verdict::NotReloadedYet { md5, .. }
            | Verdict::CannotTell { md5, .. } => self.phase_runs(Some(md5), now),
            Verdict::Rejected { md5, .. } if self.is_phase(md5) => {
                self.warm_up_failed("mcrouter rejected a phase's config")
            }
            _ => {}
        }
        let report = match verdict {
            Verdict::Confirmed { md5, after } => {
                let propagation = self.reloads.confirmed(&md5, now);
                Report::Confirmed {
                    md5,
                    after,
                    propagation,
                }
            }
            Verdict::RunsEarlier { md5 } => Report::RunsEarlier { md5 },
            Verdict::NotReloadedYet { md5, running } => Report::NotReloadedYet { md5, running },
            Verdict::CannotTell { md5, reason } => Report::CannotTell { md5, reason },
            Verdict::RunsDump { md5, running } => {
                self.reloads.rejected(&md5);
                Report::RunsDump { md5, running }
            }
            Verdict::Because { md5, reason } => Report::RejectedBecause { md5, reason },
            Verdict::Reoffer { md5, why } => {
                self.out
                    .push(Action::Report(Report::Reoffering { md5, why }));
                if let Some(config) = self.current.clone().filter(|_| self.idle()) {
                    self.write(config, Kind::Reoffer);
                }
                return;
            }
            Verdict::Rejected {
                md5,
                running,
                failures,
                restore,
                reason,
            } => {
                let restore = restore.filter(|_| self.idle());
                self.reloads.rejected(&md5);
                self.rejected = Some(md5.clone());
                self.out.push(Action::Report(Report::Rejected {
                    md5,
                    running,
                    failures,
                    restoring: restore.is_some(),
                    reason,
                }));
                if let Some(config) = restore {
                    self.restore(config);
                }
                return;
            }
        };
        self.out.push(Action::Report(report));
    }
}
