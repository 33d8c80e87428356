//! `--warm-up`, as the engine runs it: a render that changes a pool's servers is not written
//! at once but through three phases — the first bracket, the warm-up, the last bracket — and
//! then the plain config, each phase a write that mcrouter confirms like any other.
//!
//! Owns when a warm-up starts (a change of some pool's servers, once the old servers were
//! probed), how long each phase lasts (a bracket: the skew between replicas that resolve and
//! reload on their own; the warm-up: `--warm-up`), counting from the phase's confirmation (or
//! its write, where nothing confirms), what a rejected phase does (the warm-up is abandoned and
//! the plain config written), and that a change which comes meanwhile waits for the end. Which
//! slots are warmed and the phase configs are [`crate::warmup`]'s.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::publish::Kind;
use super::queries::refresh_after;
use super::{Action, ChildPhase, Config, Engine, Report, md5_hex};
use crate::template::Rendered;
use crate::warmup::{self, Phase, Plan, routes};

/// `--warm-up`'s settings (checked by `settings`).
#[derive(Clone, Debug)]
pub struct WarmUpSettings {
    /// How long the warm-up phase lasts.
    pub duration: Duration,
    /// The exptime of the copies a read makes from the old list (`--warm-up-ttl`).
    pub copy_ttl: Duration,
    /// What two replicas' reloads of one change may differ by beside their DNS refresh:
    /// mcrouter's reload window and one DNS lookup with its retries.
    pub allowance: Duration,
}

/// Where a warm-up stands.
#[derive(Debug)]
pub(super) enum Warming {
    Off,
    /// The old servers of the changed pools are being asked whether they answer.
    Probing {
        from: Config,
        target: Config,
    },
    Under(Box<Under>),
}

/// A warm-up under way: from the config `from` to the plain render `target`.
#[derive(Debug)]
pub(super) struct Under {
    plan: Arc<Plan>,
    from: Config,
    target: Config,
    phase: Phase,
    /// The md5 of the phase's config.
    md5: String,
    /// How long each bracket lasts.
    bracket: Duration,
    /// When the phase ends; `None` until its config is confirmed (or written).
    until: Option<Instant>,
    /// A change came meanwhile (said once).
    waiting: bool,
}

/// A warmed pool, for reports and `/status`: its name, which side's slots are counted, and
/// the slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WarmedPool {
    pub pool: String,
    pub side: &'static str,
    pub slots: Vec<usize>,
}

/// Where a warm-up stands, for `/status` and the metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WarmStatus {
    /// `probing`, `first_bracket`, `warm_up`, `last_bracket`.
    pub phase: &'static str,
    pub pools: Vec<WarmedPool>,
    /// Until the phase ends; `None` while its config awaits confirmation.
    pub left: Option<Duration>,
}

fn warmed(plan: &Plan) -> Vec<WarmedPool> {
    plan.pools
        .iter()
        .filter(|p| !p.warmed().is_empty())
        .map(|p| WarmedPool {
            pool: p.pool.clone(),
            side: p.side(),
            slots: p.warmed(),
        })
        .collect()
}

impl Engine {
    /// A warm-up is under way (or its probe): changes wait for its end.
    pub(super) fn warming(&self) -> bool {
        !matches!(self.warm, Warming::Off)
    }

    /// A new render `target`: when `--warm-up` is on and it changes some pool's servers, start
    /// a warm-up (the old servers are probed first) and return true; else false (it is written
    /// as is).
    pub(super) fn warm_up(&mut self, target: &Config, now: Instant) -> bool {
        let (Some(_), Some(from)) = (&self.s.warm_up, &self.current) else {
            return false;
        };
        if self.no_warm.as_ref() == Some(&target.md5) {
            return false;
        }
        let changed = target.rendered.pools.iter().any(|(label, new)| {
            from.rendered
                .pools
                .get(label)
                .is_some_and(|old| old.servers != new.servers)
        });
        if !changed {
            return false;
        }
        let servers = warmup::old_servers(&from.rendered, &target.rendered);
        self.warm = Warming::Probing {
            from: from.clone(),
            target: target.clone(),
        };
        match servers.is_empty() {
            true => self.probed(HashSet::new(), now),
            false => self.out.push(Action::Probe { servers }),
        }
        true
    }

