//! When mcrouter may start (`run` mode): only on a config that is on disk, at the first start
//! and again after it exited, whatever lookups or validations are in flight.
//!
//! Owns the engine's view of the child as a state enum ([`ChildPhase`]). A start is one
//! action that carries the bytes the output must hold first ([`Action::StartChild`]): the
//! caller writes them if the file does not hold them and starts mcrouter only when that
//! worked, so mcrouter never starts on a missing or stale file; a failed write is tried again
//! at `--min-refresh`. When to restart, and the process itself, are the caller's.

use std::time::Instant;

use super::{Action, Config, Engine, Report};

/// Where mcrouter stands, as far as the engine is concerned.
#[derive(Debug)]
pub(super) enum ChildPhase {
    /// `watch`: mcw starts no child.
    None,
    /// To be started once a config is on disk (at start, or again after it exited).
    Waiting,
    /// The start's write failed: try again at `at`.
    Retrying {
        at: Instant,
    },
    /// Asked to start on `config`; the caller answers `ChildStarted` or `StartFailed`.
    Starting {
        config: Config,
    },
    Running,
    /// It exited; it starts again only when the caller says so (`Restart`).
    Down,
}

impl ChildPhase {
    pub(super) fn next_wake(&self) -> Option<Instant> {
        match self {
            ChildPhase::Retrying { at } => Some(*at),
            _ => None,
        }
    }

    /// The state's name, for `/status`.
    pub(super) fn name(&self) -> &'static str {
        match self {
            ChildPhase::None => "none",
            ChildPhase::Waiting | ChildPhase::Retrying { .. } => "waiting for its config",
            ChildPhase::Starting { .. } => "starting",
            ChildPhase::Running => "running",
            ChildPhase::Down => "down",
        }
    }
}

impl Engine {
    /// Ask for the start when mcrouter waits for a config and one is in force, unless a write
    /// is under way (its outcome decides which bytes are in force).
    pub(super) fn start_if_waiting(&mut self) {
        if !matches!(self.child, ChildPhase::Waiting) || self.writing() {
            return;
        }
        let Some(config) = self.in_force().cloned() else {
            return;
        };
        let bytes = config.rendered.bytes.clone();
        self.child = ChildPhase::Starting { config };
        self.out.push(Action::StartChild { bytes });
    }

    pub(super) fn child_tick(&mut self, now: Instant) {
        if let ChildPhase::Retrying { at } = self.child
            && at <= now
        {
            self.child = ChildPhase::Waiting;
        }
    }

    /// mcrouter runs on the config the start carried: that is what the output holds now.
    pub(super) fn child_started(&mut self, now: Instant) {
        let ChildPhase::Starting { config } =
            std::mem::replace(&mut self.child, ChildPhase::Running)
        else {
            return;
        };
        let md5 = config.md5.clone();
        if self.current.as_ref().is_none_or(|c| c.md5 != md5) {
            // A restore that was waiting for its retry: the start's write did it.
            self.current = Some(config);
            self.cancel_restore();
        }
        if let Some(c) = &mut self.confirm {
            c.started(&md5, now);
        }
    }

    /// The write before the start failed: nothing was started; try again at `--min-refresh`.
    pub(super) fn start_failed(&mut self, reason: String, now: Instant) {
        if !matches!(self.child, ChildPhase::Starting { .. }) {
            return;
        }
        self.out
            .push(Action::Report(Report::StartDeferred { reason }));
        self.child = ChildPhase::Retrying {
            at: now + self.s.refresh.min_refresh,
        };
    }

    /// mcrouter exited: nothing it said before counts for the next one.
    pub(super) fn child_exited(&mut self) {
        if matches!(self.child, ChildPhase::None) {
            return;
        }
        self.child = ChildPhase::Down;
        if let Some(c) = &mut self.confirm {
            c.stopped();
        }
    }

    /// Start mcrouter again, on the config in force, once it is on disk.
    pub(super) fn restart(&mut self) {
        if matches!(self.child, ChildPhase::Down) {
            self.child = ChildPhase::Waiting;
        }
    }

    /// Where the child stands, for `/status`.
    pub(super) fn child_phase(&self) -> &'static str {
        self.child.name()
    }
}
