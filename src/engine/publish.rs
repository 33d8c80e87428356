//! From the last good answers to the file: render, validate, write, restore, repair, retry.
//!
//! Owns what is being done to the output ([`Work`]: nothing, a validation, a write, or a wait
//! before a failed write is tried again, each variant with the config it is about), why each
//! write is made ([`Kind`]), what a failed write becomes when it is tried again ([`Retry`]),
//! the "do not write these bytes again" block, and the reports of what a write changed pool by
//! pool. The write itself (write-if-changed against the disk) is the caller's.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use super::{Action, Config, Engine, Report, Startup, Wrote, md5_hex};
use crate::placement;
use crate::template::{self, Rendered};
use crate::warmup::Phase;

/// Why a config is being written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A new render.
    Render,
    /// The config mcrouter runs, written back after it rejected a newer one.
    Restore,
    /// The config in force, again, in case the file on disk no longer holds it.
    Repair,
    /// The config in force, renamed over itself so that mcrouter reads it again: it failed a
    /// load that may have been of an earlier write (see `confirm`).
    Reoffer,
    /// The config of a warm-up's phase (`--warm-up`).
    Phase(Phase),
}

/// What is being done to the output: at most one validation or write at a time.
#[derive(Debug)]
pub(super) enum Work {
    Idle,
    Validating {
        config: Config,
        kind: Kind,
        deadline: Instant,
    },
    Writing {
        config: Config,
        kind: Kind,
    },
    /// A write failed; `retry` is made at `at`. Nothing else is written meanwhile, so a full
    /// or read-only disk is tried once per `--min-refresh`, not at every DNS change.
    Waiting {
        at: Instant,
        retry: Retry,
    },
}

/// A failed write, as it is tried again.
#[derive(Debug)]
pub(super) enum Retry {
    /// Render again from the latest answers (they may have moved on since).
    Render,
    /// Write back this config, which mcrouter runs (a newer one was rejected).
    Restore(Config),
    /// Write the config in force again (the file on disk did not hold it).
    Repair,
    /// Rename the config in force over itself again.
    Reoffer,
    /// Write this phase's config again.
    Phase(Config, Phase),
}

impl Retry {
    fn after(kind: Kind, config: Config) -> Retry {
        match kind {
            Kind::Render => Retry::Render,
            Kind::Restore => Retry::Restore(config),
            Kind::Repair => Retry::Repair,
            Kind::Reoffer => Retry::Reoffer,
            Kind::Phase(phase) => Retry::Phase(config, phase),
        }
    }
}

/// What the output is due, beside the work in progress.
#[derive(Debug, Default)]
pub(super) struct Due {
    /// Something changed since the last render (an answer, the template, a hold, SIGHUP).
    pub(super) render: bool,
    /// Compare the output on disk with the config in force at the next chance (SIGHUP, the
    /// periodic template read): a file deleted or replaced under mcw is written again.
    pub(super) disk_check: bool,
}

impl Engine {
    /// Render from the last good answers and start writing (or validating) when the bytes
    /// are new; when they are not and the disk is due a check, write the config in force
    /// again through the same write-if-changed (a no-op when the file holds it). Nothing
    /// happens while any token lacks an answer or other work is in progress.
    pub(super) fn publish(&mut self, now: Instant) {
        if !matches!(self.work, Work::Idle) {
            return;
        }
        // A change that comes during a warm-up waits for it to end.
        if self.due.render && self.warming() {
            self.note_waiting();
        }
        if !self.due.render || self.warming() {
            return self.repair_if_due();
        }
        self.due.render = false;
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
            self.reloads.unchanged(now);
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
        self.reloads.rendered(generation);
        self.last_render = Some(now);
        self.out.push(Action::Report(Report::Rendered {
            generation,
            md5: md5.clone(),
        }));
        let config = Config {
            generation,
            md5,
            rendered: Arc::new(rendered),
        };
        if !self.warm_up(&config, now) {
            self.submit(config, Kind::Render, now);
        }
    }