    /// The old servers that answered: plan, and write the first bracket (or, when nothing
    /// can be warmed, the plain config).
    pub(super) fn probed(&mut self, alive: HashSet<String>, now: Instant) {
        let Warming::Probing { from, target } = std::mem::replace(&mut self.warm, Warming::Off)
        else {
            return;
        };
        let plan = warmup::plan(&from.rendered, &target.rendered, &alive);
        if !plan.warms() {
            let mut skipped = plan.skipped;
            for p in &plan.pools {
                skipped.push((
                    p.pool.clone(),
                    "none of its changed slots' old servers answered".into(),
                ));
            }
            self.out
                .push(Action::Report(Report::WarmUpSkipped { skipped }));
            return self.submit(target, Kind::Render, now);
        }
        let bracket = self.bracket();
        let duration = self
            .s
            .warm_up
            .as_ref()
            .map(|w| w.duration)
            .unwrap_or_default();
        let plan = Arc::new(plan);
        match self.phase_config(&plan, &from, &target, Phase::FirstBracket) {
            Ok(config) => {
                self.out.push(Action::Report(Report::WarmUpStarted {
                    pools: warmed(&plan),
                    skipped: plan.skipped.clone(),
                    bracket,
                    duration,
                }));
                self.warm = Warming::Under(Box::new(Under {
                    plan,
                    from,
                    md5: config.md5.clone(),
                    target,
                    phase: Phase::FirstBracket,
                    bracket,
                    until: None,
                    waiting: false,
                }));
                self.submit(config, Kind::Phase(Phase::FirstBracket), now);
            }
            Err(why) => {
                let skipped = vec![("*".to_string(), why)];
                self.out
                    .push(Action::Report(Report::WarmUpSkipped { skipped }));
                self.submit(target, Kind::Render, now);
            }
        }
    }

    /// A bracket's length: the longest a replica that resolves on its own can be behind (the
    /// longest refresh of a token in force, its jitter included) plus the allowance.
    fn bracket(&self) -> Duration {
        let r = &self.s.refresh;
        let refresh = self
            .states
            .values()
            .filter_map(|s| s.good.as_ref())
            .map(|a| refresh_after(a.ttl(), r.min_refresh, r.max_refresh, 1.0))
            .max()
            .unwrap_or_else(|| refresh_after(0, r.min_refresh, r.max_refresh, 1.0));
        let allowance = self
            .s
            .warm_up
            .as_ref()
            .map(|w| w.allowance)
            .unwrap_or_default();
        refresh + allowance
    }

    /// The config of `phase` for the change `from` → `target`.
    fn phase_config(
        &mut self,
        plan: &Plan,
        from: &Config,
        target: &Config,
        phase: Phase,
    ) -> Result<Config, String> {
        let parse = |c: &Config| {
            serde_json::from_slice::<serde_json::Value>(&c.rendered.bytes)
                .map_err(|e| format!("cannot read a rendered config back: {e}"))
        };
        let ttl = self.s.warm_up.as_ref().map_or(0, |w| w.copy_ttl.as_secs());
        let config = routes::phase_config(&parse(target)?, &parse(from)?, plan, phase, ttl)?;
        let bytes = routes::bytes(&config);
        self.generation += 1;
        Ok(Config {
            generation: self.generation,
            md5: md5_hex(&bytes),
            rendered: Arc::new(Rendered {
                bytes,
                pools: target.rendered.pools.clone(),
                notes: Vec::new(),
            }),
        })
    }

    /// A phase's config was written: its time runs from now when nothing will confirm it
    /// (`watch`, no admin port, no mcrouter running); else from its confirmation.
    pub(super) fn phase_written(&mut self, now: Instant) {
        let confirms = self.confirm.is_some() && matches!(self.child, ChildPhase::Running);
        if !confirms {
            self.phase_runs(None, now);
        }
    }

