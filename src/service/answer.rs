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
use crate::supervise::{Child, Then};

impl Loop {
    /// Answer the HTTP endpoint from the loop's own state.
    pub(super) fn answer(&mut self, ask: Ask) -> Result<Option<u8>, Error> {
        // Health and readiness need no snapshot; metrics and /status take one per pair.
        let now = Instant::now().into_std();
        let statuses = || {
            let pairs = self.pairs.iter();
            pairs
                .map(|p| PairStatus {
                    template: &p.pair.template,
                    output: &p.pair.output.path,
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
                let supervised = self.mcrouter.as_ref().map(|m| {
                    let (restarts, last_restart, restart_in) =
                        self.restart_status().unwrap_or_default();
                    http::Supervised {
                        child: &m.child,
                        restarts,
                        last_restart,
                        restart_in,
                        held: m.held.as_ref().map(|h| h.addr),
                    }
                });
                let _ = reply.send(http::status_json(&statuses(), supervised));
            }
        }
        Ok(None)
    }

    /// Can this instance serve traffic? `watch`: once every output is written. `run`: once
    /// mcrouter has confirmed running a config mcw wrote, and while it answers on its admin
    /// port (without a port mcw cannot ask: once mcrouter runs). A rejected or unconfirmed
    /// later config does not count against it: mcrouter serves the previous one. After a
    /// restart, the new mcrouter must confirm again.
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
        let engine = &self.pairs[0].engine;
        match (s.child, self.admin) {
            (Child::Pending, _) if s.restarted > 0 => Readiness::NotReady(
                "mcrouter is being restarted: waiting for its config to be on disk".into(),
            ),
            (Child::Pending, _) => Readiness::NotReady(
                "mcrouter is not started yet: no config has been written".into(),
            ),
            (Child::Running { .. }, None) => Readiness::Ready,
            (Child::Running { .. }, Some(_)) if engine.runs_a_dump() => Readiness::NotReady(
                "mcrouter could not load the config file at startup and serves a copy it dumped in an earlier run, not mcw's config".into(),
            ),
            (Child::Running { .. }, Some(addr)) if engine.confirmed() => {
                Readiness::IfAnswers(addr)
            }
            (Child::Running { .. }, Some(_)) => Readiness::NotReady(
                "mcrouter has not yet confirmed running a config mcw wrote".into(),
            ),
            (
                Child::Stopping {
                    then: Then::Restart(reason),
                    ..
                },
                _,
            ) => Readiness::NotReady(format!("mcrouter is restarting ({})", reason.label())),
            (Child::Stopping { .. } | Child::Killed { .. }, _) => {
                Readiness::NotReady("mcrouter is stopping".into())
            }
            (Child::Backoff { at, code, .. }, _) => Readiness::NotReady(format!(
                "mcrouter exited with status {code}; restarting it in {:.1}s",
                at.saturating_duration_since(Instant::now()).as_secs_f64()
            )),
            (Child::Exited { .. }, _) => Readiness::NotReady("mcrouter has exited".into()),
        }
    }

    /// Whether this instance serves mcw's config, as far as mcw knows without asking
    /// mcrouter again (what systemd is told with `READY=1`).
    pub(super) fn serving(&self) -> bool {
        !matches!(self.readiness(), Readiness::NotReady(_))
    }

    /// The state in a few words, for systemd's `STATUS=`.
    pub(super) fn status_line(&self) -> String {
        let now = Instant::now().into_std();
        let first = self.pairs[0].engine.status(now);
        let short = |md5: &Option<String>| {
            md5.as_deref()
                .map_or_else(|| "none".to_string(), |m| m.chars().take(8).collect())
        };
        let servers: usize = first.pools.values().map(Vec::len).sum();
        let config = format!(
            "config {} ({} pools, {servers} servers)",
            short(&first.written_md5),
            first.pools.len()
        );
        if first.written_md5.is_none() {
            let waiting = first.tokens.iter().filter(|t| t.servers.is_empty()).count();
            return format!(
                "waiting for DNS: {waiting} of {} tokens unanswered",
                first.tokens.len()
            );
        }
        let Some(m) = &self.mcrouter else {
            return match self.pairs.len() {
                1 => format!("wrote {config}"),
                n => format!("keeping {n} configs current"),
            };
        };
        match m.child {
            Child::Backoff { at, code, .. } => format!(
                "mcrouter exited with status {code}; restarting it in {}s",
                at.saturating_duration_since(Instant::now()).as_secs()
            ),
            Child::Stopping {
                then: Then::Restart(_),
                ..
            } => "restarting mcrouter".into(),
            Child::Stopping { .. } | Child::Killed { .. } => "stopping mcrouter".into(),
            Child::Running { .. } if first.in_sync => format!("mcrouter runs {config}"),
            Child::Running { .. } => format!("wrote {config}; mcrouter has not confirmed it yet"),
            Child::Pending | Child::Exited { .. } => format!("wrote {config}"),
        }
    }
}
