//! `--restart`: whether an mcrouter that exited on its own is started again, after how long,
//! and when mcw gives up.
//!
//! Owns the policy as a pure function of how mcrouter ended, which signals mcw had sent it,
//! and the clock: `never` (mcw exits with mcrouter's status, as a container's PID 1 does) or
//! `on-failure` (a death by a signal mcw did not send, or a non-zero exit, is restarted after
//! 1 s, doubling to 30 s; a minute of health resets the backoff; after `--restart-limit`
//! restarts in a row mcw gives up with mcrouter's status). Stopping and starting the process
//! are the caller's.

use std::time::{Duration, Instant};

use clap::ValueEnum;

use super::Exit;

/// The first wait before a restart.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait before a restart.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Running this long counts as healthy: the next failure starts the backoff afresh.
pub const HEALTHY_AFTER: Duration = Duration::from_secs(60);

/// `--restart`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Policy {
    /// mcw exits with mcrouter's status when it exits.
    Never,
    /// mcrouter is started again when it dies of a signal mcw did not send or exits non-zero.
    OnFailure,
}

/// Why mcrouter was started again, as `mcw_child_restarts_total{reason}` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// It died of a signal mcw did not send.
    Crashed,
    /// It exited with a status other than 0.
    Failed,
    /// It stopped watching its config file, so mcw restarted it.
    StoppedWatching,
    /// SIGUSR2 asked for it.
    Asked,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::Crashed => "crashed",
            Reason::Failed => "failed",
            Reason::StoppedWatching => "stopped_watching",
            Reason::Asked => "sigusr2",
        }
    }
}

/// What to do about an mcrouter that exited on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Start it again after `after`; this is restart `streak` in a row.
    Restart {
        after: Duration,
        reason: Reason,
        streak: u32,
    },
    /// Leave with this status.
    Exit(u8),
}

/// The restart policy and its memory of recent restarts.
#[derive(Debug)]
pub struct Restarts {
    policy: Policy,
    /// Restarts in a row allowed before mcw gives up.
    limit: u32,
    /// Restarts in a row without a minute of health in between.
    streak: u32,
    /// When the running mcrouter started.
    started: Option<Instant>,
}

impl Restarts {
    pub fn new(policy: Policy, limit: u32) -> Restarts {
        Restarts {
            policy,
            limit,
            streak: 0,
            started: None,
        }
    }

    /// An mcrouter was started at `now`.
    pub fn started(&mut self, now: Instant) {
        self.started = Some(now);
    }

    /// The mcrouter started last ended with `exit` at `now`, not on mcw's request; `sent`
    /// says whether mcw had sent it the signal it died of.
    pub fn exited(&mut self, exit: Exit, sent: bool, now: Instant) -> Decision {
        let reason = match exit {
            Exit::Code(0) => return Decision::Exit(0),
            Exit::Signal(_) if sent => return Decision::Exit(exit.code()),
            Exit::Signal(_) => Reason::Crashed,
            Exit::Code(_) => Reason::Failed,
        };
        if self.policy == Policy::Never {
            return Decision::Exit(exit.code());
        }
        let healthy = self
            .started
            .is_some_and(|t| now.saturating_duration_since(t) >= HEALTHY_AFTER);
        if healthy {
            self.streak = 0;
        }
        if self.streak >= self.limit {
            return Decision::Exit(exit.code());
        }
        self.streak += 1;
        let after = FIRST_BACKOFF
            .saturating_mul(1 << (self.streak - 1).min(16))
            .min(MAX_BACKOFF);
        Decision::Restart {
            after,
            reason,
            streak: self.streak,
        }
    }

    /// The limit, for messages.
    pub fn limit(&self) -> u32 {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KILL: i32 = 9;
    const SEGV: i32 = 11;

    #[test]
    fn never_leaves_with_mcrouters_status() {
        let mut r = Restarts::new(Policy::Never, 5);
        let now = Instant::now();
        assert_eq!(
            r.exited(Exit::Signal(SEGV), false, now),
            Decision::Exit(139)
        );
        assert_eq!(r.exited(Exit::Code(1), false, now), Decision::Exit(1));
    }

    #[test]
    fn on_failure_backs_off_doubling_to_30s_then_gives_up_and_a_minute_of_health_resets_it() {
        let mut r = Restarts::new(Policy::OnFailure, 7);
        let t0 = Instant::now();
        let mut waits = Vec::new();
        let mut now = t0;
        for _ in 0..7 {
            r.started(now);
            now += Duration::from_secs(2);
            match r.exited(Exit::Signal(KILL), false, now) {
                Decision::Restart { after, reason, .. } => {
                    assert_eq!(reason, Reason::Crashed);
                    waits.push(after.as_secs());
                    now += after;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        r.started(now);
        assert_eq!(
            r.exited(Exit::Code(3), false, now + Duration::from_secs(1)),
            Decision::Exit(3),
            "the limit"
        );
        // After a minute of health, the next failure starts again at 1 s.
        let mut r = Restarts::new(Policy::OnFailure, 2);
        r.started(t0);
        r.exited(Exit::Code(1), false, t0);
        r.started(t0 + Duration::from_secs(1));
        r.exited(Exit::Code(1), false, t0 + Duration::from_secs(2));
        r.started(t0 + Duration::from_secs(4));
        let late = t0 + Duration::from_secs(4) + HEALTHY_AFTER;
        assert_eq!(
            r.exited(Exit::Code(1), false, late),
            Decision::Restart {
                after: FIRST_BACKOFF,
                reason: Reason::Failed,
                streak: 1
            }
        );
    }

    #[test]
    fn a_clean_exit_or_a_signal_mcw_sent_is_not_a_failure() {
        let mut r = Restarts::new(Policy::OnFailure, 5);
        let now = Instant::now();
        r.started(now);
        assert_eq!(r.exited(Exit::Code(0), false, now), Decision::Exit(0));
        assert_eq!(r.exited(Exit::Signal(KILL), true, now), Decision::Exit(137));
    }
}
