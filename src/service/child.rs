//! The loop's side of mcrouter (`run`): starting it when the engine says (the config first on
//! disk, then the process, on the port mcw holds), what each signal does, reaping, restarts
//! (after a lost watch, on SIGUSR2, and with `--restart on-failure` after it failed), and the
//! stop timeout.
//!
//! Owns the [`Mcrouter`] the loop keeps (its settings, its process as a [`Child`] state
//! machine, the held port, the restart policy, the validation in progress) and the signal
//! table's dispatch. The lifecycle itself is `supervise::Child`'s; what a signal means is
//! `supervise::signals`'; when mcrouter may start is the engine's.

use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::time::Instant;

use super::Loop;
use super::validator::Validation;
use crate::engine::Event;
use crate::error::Error;
use crate::output::Written;
use crate::settings::Run;
use crate::supervise::restart::{Decision, Policy, Reason, Restarts};
use crate::supervise::signals::{self, Arrival, Disposition};
use crate::supervise::socket::Held;
use crate::supervise::{self, Child, Exit, Then};

/// mcrouter as the loop knows it (`run` mode).
pub(super) struct Mcrouter {
    pub(super) settings: Run,
    pub(super) child: Child,
    /// The port mcw holds for it, when the command's shape allows.
    pub(super) held: Option<Held>,
    pub(super) restarts: Restarts,
    /// Restarts so far, and the last one's reason, for `/status`.
    pub(super) restarted: u64,
    pub(super) last_restart: Option<Reason>,
    /// The candidate being validated (`--validate`).
    pub(super) validation: Option<Validation>,
}

impl Mcrouter {
    pub(super) fn new(settings: Run, held: Option<Held>) -> Mcrouter {
        Mcrouter {
            restarts: Restarts::new(settings.restart, settings.restart_limit),
            settings,
            child: Child::Pending,
            held,
            restarted: 0,
            last_restart: None,
            validation: None,
        }
    }
}

const SIGTERM: i32 = Signal::SIGTERM as i32;

impl Loop {
    /// The engine's start: make pair `n`'s output hold `bytes` (write-if-changed), then start
    /// mcrouter on it. A failed write starts nothing (the engine tries again later).
    pub(super) fn start_child(&mut self, n: usize, bytes: &[u8]) -> Result<Event, Error> {
        let output = &self.pairs[n].pair.output;
        let Some(m) = &mut self.mcrouter else {
            return Ok(Event::ChildStarted);
        };
        match output.write_if_changed(bytes) {
            Ok(Written::Unchanged) => {}
            Ok(_) => tracing::warn!(
                output = %output.path.display(),
                "the output did not hold the config mcrouter starts on; wrote it first"
            ),
            Err(e) => return Ok(Event::StartFailed(e.to_string())),
        }
        let config = output.path.to_string_lossy().into_owned();
        let command = m.settings.command();
        let mut extra = m.settings.appended.clone();
        if let Some(held) = &mut m.held {
            held.listen().map_err(|source| Error::HoldPort {
                addr: held.addr,
                source,
            })?;
            extra.push(format!("--listen-sock-fd={}", held.raw()));
        }
        extra.extend(["-f".into(), config.clone()]);
        let (child, stderr) = Child::spawn(command, &extra, m.held.as_ref())?;
        m.child = child;
        m.restarts.started(Instant::now().into_std());
        self.told = Some(super::stderr::relay(stderr, config));
        tracing::info!(
            pid = m.child.pid(),
            command = %command.join(" "),
            appended = %extra.join(" "),
            "started mcrouter"
        );
        Ok(Event::ChildStarted)
    }

    /// Stop mcrouter to start it again at once on the same port and config (SIGTERM, SIGKILL
    /// after `--stop-timeout`).
    fn restart_now(&mut self, reason: Reason) -> bool {
        let Some(m) = &mut self.mcrouter else {
            return false;
        };
        if !matches!(m.child, Child::Running { .. }) {
            return false;
        }
        let timeout = m.settings.stop_timeout;
        m.child.stop(SIGTERM, timeout, Then::Restart(reason));
        true
    }

