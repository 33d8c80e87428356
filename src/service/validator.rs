//! `--validate`: the validator process, `mcrouter --validate-config=exit` on a candidate file
//! beside the output.
//!
//! Owns starting it on a candidate, stopping it, its verdict, and installing or discarding the
//! candidate when the engine says the validation is over. The verdict needs two things: its
//! exit status, which comes back through the one `waitpid` (`supervise::reap`) by way of the
//! child side of the loop, and the end of its stderr, read for the reason mcrouter gives (so
//! that a rejection says why, not only "exit status 3").

use super::Loop;
use crate::engine::Event;
use crate::error::Error;
use crate::output::Candidate;
use crate::supervise::{self, Exit, signals};

pub(super) struct Validation {
    pub(super) generation: u64,
    candidate: Candidate,
    /// The validator's pid until it has been reaped.
    pid: Option<i32>,
    /// Its pid for ever, to match what its stderr said.
    spawned: i32,
    /// How it ended, once reaped.
    exit: Option<Exit>,
    /// The reason its stderr gave, once that closed.
    said: Option<Option<String>>,
}

impl Validation {
    /// Kill the validator if it still runs; its exit is reaped like any orphan's.
    fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = signals::send(pid, nix::sys::signal::Signal::SIGKILL as i32);
        }
    }

    /// mcw is leaving: stop the validator and remove its candidate.
    pub(super) fn abandon(mut self) {
        self.stop();
        self.candidate.discard();
    }
}

impl Loop {
    /// Write a candidate beside the output and start `mcrouter --validate-config` on it; a
    /// candidate that cannot be made or checked is a rejection.
    pub(super) fn start_validation(
        &mut self,
        n: usize,
        generation: u64,
        bytes: &[u8],
    ) -> Option<Event> {
        let reject = |reason: String| {
            Some(Event::Validated {
                generation,
                result: Err(reason),
            })
        };
        let Some(s) = &mut self.mcrouter else {
            return reject("no validator".into());
        };
        let Some(argv) = &s.settings.validator else {
            return reject("no validator".into());
        };
        let candidate = match self.pairs[n].pair.output.prepare(bytes) {
            Ok(c) => c,
            Err(e) => return reject(e.to_string()),
        };
        let mut args = argv[1..].to_vec();
        args.extend(["-f".into(), candidate.path.to_string_lossy().into_owned()]);
        match supervise::spawn_helper(&argv[0], &args) {
            Ok((pid, stderr)) => {
                tracing::debug!(pid, candidate = %candidate.path.display(), "validating");
                super::stderr::first_reason(pid, stderr, self.validators_said.0.clone());
                s.validation = Some(Validation {
                    generation,
                    candidate,
                    pid: Some(pid),
                    spawned: pid,
                    exit: None,
                    said: None,
                });
                None
            }
            Err(e) => {
                candidate.discard();
                reject(format!("cannot run {}: {e}", argv[0]))
            }
        }
    }

    /// Validator `pid` ended with `exit`, if it is the one validating; the verdict follows once
    /// its stderr has closed too.
    pub(super) fn validator_exited(&mut self, pid: i32, exit: Exit) -> Result<bool, Error> {
        // Not yet reaped: a pid reused after the reap is some orphan's.
        let Some(v) = self.validation_of(pid).filter(|v| v.pid == Some(pid)) else {
            return Ok(false);
        };
        v.pid = None;
        v.exit = Some(exit);
        self.conclude_validation()?;
        Ok(true)
    }

    /// Validator `pid`'s stderr closed after giving `reason`.
    pub(super) fn validator_said(
        &mut self,
        pid: i32,
        reason: Option<String>,
    ) -> Result<Option<u8>, Error> {
        if let Some(v) = self.validation_of(pid) {
            v.said = Some(reason);
            self.conclude_validation()?;
        }
        Ok(None)
    }

    fn validation_of(&mut self, pid: i32) -> Option<&mut Validation> {
        let s = self.mcrouter.as_mut()?;
        s.validation.as_mut().filter(|v| v.spawned == pid)
    }

    /// Give the engine the verdict once the validator has both ended and closed its stderr. A
    /// validator whose stderr stays open (a child of its own holds it) is ended by
    /// `--validate-timeout`.
    fn conclude_validation(&mut self) -> Result<(), Error> {
        let Some(v) = self.mcrouter.as_mut().and_then(|s| s.validation.as_mut()) else {
            return Ok(());
        };
        let (Some(exit), Some(said)) = (v.exit, &v.said) else {
            return Ok(());
        };
        let said = said.clone();
        let generation = v.generation;
        let result = match (exit, said) {
            (Exit::Code(0), _) => Ok(()),
            (other, Some(reason)) => Err(format!("{reason} (exit status {})", other.code())),
            (other, None) => Err(format!("exit status {}", other.code())),
        };
        self.feed(0, Event::Validated { generation, result })
    }

    /// Stop the validator if it still runs; install the candidate or discard it.
    pub(super) fn end_validation(
        &mut self,
        n: usize,
        generation: u64,
        install: bool,
    ) -> Option<Event> {
        let s = self.mcrouter.as_mut()?;
        let mut v = s.validation.take_if(|v| v.generation == generation)?;
        v.stop();
        if !install {
            v.candidate.discard();
            return None;
        }
        let result = self.pairs[n].pair.output.install(v.candidate);
        Some(Event::Wrote {
            generation,
            result: result.map(super::wrote).map_err(|e| e.to_string()),
        })
    }
}
