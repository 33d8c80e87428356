//! `--validate`, as the engine sees it: a new render is validated before it is written; the
//! validator's verdict (or its deadline) installs the candidate or discards it and blocks its
//! bytes. Running the validator, and the candidate file, are the caller's.

use std::time::Instant;

use super::publish::{Kind, Work};
use super::{Action, Engine, Report, Startup};

impl Engine {
    pub(super) fn validated(&mut self, generation: u64, result: Result<(), String>) {
        let is_current = matches!(&self.work,
            Work::Validating { config, .. } if config.generation == generation);
        if !is_current {
            return;
        }
        match result {
            Ok(()) => {
                if let Work::Validating { config, kind, .. } =
                    std::mem::replace(&mut self.work, Work::Idle)
                {
                    self.work = Work::Writing { config, kind };
                }
                self.out.push(Action::EndValidation {
                    generation,
                    install: true,
                });
            }
            Err(reason) => self.validation_failed(reason),
        }
    }

    /// The validation's deadline passed: the validator is killed and its candidate rejected.
    pub(super) fn validation_timed_out(&mut self, now: Instant) {
        if let Work::Validating { deadline, .. } = &self.work
            && *deadline <= now
        {
            let timeout = self
                .s
                .supervision
                .as_ref()
                .and_then(|s| s.validate_timeout)
                .unwrap_or_default();
            self.validation_failed(format!("timed out after {timeout:?}; killed"));
        }
    }

    /// The candidate in validation is rejected (by the validator, or by its timeout): discard
    /// it and do not write those bytes again until the render changes (or SIGHUP).
    fn validation_failed(&mut self, reason: String) {
        let Work::Validating { config, kind, .. } = std::mem::replace(&mut self.work, Work::Idle)
        else {
            return;
        };
        if let Kind::Phase(_) = kind {
            self.warm_up_failed("mcrouter --validate-config rejected a phase's config");
        }
        let generation = config.generation;
        self.out.push(Action::EndValidation {
            generation,
            install: false,
        });
        if let Startup::Waiting { problem, .. } = &mut self.startup {
            *problem = Some(format!("mcrouter --validate-config rejected it: {reason}"));
        }
        self.out.push(Action::Report(Report::ValidatorRejected {
            generation,
            reason,
        }));
        self.reloads.rejected(&config.md5);
        self.rejected = Some(config.md5);
    }
}
