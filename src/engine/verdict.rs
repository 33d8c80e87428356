//! The engine's side of confirmation: what mcrouter's start and each write set awaiting, and
//! what each of mcrouter's answers, reasons and deadlines does to the engine (a rejection
//! blocks the rejected bytes and writes back what runs). The confirmation state itself is
//! [`Confirmer`](super::confirm)'s.

use std::time::Instant;

use super::confirm::{Observed, Verdict};
use super::{Action, Config, Engine, Report};

impl Engine {
    pub(super) fn child_started(&mut self, now: Instant) {
        let current = self.current.as_ref().map(|c| c.md5.as_str());
        if let Some(c) = &mut self.confirm {
            c.started(current, now);
        }
    }

    /// Keep `config` among the recent writes and, once mcrouter runs, wait for its word.
    pub(super) fn remember(&mut self, config: Config, now: Instant) {
        if let Some(c) = &mut self.confirm {
            c.wrote(config, now);
        }
    }

    pub(super) fn running(&mut self, answer: Observed, now: Instant) {
        let Some(c) = &mut self.confirm else { return };
        if let Some(verdict) = c.observed(answer, now) {
            self.verdict(verdict);
        }
    }

    pub(super) fn load_failed(&mut self, reason: String) {
        let Some(c) = &mut self.confirm else { return };
        if let Some(verdict) = c.load_failed(reason) {
            self.verdict(verdict);
        }
    }

    pub(super) fn confirm_tick(&mut self, now: Instant) {
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
    pub(super) fn verdict(&mut self, verdict: Verdict) {
        let report = match verdict {
            Verdict::Confirmed { md5, after } => Report::Confirmed { md5, after },
            Verdict::RunsEarlier { md5 } => Report::RunsEarlier { md5 },
            Verdict::NotReloadedYet { md5, running } => Report::NotReloadedYet { md5, running },
            Verdict::CannotTell { md5, reason } => Report::CannotTell { md5, reason },
            Verdict::RunsDump { md5, running } => Report::RunsDump { md5, running },
            Verdict::Because { md5, reason } => Report::RejectedBecause { md5, reason },
            Verdict::Rejected {
                md5,
                running,
                failures,
                restore,
                reason,
            } => {
                let restore = restore.filter(|_| self.pending.is_none());
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
