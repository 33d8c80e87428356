//! From the last good answers to the file: render, validate, write, restore, repair.
//!
//! Owns the one write or validation in progress, why each write is made (a new render, the
//! config mcrouter runs written back after a rejection, the config in force again after the
//! file was deleted), the "do not write these bytes again" block, retries of failed writes, and
//! the reports of what a write changed pool by pool. The write itself (write-if-changed against
//! the disk) is the caller's.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use super::{Action, Config, Engine, Report, md5_hex};
use crate::placement;
use crate::template::{self, Rendered};

/// Why a config is being written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// A new render.
    Render,
    /// The config mcrouter runs, written back after it rejected a newer one.
    Restore,
    /// The config mcw last wrote, again, in case the file on disk no longer holds it.
    Repair,
}

/// The one write or validation in progress.
#[derive(Debug)]
pub(super) enum Pending {
    Validating { config: Config, deadline: Instant },
    Writing { config: Config, kind: Kind },
}

impl Engine {
    /// Render from the last good answers and start writing (or validating) when the bytes
    /// are new; when they are not and the disk is due a check, write the config in force
    /// again through the same write-if-changed (a no-op when the file holds it). Nothing
    /// happens while any token lacks an answer or a write is in progress.
    pub(super) fn publish(&mut self, now: Instant) {
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
    pub(super) fn repair_if_due(&mut self) {
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
    pub(super) fn write(&mut self, config: Config, kind: Kind) {
        let generation = config.generation;
        let bytes = config.rendered.bytes.clone();
        self.pending = Some(Pending::Writing { config, kind });
        self.out.push(Action::Write { generation, bytes });
    }

    pub(super) fn wrote(&mut self, generation: u64, result: Result<bool, String>, now: Instant) {
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
        if self.s.start_child && !self.child_started {
            self.child_started = true;
            self.out.push(Action::StartChild);
        }
        // The same config again is nothing new for mcrouter to confirm.
        if kind != Kind::Repair {
            self.remember(config, now);
        }
        // Lookups that finished meanwhile left `dirty` set: the next publish catches up.
    }

    pub(super) fn validated(&mut self, generation: u64, result: Result<(), String>) {
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
    pub(super) fn validation_failed(&mut self, reason: String) {
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

    /// Write `config` back (it is what mcrouter runs).
    pub(super) fn restore(&mut self, mut config: Config) {
        self.generation += 1;
        config.generation = self.generation;
        self.write(config, Kind::Restore);
    }

    /// One report per pool whose servers changed: `+added -removed`.
    pub(super) fn report_pool_changes(&mut self, after: &Rendered) {
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
}