    /// mcrouter runs `md5` (or could not tell by the deadline): if it is the phase's config,
    /// the phase's time starts.
    pub(super) fn phase_runs(&mut self, md5: Option<&str>, now: Instant) {
        let duration = self
            .s
            .warm_up
            .as_ref()
            .map(|w| w.duration)
            .unwrap_or_default();
        let Warming::Under(u) = &mut self.warm else {
            return;
        };
        if u.until.is_some() || md5.is_some_and(|m| m != u.md5) {
            return;
        }
        let lasts = match u.phase {
            Phase::WarmUp => duration,
            Phase::FirstBracket | Phase::LastBracket => u.bracket,
        };
        u.until = Some(now + lasts);
        let phase = u.phase.name();
        self.out
            .push(Action::Report(Report::WarmUpTimer { phase, lasts }));
    }

    /// Time passed: the phase's end writes the next phase, or the plain config after the last.
    pub(super) fn warm_tick(&mut self, now: Instant) {
        let Warming::Under(u) = &self.warm else {
            return;
        };
        if u.until.is_none_or(|t| t > now) || !self.idle() {
            return;
        }
        let Warming::Under(mut u) = std::mem::replace(&mut self.warm, Warming::Off) else {
            unreachable!("matched above")
        };
        match u.phase.next() {
            Some(next) => match self.phase_config(&u.plan, &u.from, &u.target, next) {
                Ok(config) => {
                    u.phase = next;
                    u.md5 = config.md5.clone();
                    u.until = None;
                    self.warm = Warming::Under(u);
                    self.submit(config, Kind::Phase(next), now);
                }
                Err(why) => self.abandon(*u, why, now),
            },
            None => {
                let pools = warmed(&u.plan).into_iter().map(|p| p.pool).collect();
                self.out
                    .push(Action::Report(Report::WarmUpFinished { pools }));
                self.finish(*u, now);
            }
        }
    }

    /// Write the plain config the warm-up led to; its pool changes are reported from the
    /// config the warm-up started from.
    fn finish(&mut self, u: Under, now: Instant) {
        let mut target = u.target;
        self.generation += 1;
        target.generation = self.generation;
        self.report_from = Some(u.from.rendered);
        self.submit(target, Kind::Render, now);
    }

    fn abandon(&mut self, u: Under, reason: String, now: Instant) {
        self.out
            .push(Action::Report(Report::WarmUpAbandoned { reason }));
        self.no_warm = Some(u.target.md5.clone());
        self.finish(u, now);
    }

    /// A phase's config was rejected (by mcrouter or the validator): the warm-up is abandoned;
    /// the plain config is written at the next chance, without a warm-up.
    pub(super) fn warm_up_failed(&mut self, reason: &str) {
        let target = match std::mem::replace(&mut self.warm, Warming::Off) {
            Warming::Under(u) => u.target,
            Warming::Probing { target, .. } => target,
            Warming::Off => return,
        };
        self.out.push(Action::Report(Report::WarmUpAbandoned {
            reason: reason.to_string(),
        }));
        self.no_warm = Some(target.md5);
        self.due.render = true;
    }

    /// Whether `md5` is the config of the warm-up's current phase.
    pub(super) fn is_phase(&self, md5: &str) -> bool {
        matches!(&self.warm, Warming::Under(u) if u.md5 == md5)
    }

    /// A change is due while a warm-up runs: say once that it waits.
    pub(super) fn note_waiting(&mut self) {
        if let Warming::Under(u) = &mut self.warm
            && !u.waiting
        {
            u.waiting = true;
            self.out.push(Action::Report(Report::WarmUpDeferring {
                phase: u.phase.name(),
            }));
        }
    }

    pub(super) fn warm_wake(&self) -> Option<Instant> {
        match &self.warm {
            Warming::Under(u) => u.until,
            _ => None,
        }
    }

    /// Where a warm-up stands, if one is under way.
    pub(super) fn warm_status(&self, now: Instant) -> Option<WarmStatus> {
        match &self.warm {
            Warming::Off => None,
            Warming::Probing { .. } => Some(WarmStatus {
                phase: "probing",
                pools: Vec::new(),
                left: None,
            }),
            Warming::Under(u) => Some(WarmStatus {
                phase: u.phase.name(),
                pools: warmed(&u.plan),
                left: u.until.map(|t| t.saturating_duration_since(now)),
            }),
        }
    }
}