    /// Validate `config` (with `--validate`), then write it; or write it at once.
    pub(super) fn submit(&mut self, config: Config, kind: Kind, now: Instant) {
        match self.s.supervision.as_ref().and_then(|s| s.validate_timeout) {
            Some(limit) => {
                let bytes = config.rendered.bytes.clone();
                let generation = config.generation;
                self.work = Work::Validating {
                    config,
                    kind,
                    deadline: now + limit,
                };
                self.out.push(Action::Validate { generation, bytes });
            }
            None => self.write(config, kind),
        }
    }

    /// When the disk is due a check, write the config in force again (write-if-changed
    /// compares it with the file, so this costs a read when nothing is wrong).
    fn repair_if_due(&mut self) {
        // After SIGHUP, once its lookups are in: a changed answer is then written as a new
        // render, and the file is compared once, not twice.
        let asking = self.states.values().any(|s| s.in_flight);
        if !self.due.disk_check || asking {
            return;
        }
        self.due.disk_check = false;
        if let Some(config) = self.current.clone() {
            self.write(config, Kind::Repair);
        }
    }

    /// Start writing `config`.
    pub(super) fn write(&mut self, config: Config, kind: Kind) {
        let generation = config.generation;
        let bytes = config.rendered.bytes.clone();
        self.work = Work::Writing { config, kind };
        let force = kind == Kind::Reoffer;
        self.out.push(Action::Write {
            generation,
            bytes,
            force,
        });
    }

    /// A failed write's time has come: try it again, as what it was.
    pub(super) fn retry_if_due(&mut self, now: Instant) {
        let Work::Waiting { at, .. } = &self.work else {
            return;
        };
        if *at > now {
            return;
        }
        let Work::Waiting { retry, .. } = std::mem::replace(&mut self.work, Work::Idle) else {
            unreachable!("matched above")
        };
        match (retry, self.current.clone()) {
            (Retry::Render, _) => self.due.render = true,
            (Retry::Restore(config), _) => self.restore(config),
            (Retry::Repair, Some(current)) => self.write(current, Kind::Repair),
            (Retry::Reoffer, Some(current)) => self.write(current, Kind::Reoffer),
            (Retry::Phase(config, phase), _) => self.write(config, Kind::Phase(phase)),
            (Retry::Repair | Retry::Reoffer, None) => {}
        }
    }

    pub(super) fn wrote(&mut self, generation: u64, result: Result<Wrote, String>, now: Instant) {
        let (config, kind) = match std::mem::replace(&mut self.work, Work::Idle) {
            Work::Writing { config, kind } if config.generation == generation => (config, kind),
            other => {
                self.work = other; // not the write in progress: stale
                return;
            }
        };
        let wrote = match result {
            Ok(wrote) => wrote,
            Err(reason) => {
                if matches!(kind, Kind::Render | Kind::Phase(_)) {
                    self.reloads.failed();
                }
                self.out.push(Action::Report(Report::WriteFailed {
                    reason: reason.clone(),
                }));
                if let Startup::Waiting { problem, .. } = &mut self.startup {
                    *problem = Some(reason);
                }
                self.work = Work::Waiting {
                    at: now + self.s.refresh.min_refresh,
                    retry: Retry::after(kind, config),
                };
                return;
            }
        };
        // The file now holds the config in force, whatever happened to it before.
        self.due.disk_check = false;
        let written = !matches!(wrote, Wrote::Unchanged);
        let md5 = config.md5.clone();
        let propagation = match kind {
            Kind::Render | Kind::Phase(_) => {
                self.reloads
                    .written(generation, &md5, self.confirm.is_some(), now)
            }
            _ => None,
        };
        let report = match (kind, written) {
            (Kind::Render, true) => {
                let from = self.report_from.take();
                self.report_pool_changes(from, &config.rendered);
                for note in &config.rendered.notes {
                    let note = note.clone();
                    self.out.push(Action::Report(Report::RenderNote { note }));
                }
                let r = &config.rendered;
                Some(Report::Wrote {
                    generation,
                    md5: md5.clone(),
                    pools: r.pools.len(),
                    servers: r.pools.values().map(|p| p.servers.len()).sum(),
                    propagation,
                })
            }
            (Kind::Render, false) => Some(Report::AlreadyOnDisk { md5: md5.clone() }),
            (Kind::Restore, true) => {
                self.report_pool_changes(None, &config.rendered);
                Some(Report::Restored { md5: md5.clone() })
            }
            (Kind::Repair, true) => Some(Report::Repaired { md5: md5.clone() }),
            (Kind::Reoffer, _) => Some(Report::Reoffered { md5: md5.clone() }),
            (Kind::Phase(phase), _) => Some(Report::WarmUpPhase {
                phase: phase.name(),
                generation,
                md5: md5.clone(),
                propagation,
            }),
            // The file already held these bytes: nothing happened worth telling.
            (Kind::Restore | Kind::Repair, false) => None,
        };
        self.out.extend(report.map(Action::Report));
        if let Wrote::Unsynced(reason) = wrote {
            let md5 = md5.clone();
            self.out
                .push(Action::Report(Report::Unsynced { md5, reason }));
        }
        if written {
            self.last_write = Some(now);
        }
        self.startup = Startup::Done;
        self.current = Some(config.clone());
        match kind {
            // The same config again is nothing new for mcrouter to confirm.
            Kind::Repair => {}
            Kind::Reoffer => self.reoffered(now),
            Kind::Render | Kind::Restore => self.remember(config, now),
            Kind::Phase(_) => {
                self.remember(config, now);
                self.phase_written(now);
            }
        }
        // Lookups that finished meanwhile left a render due: the next publish catches up.
    }

