//! The long-running render engine shared by `watch` and `run`.
//!
//! Owns the state between renders: the current template, each query's last good answer and
//! when it is next due, and the bytes the output holds. Events come in as method calls
//! (lookups finished, template changed, timer fired); what comes out is the file on disk, plus
//! the bytes of each new write ([`Engine::take_written`], for confirmation) or a candidate
//! waiting for validation ([`Engine::candidate_path`]). DNS lookups are *not* awaited here: the caller spawns
//! [`Engine::lookup`] and feeds the results back through [`Engine::apply`], so its loop stays
//! responsive to signals while DNS is slow. It never writes a config with a missing or
//! degraded token: a failing token keeps its last good answer.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;

use crate::app::{AppError, FailedToken};
use crate::output::{Candidate, OutputSpec};
use crate::prefix;
use crate::resolve::{self, Answer, Dns, Failure};
use crate::template::{self, Query, Rendered, Template};

/// Settings of the engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub template: PathBuf,
    pub output: OutputSpec,
    pub min_refresh: Duration,
    pub max_refresh: Duration,
    pub allow_empty: bool,
    /// In `run` mode, the normalised routing prefix every template must have an alias for.
    pub route_prefix: Option<String>,
    /// Hold each new config as a candidate until [`Engine::candidate_verdict`] (`--validate`).
    pub validate: bool,
}

/// Results of one batch of lookups.
pub type Lookups = HashMap<Query, Result<Answer, Failure>>;

#[derive(Debug)]
struct QueryState {
    good: Option<Answer>,
    failure: Option<Failure>,
    due: Instant,
    in_flight: bool,
}

impl QueryState {
    fn due_now() -> QueryState {
        QueryState {
            good: None,
            failure: None,
            due: Instant::now(),
            in_flight: false,
        }
    }
}

pub struct Engine {
    cfg: EngineConfig,
    dns: Dns,
    template: Template,
    /// The template text last read, good or not, so an unchanged file costs no parse.
    seen_text: String,
    states: HashMap<Query, QueryState>,
    /// What the output holds, as this process last rendered it.
    current: Option<Rendered>,
    /// The last config mcrouter confirmed it runs (`run` mode).
    confirmed: Option<Rendered>,
    /// Bytes mcrouter rejected: not written again until the render changes.
    rejected: Option<Vec<u8>>,
    /// Bytes written and not yet handed to the caller for confirmation.
    fresh: Option<Vec<u8>>,
    /// A config waiting for validation (`--validate`), one at a time.
    candidate: Option<(Candidate, Rendered)>,
    /// The template changed since the last render.
    template_dirty: bool,
    write_retry: Option<Instant>,
    template_check: Instant,
    generation: u64,
    rng: u64,
}

/// When to ask again after an answer with `ttl`: the TTL clamped to `[min, max]`, plus up to
/// 10 % so replicas and tokens do not ask in lock-step. `jitter` is in `[0, 1)`.
pub fn refresh_after(ttl: u32, min: Duration, max: Duration, jitter: f64) -> Duration {
    let base = Duration::from_secs(u64::from(ttl)).clamp(min, max.max(min));
    base + base.mul_f64(0.1 * jitter.clamp(0.0, 1.0))
}

