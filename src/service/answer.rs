//! Answers to the HTTP endpoint (`--metrics-listen`), from the loop's own state: health,
//! readiness, the metrics and `/status`.
//!
//! Owns what "ready" means in each mode. The HTTP server relays questions here and waits, so a
//! wedged loop shows as a failing `/healthz`.

use super::Loop;
use tokio::time::Instant;

use crate::engine::PairStatus;
use crate::error::Error;
use crate::http::{self, Ask, Readiness};
use crate::supervise::Child;

impl Loop {
    /// Answer the HTTP endpoint from the loop's own state.
    pub(super) fn answer(&mut self, ask: Ask) -> Result<Option<u8>, Error> {
        // Health and readiness need no snapshot; metrics and /status take one per pair.
        let now = Instant::now().into_std();
        let statuses = || {
            let pairs = self.pairs.iter();
            pairs
                .map(|p| PairStatus {
                    template: &p.template,
                    output: &p.output.path,
                    status: p.engine.status(now),
                })
                .collect::<Vec<_>>()
        };
        let child = self.mcrouter.as_ref().map(|s| s.child);
        // A requester that gave up meanwhile is no concern of the loop's.
        match ask {
            Ask::Health(reply) => {
                let _ = reply.send(());
            }
            Ask::Ready(reply) => {
                let _ = reply.send(self.readiness());
            }
            Ask::Metrics(reply) => {
                let text = self
                    .metrics
                    .encode(&statuses(), child.as_ref().map(Child::state));
                let _ = reply.send(text);
            }
            Ask::Status(reply) => {
                let _ = reply.send(http::status_json(&statuses(), child.as_ref()));
            }
        }
        Ok(None)
    }

    /// Can this instance serve traffic? `watch`: once every output is written. `run`: once
    /// mcrouter has confirmed running a config mcw wrote, and while it answers on its admin
    /// port (without a port mcw cannot ask: once mcrouter runs). A rejected or unconfirmed
    /// later config does not count against it: mcrouter serves the previous one.
    fn readiness(&self) -> Readiness {
        let Some(s) = &self.mcrouter else {
            let Some(n) = self.pairs.iter().position(|p| !p.engine.written()) else {
                return Readiness::Ready;
            };
            return Readiness::NotReady(match self.named(n) {
                Some(output) => format!("no config written yet to {}", output.display()),
                None => "no config written yet".into(),
            });
        };
        match (s.child, self.admin) {
            (Child::Pending, _) => Readiness::NotReady(
                "mcrouter is not started yet: no config has been written".into(),
            ),
            (Child::Running { .. }, None) => Readiness::Ready,
            (Child::Running { .. }, Some(_)) if self.pairs[0].engine.runs_a_dump() => {
                Readiness::NotReady(
                    "mcrouter could not load the config file at startup and serves a copy it dumped in an earlier run, not mcw's config".into(),
                )
            }
            (Child::Running { .. }, Some(addr)) if self.pairs[0].engine.confirmed() => {
                Readiness::IfAnswers(addr)
            }
            (Child::Running { .. }, Some(_)) => Readiness::NotReady(
                "mcrouter has not yet confirmed running a config mcw wrote".into(),
            ),
            (Child::Stopping { .. } | Child::Killed { .. }, _) => {
                Readiness::NotReady("mcrouter is stopping".into())
            }
            (Child::Exited { .. }, _) => Readiness::NotReady("mcrouter has exited".into()),
        }
    }
}