    /// Write `config` back (it is what mcrouter runs).
    pub(super) fn restore(&mut self, mut config: Config) {
        self.generation += 1;
        config.generation = self.generation;
        self.write(config, Kind::Restore);
    }

    /// What a failed write waiting to be tried again was, for `/status`.
    pub(super) fn retrying(&self) -> Option<&'static str> {
        match &self.work {
            Work::Waiting { retry, .. } => Some(match retry {
                Retry::Render => "render",
                Retry::Restore(_) => "restore",
                Retry::Repair => "repair",
                Retry::Reoffer => "reoffer",
                Retry::Phase(..) => "warm-up phase",
            }),
            _ => None,
        }
    }

    /// A validation or write is in progress (a failed one waiting for its retry is not).
    pub(super) fn busy(&self) -> bool {
        matches!(self.work, Work::Validating { .. } | Work::Writing { .. })
    }

    /// Nothing is being done to the output.
    pub(super) fn idle(&self) -> bool {
        matches!(self.work, Work::Idle)
    }

    /// A write is under way (its outcome is due before anything else is decided).
    pub(super) fn writing(&self) -> bool {
        matches!(self.work, Work::Writing { .. })
    }

    /// A restore waiting for its retry is no longer needed (the file holds the config).
    pub(super) fn cancel_restore(&mut self) {
        if matches!(
            self.work,
            Work::Waiting {
                retry: Retry::Restore(_),
                ..
            }
        ) {
            self.work = Work::Idle;
        }
    }

    /// The config the output should hold now: one waiting to be written back after a
    /// rejection, else the one last written.
    pub(super) fn in_force(&self) -> Option<&Config> {
        match &self.work {
            Work::Waiting {
                retry: Retry::Restore(config),
                ..
            } => Some(config),
            _ => self.current.as_ref(),
        }
    }

    /// One report per pool whose servers changed since `from` (by default the config in
    /// force): `+added -removed`, with both lists for the share of keys it remaps (measured
    /// by the caller, off the loop when it is costly).
    fn report_pool_changes(&mut self, from: Option<Arc<Rendered>>, after: &Rendered) {
        let Some(before) = from.or_else(|| self.current.as_ref().map(|c| c.rendered.clone()))
        else {
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
            self.out.push(Action::Report(Report::PoolChanged {
                pool: label.clone(),
                added: added.into_iter().cloned().collect(),
                removed: removed.into_iter().cloned().collect(),
                servers: new.len(),
                change: placement::Change {
                    before: was.cloned(),
                    after: is.cloned(),
                },
                gone: is.is_none(),
            }));
        }
    }
}
