//! What the engine knows as of one moment, for `/status`, `/readyz` and the metrics.
//!
//! Owns the snapshot types and how the engine fills them (each token in template order with
//! its last answer, each pool's servers, the md5 written and what mcrouter runs). Reading only:
//! nothing here changes the engine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Confirmer, Engine, Observed, WarmStatus};
use crate::dns::{Answer, Failure};
use crate::template;

/// What the engine knows, as of one moment: for `/status`, `/readyz` and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Each distinct token of the template in force, in template order.
    pub tokens: Vec<TokenStatus>,
    /// Each pool's servers in the config the output holds.
    pub pools: BTreeMap<String, Vec<String>>,
    /// md5 of the output, as this process last wrote (or found) it; `None` before the first.
    pub written_md5: Option<String>,
    /// mcrouter's last answer: the md5 it runs (or why mcw cannot tell), and its failures.
    pub running: Option<Observed>,
    /// mcrouter has reported running a config mcw wrote (`run` mode with an admin port).
    pub confirmed: bool,
    /// Why mcrouter's most recent failed load failed, as its log said.
    pub last_failure: Option<String>,
    /// Where the latest write stands with mcrouter: `not started`, `awaiting`,
    /// `not reloaded yet`, `settled` (confirmed or rejected); `None` without confirmation.
    pub reload: Option<&'static str>,
    /// mcrouter was last seen running exactly what the output holds.
    pub in_sync: bool,
    /// Time since a config was last rendered, and since the output was last written.
    pub since_render: Option<Duration>,
    pub since_write: Option<Duration>,
    /// `run`: where mcrouter stands as the engine sees it (`waiting for its config`,
    /// `starting`, `running`, `down`); `None` in `watch`.
    pub child: Option<&'static str>,
    /// A failed write waits to be tried again: what it was (`render`, `restore`, `repair`,
    /// `reoffer`, `warm-up phase`).
    pub retrying: Option<&'static str>,
    /// A warm-up under way (`--warm-up`).
    pub warm_up: Option<WarmStatus>,
    /// Whether the latest attempt to put a template edit or DNS change in force worked;
    /// `None` before the first.
    pub last_reload_ok: Option<bool>,
    /// Time since one last did.
    pub since_reload_success: Option<Duration>,
}

/// One token's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenStatus {
    /// As written in the template.
    pub token: String,
    /// The DNS question it asks.
    pub query: String,
    /// The servers of its last good answer.
    pub servers: Vec<String>,
    pub ttl: Option<u32>,
    /// Age of the last good answer.
    pub age: Option<Duration>,
    /// Why the latest lookup failed, while it does.
    pub error: Option<String>,
    /// The latest lookup failed and the last good answer stands in.
    pub last_good_in_use: bool,
    /// Servers DNS no longer lists that keep their slot (`--hold-removed`).
    pub held: Vec<String>,
}

/// One template/output pair's state, as the event loop hands it to `/status` and the metrics.
pub struct PairStatus<'a> {
    pub template: &'a Path,
    pub output: &'a Path,
    pub status: Status,
}

impl Engine {
    /// mcrouter was last seen running a config it dumped in an earlier run, having failed to
    /// load the file at startup.
    pub fn runs_a_dump(&self) -> bool {
        self.confirm.as_ref().is_some_and(Confirmer::runs_a_dump)
    }

    /// Whether mcrouter was last seen running exactly what the output holds.
    pub fn in_sync(&self) -> bool {
        let running = self.confirm.as_ref().and_then(|c| c.last()?.md5());
        if self.runs_a_dump() {
            return false;
        }
        matches!((&self.current, running), (Some(c), Some(r)) if c.md5 == r)
    }

    /// A config has been written (or found on disk) since start.
    pub fn written(&self) -> bool {
        self.current.is_some()
    }

    /// mcrouter has reported running a config mcw wrote (`run` mode with an admin port).
    pub fn confirmed(&self) -> bool {
        self.confirm.as_ref().is_some_and(Confirmer::seen_ours)
    }

    /// Nothing is under way: no lookup in flight, no render due, no write or validation in
    /// progress, no write awaiting mcrouter's word before its deadline (what a reload waits
    /// for before systemd hears it is done).
    pub fn settled(&self) -> bool {
        let asking = self.states.values().any(|s| s.in_flight);
        let awaiting = self.confirm.as_ref().is_some_and(Confirmer::awaiting);
        !asking && !self.due.render && !self.busy() && !awaiting
    }

    /// The state as of `now`.
    pub fn status(&self, now: Instant) -> Status {
        let mut seen = BTreeSet::new();
        let tokens = self
            .template
            .sites()
            .filter(|site| seen.insert(site.text.as_str()))
            .filter_map(|site| {
                let state = self.states.get(&site.token.query)?;
                let servers = state.good.as_ref().map_or_else(Vec::new, |a| {
                    template::render::expand(&site.token, a)
                        .into_iter()
                        .map(|s| s.entry)
                        .collect()
                });
                Some(TokenStatus {
                    token: site.text.clone(),
                    query: site.token.query.to_string(),
                    servers,
                    ttl: state.good.as_ref().map(Answer::ttl),
                    age: state.answered.map(|t| now.saturating_duration_since(t)),
                    error: state.failure.as_ref().map(Failure::to_string),
                    last_good_in_use: state.failure.is_some() && state.good.is_some(),
                    held: state.held.iter().map(|(m, _)| m.to_string()).collect(),
                })
            })
            .collect();
        let since = |t: Option<Instant>| t.map(|t| now.saturating_duration_since(t));
        let (last_reload_ok, since_reload_success) = self.reloads.last(now);
        Status {
            tokens,
            pools: self
                .current
                .as_ref()
                .map(|c| {
                    let pools = c.rendered.pools.iter();
                    pools.map(|(l, p)| (l.clone(), p.servers.clone())).collect()
                })
                .unwrap_or_default(),
            written_md5: self.current.as_ref().map(|c| c.md5.clone()),
            running: self.confirm.as_ref().and_then(|c| c.last().cloned()),
            confirmed: self.confirmed(),
            reload: self.confirm.as_ref().map(Confirmer::phase),
            last_failure: self
                .confirm
                .as_ref()
                .and_then(|c| c.last_reason().map(str::to_string)),
            in_sync: self.in_sync(),
            since_render: since(self.last_render),
            since_write: since(self.last_write),
            child: self.s.supervision.as_ref().map(|_| self.child_phase()),
            retrying: self.retrying(),
            warm_up: self.warm_status(now),
            last_reload_ok,
            since_reload_success,
        }
    }
}
