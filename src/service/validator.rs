//! `--validate`: the validator process, `mcrouter --validate-config=exit` on a candidate file
//! beside the output.
//!
//! Owns starting it on a candidate, stopping it, and installing or discarding the candidate
//! when the engine says the validation is over. Its exit status comes back through the one
//! `waitpid` (`supervise::reap`), by way of the child side of the loop.

use super::Loop;
use crate::engine::Event;
use crate::output::Candidate;
use crate::supervise::{self, signals};

pub(super) struct Validation {
    pub(super) generation: u64,
    candidate: Candidate,
    /// The validator's pid until it has been reaped.
    pub(super) pid: Option<i32>,
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
        let candidate = match self.pairs[n].output.prepare(bytes) {
            Ok(c) => c,
            Err(e) => return reject(e.to_string()),
        };
        let mut args = argv[1..].to_vec();
        args.extend(["-f".into(), candidate.path.to_string_lossy().into_owned()]);
        match supervise::spawn_quiet(&argv[0], &args) {
            Ok(pid) => {
                tracing::debug!(pid, candidate = %candidate.path.display(), "validating");
                s.validation = Some(Validation {
                    generation,
                    candidate,
                    pid: Some(pid),
                });
                None
            }
            Err(e) => {
                candidate.discard();
                reject(format!("cannot run {}: {e}", argv[0]))
            }
        }
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
        let result = self.pairs[n].output.install(v.candidate).map(|()| true);
        Some(Event::Wrote {
            generation,
            result: result.map_err(|e| e.to_string()),
        })
    }
}