impl Engine {
    /// Load the template; every query is due at once.
    /// A template whose routes lack the `run` mode's routing prefix is a usage error: the fix
    /// is `-R` or the template, and mcrouter would fail on it.
    pub fn new(cfg: EngineConfig, dns: Dns) -> Result<Engine, AppError> {
        let seen_text = Template::read(&cfg.template)?;
        let template = Template::parse(&cfg.template, &seen_text)?;
        if let Some(p) = &cfg.route_prefix
            && let Err(e) = prefix::check_aliases(template.value(), p)
        {
            let path = cfg.template.display();
            return Err(AppError::Usage(format!("template {path}: {e}")));
        }
        let states = template
            .queries()
            .into_iter()
            .map(|q| (q, QueryState::due_now()))
            .collect();
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32);
        Ok(Engine {
            template_check: Instant::now() + cfg.max_refresh,
            cfg,
            dns,
            template,
            seen_text,
            states,
            current: None,
            confirmed: None,
            rejected: None,
            fresh: None,
            candidate: None,
            template_dirty: false,
            write_retry: None,
            generation: 0,
            rng: seed | 1,
        })
    }

    pub fn output(&self) -> &OutputSpec {
        &self.cfg.output
    }

    /// Whether a complete config has been written (or found already on disk).
    pub fn has_output(&self) -> bool {
        self.current.is_some()
    }

    /// The earliest moment something is due: a lookup, a write retry, or the periodic re-read
    /// of the template (a safety net for filesystems without inotify).
    pub fn next_wake(&self) -> Instant {
        let lookups = self.states.values().filter(|s| !s.in_flight).map(|s| s.due);
        lookups
            .chain(self.write_retry)
            .chain(std::iter::once(self.template_check))
            .min()
            .unwrap_or(self.template_check)
    }

    /// Queries due at `now`, marked in flight.
    pub fn take_due(&mut self, now: Instant) -> Vec<Query> {
        self.take(|s| s.due <= now)
    }

    /// Every query not already in flight (SIGHUP, template change).
    pub fn take_all(&mut self) -> Vec<Query> {
        self.take(|_| true)
    }

    fn take(&mut self, pick: impl Fn(&QueryState) -> bool) -> Vec<Query> {
        let mut out = Vec::new();
        for (q, s) in &mut self.states {
            if !s.in_flight && pick(s) {
                s.in_flight = true;
                out.push(q.clone());
            }
        }
        out
    }

    /// A lookup of `queries`, to be spawned by the caller.
    pub fn lookup(&self, queries: Vec<Query>) -> impl Future<Output = Lookups> + Send + 'static {
        let dns = self.dns.clone();
        async move { dns.resolve_all(queries).await }
    }

    /// Record the results of a lookup, then render and write if that changed anything. An
    /// answer with the same records as before (only its TTL differs) costs no render.
    pub fn apply(&mut self, results: Lookups) {
        let now = Instant::now();
        let mut changed = std::mem::take(&mut self.template_dirty) || self.current.is_none();
        for (query, result) in results {
            let result = match self.cfg.allow_empty {
                true => resolve::allowing_empty(&query, result),
                false => result,
            };
            let jitter = self.jitter();
            // A query dropped from the template while its lookup ran: nothing to record.
            let Some(state) = self.states.get_mut(&query) else {
                continue;
            };
            state.in_flight = false;
            match result {
                Ok(answer) => {
                    if state.failure.take().is_some() && state.good.is_some() {
                        let token = token_text(&self.template, &query);
                        tracing::info!(token, "DNS answers again");
                    }
                    state.due = now
                        + refresh_after(
                            answer.ttl(),
                            self.cfg.min_refresh,
                            self.cfg.max_refresh,
                            jitter,
                        );
                    tracing::debug!(token = %query, ttl = answer.ttl(), "lookup done");
                    changed |= state
                        .good
                        .as_ref()
                        .is_none_or(|g| g.records() != answer.records());
                    state.good = Some(answer);
                }
                Err(failure) => {
                    if state.failure.as_ref() != Some(&failure) {
                        let token = token_text(&self.template, &query);
                        match state.good {
                            Some(_) => {
                                tracing::warn!(token, reason = %failure, "DNS lookup failed; keeping the last good answer")
                            }
                            None => {
                                tracing::warn!(token, reason = %failure, "DNS lookup failed; nothing to write until it answers")
                            }
                        }
                    }
                    state.failure = Some(failure);
                    state.due = now + self.cfg.min_refresh;
                }
            }
        }
        if changed {
            self.publish();
        }
    }

    /// The timer fired: retry a failed write and re-read the template when those are due.
    /// Returns whether a new template is in force (the caller then re-resolves everything).
    /// Lookups due now are taken separately with [`Engine::take_due`].
    pub fn on_timer(&mut self, now: Instant) -> bool {
        if self.write_retry.is_some_and(|t| t <= now) {
            self.write_retry = None;
            self.publish();
        }
        if self.template_check > now {
            return false;
        }
        self.template_check = now + self.cfg.max_refresh;
        self.reload_template()
    }

    /// Re-read the template. Returns true when a new, valid template replaced the old one (the
    /// caller then re-resolves everything with [`Engine::take_all`]). A broken edit is logged
    /// with file:line:col and the last good template stays in force.
    pub fn reload_template(&mut self) -> bool {
        let path = &self.cfg.template;
        let text = match Template::read(path) {
            Ok(text) => text,
            Err(e) => {
                tracing::warn!(reason = %e, "keeping the last good config");
                return false;
            }
        };
        if text == self.seen_text {
            return false;
        }
        self.seen_text = text;
        match Template::parse(path, &self.seen_text) {
            Err(e) => {
                tracing::error!(template = %path.display(), reason = %e, "template edit rejected; keeping the last good config");
                false
            }
            Ok(template) => {
                if let Some(p) = &self.cfg.route_prefix
                    && let Err(e) = prefix::check_aliases(template.value(), p)
                {
                    tracing::error!(template = %path.display(), reason = %e, "template edit rejected; keeping the last good config");
                    return false;
                }
                let queries = template.queries();
                self.states.retain(|q, _| queries.contains(q));
                for q in queries {
                    self.states.entry(q).or_insert_with(QueryState::due_now);
                }
                tracing::info!(template = %path.display(), tokens = template.sites().count(), "template changed");
                self.template = template;
                self.template_dirty = true;
                true
            }
        }
    }

    /// The bytes of the latest write, once.
    pub fn take_written(&mut self) -> Option<Vec<u8>> {
        self.fresh.take()
    }

    /// Whether mcrouter confirmed it runs what the output holds.
    pub fn is_confirmed(&self) -> bool {
        matches!((&self.current, &self.confirmed), (Some(c), Some(k)) if c.bytes == k.bytes)
    }

    /// mcrouter runs `bytes`.
    pub fn confirmed(&mut self, bytes: &[u8]) {
        if let Some(current) = self.current.as_ref().filter(|c| c.bytes == bytes) {
            self.confirmed = Some(current.clone());
            self.rejected = None;
        }
    }

    /// mcrouter rejected `bytes` and still runs the previous config: write the last confirmed
    /// bytes back so the file matches what runs. Returns whether the file was restored.
    pub fn rejected(&mut self, bytes: &[u8]) -> bool {
        self.rejected = Some(bytes.to_vec());
        let Some(confirmed) = self.confirmed.clone() else {
            return false;
        };
        if self.current.as_ref().is_some_and(|c| c.bytes != bytes) {
            // A newer config was written meanwhile; it gets its own verdict.
            return false;
        }
        match self.cfg.output.replace(&confirmed.bytes) {
            Ok(()) => {
                self.current = Some(confirmed);
                true
            }
            Err(e) => {
                tracing::error!(output = %self.cfg.output.path.display(), reason = %e, "cannot restore the last confirmed config");
                false
            }
        }
    }

    /// Tokens that have never had an answer, with the latest reason.
    pub fn missing(&self) -> Vec<FailedToken> {
        self.template
            .sites()
            .filter_map(|site| {
                let state = self.states.get(&site.token.query)?;
                if state.good.is_some() {
                    return None;
                }
                Some(FailedToken {
                    pointer: site.pointer.clone(),
                    text: site.text.clone(),
                    failure: state
                        .failure
                        .clone()
                        .unwrap_or_else(|| Failure::Transient("no answer yet".into())),
                })
            })
            .collect()
    }

    /// Render from the last good answers and write if the bytes changed (with `--validate`,
    /// leave a candidate instead). Nothing is written while any token lacks an answer.
    fn publish(&mut self) {
        let mut answers = HashMap::with_capacity(self.states.len());
        for (q, s) in &self.states {
            match &s.good {
                Some(a) => answers.insert(q.clone(), a.clone()),
                None => return,
            };
        }
        let rendered = match template::render(&self.template, &answers) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(reason = %e, "render failed");
                return;
            }
        };
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.bytes == rendered.bytes)
        {
            return;
        }
        if self.rejected.as_ref() == Some(&rendered.bytes) {
            tracing::debug!("this render is the config mcrouter rejected; not writing it again");
            return;
        }
        if self.candidate.is_some() {
            // One candidate at a time; the verdict publishes again to catch up.
            return;
        }
        let output = &self.cfg.output;
        let on_disk = std::fs::read(&output.path).is_ok_and(|b| b == rendered.bytes);
        if on_disk {
            tracing::info!(output = %output.path.display(), "output already holds this config");
            // Bytes found on disk still need confirming: mcrouter may run others.
            self.fresh = Some(rendered.bytes.clone());
            self.current = Some(rendered);
            return;
        }
        let installed = match output.prepare(&rendered.bytes) {
            Ok(candidate) if self.cfg.validate => {
                self.candidate = Some((candidate, rendered));
                return;
            }
            Ok(candidate) => output.install(candidate),
            Err(e) => Err(e),
        };
        match installed {
            Ok(()) => self.installed(rendered),
            Err(e) => self.write_failed(e),
        }
    }

    fn write_failed(&mut self, e: crate::output::WriteError) {
        tracing::error!(output = %self.cfg.output.path.display(), reason = %e, "cannot write the config; the old file is intact, retrying");
        self.write_retry = Some(Instant::now() + self.cfg.min_refresh);
    }

    /// Bookkeeping and logs once new bytes are in place.
    fn installed(&mut self, rendered: Rendered) {
        self.generation += 1;
        log_changes(self.current.as_ref(), &rendered);
        let servers: usize = rendered.pools.values().map(Vec::len).sum();
        tracing::info!(
            output = %self.cfg.output.path.display(),
            generation = self.generation,
            pools = rendered.pools.len(),
            servers,
            "wrote config"
        );
        self.fresh = Some(rendered.bytes.clone());
        self.current = Some(rendered);
    }

    /// The file awaiting validation, if any.
    pub fn candidate_path(&self) -> Option<&std::path::Path> {
        self.candidate.as_ref().map(|(c, _)| c.path.as_path())
    }

    /// The validator's verdict on the candidate: install it, or discard it and do not write
    /// those bytes again until the render changes. Then catch up with newer renders.
    pub fn candidate_verdict(&mut self, valid: bool, reason: &str) {
        let Some((candidate, rendered)) = self.candidate.take() else {
            return;
        };
        if valid {
            match self.cfg.output.install(candidate) {
                Ok(()) => self.installed(rendered),
                Err(e) => return self.write_failed(e),
            }
        } else {
            candidate.discard();
            tracing::error!(
                reason,
                "mcrouter --validate-config rejected the new config; it was not installed"
            );
            self.rejected = Some(rendered.bytes);
        }
        self.publish();
    }

    /// xorshift64: jitter only needs to differ between processes and calls.
    fn jitter(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The first token of `template` that makes `query`, as written (for logs).
fn token_text(template: &Template, query: &Query) -> String {
    template
        .sites()
        .find(|s| &s.token.query == query)
        .map_or_else(|| query.to_string(), |s| s.text.clone())
}

/// One info line per pool whose servers changed: `+added -removed`.
fn log_changes(before: Option<&Rendered>, after: &Rendered) {
    let Some(before) = before else { return };
    let empty = Vec::new();
    let labels: BTreeSet<&String> = before.pools.keys().chain(after.pools.keys()).collect();
    for label in labels {
        let old = before.pools.get(label).unwrap_or(&empty);
        let new = after.pools.get(label).unwrap_or(&empty);
        if old == new {
            continue;
        }
        let (added, removed) = diff(old, new);
        let order_only = added.is_empty() && removed.is_empty();
        tracing::info!(
            pool = %label,
            added = %added.iter().map(|s| format!("+{s}")).collect::<Vec<_>>().join(" "),
            removed = %removed.iter().map(|s| format!("-{s}")).collect::<Vec<_>>().join(" "),
            servers = new.len(),
            "{}",
            if order_only { "pool servers reordered" } else { "pool servers changed" }
        );
    }
}

/// Multiset difference: what `new` has more of, and what `old` had more of.
fn diff<'a>(old: &'a [String], new: &'a [String]) -> (Vec<&'a String>, Vec<&'a String>) {
    let mut count: HashMap<&String, i64> = HashMap::new();
    for s in old {
        *count.entry(s).or_default() -= 1;
    }
    for s in new {
        *count.entry(s).or_default() += 1;
    }
    let added = new.iter().filter(|s| take_one(&mut count, s, 1)).collect();
    let removed = old.iter().filter(|s| take_one(&mut count, s, -1)).collect();
    (added, removed)
}

