//! The loop's side of mcrouter (`run`): starting it once the first config is on disk, what
//! each signal does, reaping, and the stop timeout.
//!
//! Owns the [`Mcrouter`] the loop keeps (its settings, its process as a [`Child`] state
//! machine, the validation in progress) and the signal table's dispatch. The lifecycle itself
//! is `supervise::Child`'s; what a signal means is `supervise::signals`'.

use super::Loop;
use super::validator::Validation;
use crate::engine::Event;
use crate::error::Error;
use crate::settings::Run;
use crate::supervise::signals::{self, Arrival, Disposition};
use crate::supervise::{self, Child};

/// mcrouter as the loop knows it (`run` mode).
pub(super) struct Mcrouter {
    pub(super) settings: Run,
    pub(super) child: Child,
    /// The candidate being validated (`--validate`).
    pub(super) validation: Option<Validation>,
    /// mcrouter is being stopped to be started again, not for mcw to leave.
    pub(super) restarting: bool,
}

impl Loop {
    pub(super) fn start_child(&mut self, n: usize) -> Result<Event, Error> {
        let Some(s) = &mut self.mcrouter else {
            return Ok(Event::ChildStarted);
        };
        let config = self.pairs[n].output.path.to_string_lossy().into_owned();
        let command = &s.settings.launch.command;
        let mut extra = s.settings.appended.clone();
        extra.extend(["-f".into(), config.clone()]);
        let (child, stderr) = Child::spawn(command, &extra)?;
        s.child = child;
        self.told = Some(super::stderr::relay(stderr, config));
        tracing::info!(
            pid = s.child.pid(),
            command = %command.join(" "),
            appended = %extra.join(" "),
            "started mcrouter"
        );
        Ok(Event::ChildStarted)
    }

    /// mcrouter's log says it could not watch its config file again (the file or its
    /// directory was deleted): it would serve what it has and never load another config. Put
    /// the file back (a template read writes it when the disk differs) and restart mcrouter
    /// on it: SIGTERM, SIGKILL after `--stop-timeout`, then the same command again once it
    /// has exited.
    pub(super) fn restart_for_lost_watch(&mut self) {
        let Some(s) = &mut self.mcrouter else { return };
        let Child::Running { pid } = s.child else {
            return;
        };
        tracing::error!(
            pid,
            output = %self.pairs[0].output.path.display(),
            "mcrouter stopped watching its config file (it was deleted) and would never load another config; restarting it"
        );
        s.restarting = true;
        let term = nix::sys::signal::Signal::SIGTERM as i32;
        s.child.stop(term, s.settings.stop_timeout);
        self.metrics.restarted("stopped_watching");
    }

    /// mcrouter exited for its restart: start it again on the output, put back first if it is
    /// still missing.
    fn restart(&mut self) -> Result<(), Error> {
        self.template_touched(0)?;
        let started = self.start_child(0)?;
        self.feed(0, started)
    }

    /// Act on one signal. Returns an exit code when mcw should leave now.
    pub(super) fn on_signal(&mut self, arrival: Arrival) -> Result<Option<u8>, Error> {
        let sig = arrival.signal;
        let name = signals::name(sig);
        match (arrival.disposition(), &mut self.mcrouter) {
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
            (Disposition::HangUp, Some(s)) if s.child.pid().is_some() => {
                // mcrouter has no SIGHUP handler: the terminal's signal would kill it.
                let term = nix::sys::signal::Signal::SIGTERM as i32;
                tracing::info!(signal = %name, pid = s.child.pid(), timeout = ?s.settings.stop_timeout, "terminal hung up; stopping mcrouter");
                s.restarting = false;
                if s.child.stop(term, s.settings.stop_timeout) {
                    self.metrics.forwarded(&signals::name(term));
                }
                Ok(None)
            }
            (Disposition::HangUp, _) => {
                tracing::info!(signal = %name, "terminal hung up; stopping");
                Ok(Some(0))
            }
            (Disposition::Stop, Some(s)) if s.child.pid().is_some() => {
                tracing::info!(signal = %name, pid = s.child.pid(), timeout = ?s.settings.stop_timeout, "stopping mcrouter");
                s.restarting = false;
                if s.child.stop(sig, s.settings.stop_timeout) {
                    self.metrics.forwarded(&name);
                }
                Ok(None)
            }
            (Disposition::Stop, _) => {
                tracing::info!(signal = %name, "stopping");
                Ok(Some(0))
            }
            (Disposition::Forward, Some(s)) => {
                let sent = s.child.forward(sig);
                tracing::debug!(signal = %name, sent, "forwarded");
                if sent {
                    self.metrics.forwarded(&name);
                }
                Ok(None)
            }
            (Disposition::Forward, None) => Ok(None),
        }
    }

    /// Collect every exited child: mcrouter (then leave with its status), the validator (its
    /// verdict goes to the engine), orphans.
    pub(super) fn reap(&mut self) -> Result<Option<u8>, Error> {
        for (pid, exit) in supervise::reap() {
            let Some(s) = &mut self.mcrouter else {
                continue;
            };
            if Some(pid) == s.child.pid() {
                s.child.exited(exit);
                if s.restarting {
                    s.restarting = false;
                    self.restart()?;
                }
            } else if !self.validator_exited(pid, exit)? {
                tracing::debug!(pid, "reaped an orphan");
            }
        }
        match self.mcrouter.as_ref().map(|s| s.child) {
            Some(Child::Exited { code }) => Ok(Some(code)),
            _ => Ok(None),
        }
    }

    pub(super) fn stop_timeout_passed(&mut self) -> Result<Option<u8>, Error> {
        if let Some(s) = &mut self.mcrouter {
            s.child.kill();
        }
        Ok(None)
    }
}