    /// mcrouter's log says it could not watch its config file again (the file or its
    /// directory was deleted): it would serve what it has and never load another config.
    /// Restart it; the engine puts the file back before the new one starts.
    pub(super) fn restart_for_lost_watch(&mut self) {
        if self.restart_now(Reason::StoppedWatching) {
            tracing::error!(
                pid = self.child_pid(),
                output = %self.pairs[0].pair.output.path.display(),
                "mcrouter stopped watching its config file (it was deleted) and would never load another config; restarting it"
            );
        }
    }

    fn child_pid(&self) -> Option<i32> {
        self.mcrouter.as_ref().and_then(|m| m.child.pid())
    }

    /// mcrouter exited to be started again (now, or at the end of its backoff): the engine
    /// forgets what the old one said, and questions still out to it are dropped.
    fn child_gone(&mut self) -> Result<(), Error> {
        self.asks = tokio::task::JoinSet::new();
        self.feed(0, Event::ChildExited)
    }

    /// Start mcrouter again for `reason`: the engine writes the config in force first.
    fn start_again(&mut self, reason: Reason) -> Result<(), Error> {
        if let Some(m) = &mut self.mcrouter {
            m.child = Child::Pending;
            m.restarted += 1;
            m.last_restart = Some(reason);
        }
        self.metrics.restarted(reason.label());
        self.feed(0, Event::Restart)
    }

    /// The backoff after a failure is over.
    pub(super) fn backoff_over(&mut self) -> Result<Option<u8>, Error> {
        let Some(m) = &self.mcrouter else {
            return Ok(None);
        };
        let Child::Backoff { reason, .. } = m.child else {
            return Ok(None);
        };
        tracing::info!(reason = reason.label(), "restarting mcrouter");
        self.start_again(reason)?;
        Ok(None)
    }

    /// Act on one signal. Returns an exit code when mcw should leave now.
    pub(super) fn on_signal(&mut self, arrival: Arrival) -> Result<Option<u8>, Error> {
        let sig = arrival.signal;
        let name = signals::name(sig);
        let disposition = arrival.disposition();
        self.notifier.signal(disposition);
        match (disposition, &mut self.mcrouter) {
            (Disposition::Drop, _) => {
                // A SIGPIPE for mcw's own write (stderr gone, say): the write already failed
                // with EPIPE, and the signal is about mcw, not for mcrouter.
                tracing::debug!(signal = %name, "raised by mcw's own write; not forwarded");
                Ok(None)
            }
            (Disposition::Refresh, _) => {
                tracing::info!(signal = %name, "re-reading the template and re-resolving every token");
                self.feed_all(|| Event::Refresh)?;
                Ok(None)
            }
            (Disposition::Reap, _) => self.reap(),
            // The shell's SIGHUP and the kernel's both come when a terminal closes: mcrouter
            // is sent SIGTERM once.
            (
                Disposition::HangUp,
                Some(Mcrouter {
                    child:
                        Child::Stopping {
                            then: Then::Leave, ..
                        }
                        | Child::Killed { .. },
                    ..
                }),
            ) => {
                tracing::debug!(signal = %name, "terminal hung up; mcrouter is stopping already");
                Ok(None)
            }
            (Disposition::HangUp, Some(m)) if m.child.pid().is_some() => {
                // mcrouter has no SIGHUP handler: the terminal's signal would kill it.
                tracing::info!(signal = %name, pid = m.child.pid(), timeout = ?m.settings.stop_timeout, "terminal hung up; stopping mcrouter");
                if m.child.stop(SIGTERM, m.settings.stop_timeout, Then::Leave) {
                    self.metrics.forwarded(&signals::name(SIGTERM));
                }
                Ok(None)
            }
            (Disposition::HangUp, _) => {
                tracing::info!(signal = %name, "terminal hung up; stopping");
                Ok(Some(0))
            }
            (Disposition::Stop, Some(m)) if m.child.pid().is_some() => {
                tracing::info!(signal = %name, pid = m.child.pid(), timeout = ?m.settings.stop_timeout, "stopping mcrouter");
                if m.child.stop(sig, m.settings.stop_timeout, Then::Leave) {
                    self.metrics.forwarded(&name);
                }
                Ok(None)
            }
            (Disposition::Stop, _) => {
                tracing::info!(signal = %name, "stopping");
                Ok(Some(0))
            }
            (Disposition::Ignore, _) => {
                tracing::warn!(signal = %name, "not forwarded: mcrouter has no handler for it and would die");
                Ok(None)
            }
            (Disposition::Restart, _) => {
                if self.restart_now(Reason::Asked) {
                    tracing::info!(signal = %name, pid = self.child_pid(), "restarting mcrouter");
                } else {
                    tracing::info!(signal = %name, "mcrouter is not running; nothing to restart");
                }
                Ok(None)
            }
            (Disposition::Suspend, m) => {
                if let Some(m) = m
                    && m.child.forward(sig)
                {
                    self.metrics.forwarded(&name);
                }
                tracing::info!(signal = %name, "stopping mcrouter and mcw; SIGCONT (fg) resumes them");
                if let Err(e) = signals::stop_self() {
                    tracing::warn!(reason = %e, "cannot stop mcw itself");
                }
                Ok(None)
            }
            (Disposition::Forward, Some(m)) => {
                let sent = m.child.forward(sig);
                tracing::debug!(signal = %name, sent, "forwarded");
                if sent {
                    self.metrics.forwarded(&name);
                }
                Ok(None)
            }
            (Disposition::Forward, None) => Ok(None),
        }
    }