fn take_one<'a>(count: &mut HashMap<&'a String, i64>, s: &'a String, sign: i64) -> bool {
    match count.get_mut(s) {
        Some(n) if *n * sign > 0 => {
            *n -= sign;
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_interval_is_the_ttl_clamped_with_a_little_jitter() {
        let (min, max) = (Duration::from_secs(5), Duration::from_secs(60));
        let cases = [
            (0, 0.0, 5.0),
            (30, 0.0, 30.0),
            (30, 0.5, 31.5),
            (3600, 0.0, 60.0),
            (3600, 0.999, 65.994),
        ];
        for (ttl, jitter, want) in cases {
            let got = refresh_after(ttl, min, max, jitter).as_secs_f64();
            assert!(
                (got - want).abs() < 0.01,
                "ttl {ttl} jitter {jitter}: {got} != {want}"
            );
        }
        // A sub-second minimum is honoured (tests and fast failover).
        let fast = refresh_after(0, Duration::from_millis(200), max, 0.0);
        assert_eq!(fast, Duration::from_millis(200));
    }

    #[test]
    fn diff_reports_each_added_and_removed_entry_once() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let old = s(&["a", "b", "b", "c"]);
        let new = s(&["a", "b", "d", "c", "d"]);
        let (added, removed) = diff(&old, &new);
        assert_eq!(added, [&"d".to_string(), &"d".to_string()]);
        assert_eq!(removed, [&"b".to_string()]);
    }
}