    /// Collect every exited child: mcrouter (then leave with its status, restart it, or wait
    /// out its backoff), the validator (its verdict goes to the engine), orphans.
    pub(super) fn reap(&mut self) -> Result<Option<u8>, Error> {
        for (pid, exit) in supervise::reap() {
            let Some(m) = &mut self.mcrouter else {
                continue;
            };
            if Some(pid) == m.child.pid() {
                self.mcrouter_exited(exit)?;
            } else if !self.validator_exited(pid, exit)? {
                tracing::debug!(pid, "reaped an orphan");
            }
        }
        match self.mcrouter.as_ref().map(|m| m.child) {
            Some(Child::Exited { code }) => Ok(Some(code)),
            _ => Ok(None),
        }
    }

    /// mcrouter is gone with `exit`: what mcw had asked for follows (leave, or start it
    /// again), or, when it ended on its own, what `--restart` says.
    fn mcrouter_exited(&mut self, exit: Exit) -> Result<(), Error> {
        let Some(m) = &mut self.mcrouter else {
            return Ok(());
        };
        let sent = match exit {
            Exit::Signal(sig) => m.child.was_sent(sig),
            Exit::Code(_) => false,
        };
        match m.child.exited(exit) {
            Some(Then::Leave) => Ok(()),
            Some(Then::Restart(reason)) => {
                self.child_gone()?;
                self.start_again(reason)
            }
            None => {
                let now = Instant::now();
                match m.restarts.exited(exit, sent, now.into_std()) {
                    Decision::Exit(code) => {
                        let failed = match exit {
                            Exit::Code(c) => c != 0,
                            Exit::Signal(_) => !sent,
                        };
                        if failed && m.settings.restart == Policy::OnFailure {
                            tracing::error!(
                                exit_code = exit.code(),
                                limit = m.restarts.limit(),
                                "mcrouter failed again after the last restart --restart-limit allows; giving up"
                            );
                        }
                        m.child = Child::Exited { code };
                        Ok(())
                    }
                    Decision::Restart {
                        after,
                        reason,
                        streak,
                    } => {
                        let limit = m.restarts.limit();
                        tracing::warn!(
                            exit_code = exit.code(),
                            reason = reason.label(),
                            after = ?after,
                            restart = streak,
                            limit,
                            "mcrouter failed; restarting it on the same port and config"
                        );
                        m.child = Child::Backoff {
                            at: now + after,
                            reason,
                            code: exit.code(),
                        };
                        self.child_gone()
                    }
                }
            }
        }
    }

    pub(super) fn stop_timeout_passed(&mut self) -> Result<Option<u8>, Error> {
        if let Some(m) = &mut self.mcrouter {
            m.child.kill();
        }
        Ok(None)
    }

    /// What `/status` says of restarts: how many, the last reason, and when the next one is
    /// due (during a backoff).
    pub(super) fn restart_status(&self) -> Option<(u64, Option<&'static str>, Option<Duration>)> {
        let m = self.mcrouter.as_ref()?;
        let next = m
            .child
            .restart_at()
            .map(|at| at.saturating_duration_since(Instant::now()));
        Some((m.restarted, m.last_restart.map(Reason::label), next))
    }
}
