//! mcw's own Prometheus metrics, and the exposition of a scrape.
//!
//! Owns the metric families (names, types, help, labels), how the engine's events and reports
//! move them ([`Metrics::event`], [`Metrics::report`]), the gauges read from the engine's
//! [`Status`] at scrape time, and the text a scrape returns: OpenMetrics for Prometheus, the
//! classic text format for everything else (`curl`, `promtool check metrics`). Encoding is
//! `prometheus-client`'s. mcrouter's own stats are [`mcrouter`]'s; process figures are
//! [`process`]'s.

pub mod exporter;
pub mod process;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

use crate::engine::PairStatus;
use crate::engine::{Event, Lookups, Report};
use crate::placement::Share;

/// Label pairs of one series.
type Labels = Vec<(&'static str, String)>;
type Counters = Family<Labels, Counter>;
type Gauges = Family<Labels, Gauge>;
type Seconds = Family<Labels, Gauge<f64, AtomicU64>>;
type Ratio = Family<Labels, Gauge<f64, AtomicU64>>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;

/// Buckets of `mcw_propagation_seconds`: from a DNS answer the next lookup reads at once to a
/// change that waited for a warm-up to end.
const PROPAGATION_BUCKETS: [f64; 12] = [
    0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

fn propagation_histogram() -> Histogram {
    Histogram::new(PROPAGATION_BUCKETS)
}

/// Content types of the two exposition formats.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const CLASSIC: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The child's states, as `mcw_child_state{state}` shows them.
pub const CHILD_STATES: [&str; 7] = [
    "pending",
    "running",
    "restarting",
    "stopping",
    "killed",
    "backoff",
    "exited",
];

/// A warm-up's phases, as `mcw_warmup_phase{phase}` shows them.
pub const WARMUP_PHASES: [&str; 5] = [
    "none",
    "probing",
    "first_bracket",
    "warm_up",
    "last_bracket",
];

/// Why mcw restarts mcrouter, as `mcw_child_restarts_total{reason}` says it.
pub const RESTART_REASONS: [&str; 4] = ["crashed", "failed", "stopped_watching", "sigusr2"];

/// What mcrouter said of a write, as `mcw_reloads_total{outcome}` says it.
pub const RELOAD_OUTCOMES: [&str; 5] = [
    "confirmed",
    "rejected",
    "from_dump",
    "not_reloaded_yet",
    "cannot_tell",
];

/// mcw's metric families. Those about one config carry an `output` label (the output's
/// path), so `watch` with several pairs keeps them apart; lookups are shared and carry none.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    renders: Counters,
    render_failures: Counters,
    lookups: Counters,
    tokens_last_good: Gauges,
    token_failing: Gauges,
    pool_servers: Gauges,
    pool_remapped: Ratio,
    servers_held: Gauges,
    since_render: Seconds,
    since_write: Seconds,
    writes: Counters,
    write_failures: Counters,
    reloads: Counters,
    validations: Counters,
    signals: Counters,
    restarts: Counters,
    child_state: Family<Labels, Gauge>,
    in_sync: Gauge,
    warmup_phase: Gauges,
    warmup_slots: Gauges,
    warmup_left: Seconds,
    warmups: Counters,
    config_info: Gauges,
    propagation: Histograms,
    last_reload_ok: Gauges,
    last_reload_success: Seconds,
    /// Reloads are confirmed with mcrouter.
    confirming: bool,
    /// Log lines (mcw's and mcrouter's) dropped because stderr did not keep up, and how many
    /// of them the counter holds already.
    log_dropped: Counter,
    log_dropped_seen: AtomicU64,
}

/// Which families apply.
#[derive(Clone, Copy, Debug)]
pub struct Mode {
    /// `run`: the child, signals, validation.
    pub supervise: bool,
    /// mcrouter's admin port is known: reloads are confirmed.
    pub confirm: bool,
}

impl Metrics {
    pub fn new(mode: Mode) -> Metrics {
        let mut root = Registry::default();
        // Process figures keep their customary unprefixed names.
        root.register_collector(Box::new(process::Process::new()));
        let r = root.sub_registry_with_prefix("mcw");
        let build: Family<Labels, Gauge> = Family::default();
        build
            .get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_string())])
            .set(1);
        r.register("build_info", "mcw's version (always 1)", build);
        let (all, confirm, supervise) = (true, mode.confirm, mode.supervise);
        let propagation: Histograms = Family::new_with_constructor(propagation_histogram);
        r.register(
            "propagation_seconds",
            "Time from a DNS answer that changed a pool's servers to the first config that carries it being written (until=written) and, with an admin port, run by mcrouter (until=confirmed)",
            propagation.clone(),
        );
        let metrics = Metrics {
            propagation,
            confirming: confirm,
            config_info: add(
                r,
                all,
                "config_info",
                "1 for the md5 of the config mcw last wrote (config=written) and, with an admin port, of the one mcrouter runs (config=running): count by md5 across replicas shows disagreement",
            ),
            last_reload_ok: add(
                r,
                all,
                "config_last_reload_successful",
                "1 when the latest attempt to put a template edit or DNS change in force worked (mcrouter confirmed it, or it was written with nothing to confirm with); 0 after a refused edit, a failed write or a rejection",
            ),
            last_reload_success: add(
                r,
                all,
                "config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful reload (NaN before the first)",
            ),
            renders: add(
                r,
                all,
                "renders",
                "Configs rendered whose bytes differed from the output's",
            ),
            render_failures: add(
                r,
                all,
                "render_failures",
                "Template reads that could not be rendered, by reason (template_invalid: parse error, bad token or missing routing prefix; template_unreadable)",
            ),
            lookups: add(
                r,
                all,
                "dns_lookups",
                "DNS lookups per token, by outcome (ok, nxdomain, nodata, servfail, refused, timeout, other)",
            ),
            tokens_last_good: add(
                r,
                all,
                "tokens_last_good",
                "Tokens whose latest lookup failed, served from their last good answer",
            ),
            token_failing: add(
                r,
                all,
                "token_lookup_failing",
                "1 for a token whose latest lookup failed (its last good answer, if any, stands in), else 0",
            ),
            pool_servers: add(
                r,
                all,
                "pool_servers",
                "Servers per pool in the config the output holds",
            ),
            pool_remapped: add(
                r,
                all,
                "pool_remapped_keys_ratio",
                "Share of keys the pool's last change sent to another server (NaN: mcw cannot model its hash)",
            ),
            servers_held: add(
                r,
                all,
                "servers_held",
                "Servers DNS no longer lists that keep their slot under --hold-removed, per token",
            ),
            since_render: add(
                r,
                all,
                "last_render_age_seconds",
                "Time since mcw last rendered a new config (grows while nothing changes)",
            ),
            since_write: add(
                r,
                all,
                "last_write_age_seconds",
                "Time since mcw last wrote the output file",
            ),
            writes: add(
                r,
                all,
                "writes",
                "Output files written (new configs, restorations after a rejection, and repairs of a file deleted or replaced under mcw)",
            ),
            write_failures: add(
                r,
                all,
                "write_failures",
                "Writes of the output that failed (the old file stayed intact)",
            ),
            reloads: add(
                r,
                confirm,
                "reloads",
                "Verdicts on written configs from mcrouter's reported md5 and failed-reload count, by outcome (confirmed; rejected: mcrouter tried the config and failed; not_reloaded_yet, cannot_tell: no verdict by --confirm-timeout, still asking)",
            ),
            in_sync: add(
                r,
                confirm,
                "config_in_sync",
                "1 when mcrouter was last seen running the bytes the output holds, else 0",
            ),
            validations: add(
                r,
                supervise,
                "validations",
                "Verdicts of mcrouter --validate-config on candidate configs, by verdict (accepted, rejected)",
            ),
            signals: add(
                r,
                supervise,
                "signals_forwarded",
                "Signals passed on to mcrouter, by name",
            ),
            restarts: add(
                r,
                supervise,
                "child_restarts",
                "mcrouter restarts by mcw, by reason (crashed: killed by a signal mcw did not send, failed: exited non-zero, both with --restart on-failure; stopped_watching: mcrouter's log said it could no longer watch its config file, which ends its reloading for good; sigusr2: asked for)",
            ),
            child_state: add(
                r,
                supervise,
                "child_state",
                "mcrouter's state under mcw: 1 for the current state (pending, running, restarting, stopping, killed, backoff: waiting to be restarted, exited)",
            ),
            warmup_phase: add(
                r,
                all,
                "warmup_phase",
                "1 for the phase of the warm-up under way (--warm-up): probing, first_bracket, warm_up, last_bracket; none when there is none",
            ),
            warmup_slots: add(
                r,
                all,
                "warmup_slots",
                "Slots of each pool whose keys go through the warm-up routes in the warm-up under way",
            ),
            warmup_left: add(
                r,
                all,
                "warmup_phase_remaining_seconds",
                "Time left in the warm-up's phase (NaN while its config awaits mcrouter's confirmation)",
            ),
            warmups: add(
                r,
                all,
                "warmups",
                "Pool changes by how they were written (--warm-up): warmed (a warm-up completed), skipped (written plainly, nothing could be warmed), abandoned (a phase's config was rejected)",
            ),
            log_dropped: add(
                r,
                all,
                "log_lines_dropped",
                "Log lines (mcw's own, and mcrouter's passed through mcw) dropped because stderr did not keep up (a paused terminal, a stalled journal): logging never blocks mcw",
            ),
            log_dropped_seen: AtomicU64::new(0),
            // Last: the registrations above borrow it.
            registry: root,
        };
        // Every reason, outcome and verdict at 0 from the start, so an alert or a panel on one
        // needs no absent().
        let labelled = [
            (&metrics.restarts, "reason", &RESTART_REASONS[..]),
            (&metrics.reloads, "outcome", &RELOAD_OUTCOMES[..]),
            (
                &metrics.validations,
                "verdict",
                &["accepted", "rejected"][..],
            ),
        ];
        for (family, label, values) in labelled {
            for value in values {
                let _ = family.get_or_create(&vec![(label, value.to_string())]);
            }
        }
        metrics
    }

    /// Start the counters of the config at `output` at zero, so its series exist before the
    /// first render.
    pub fn add_output(&self, output: &Path) {
        let labels = of_output(output, &[]);
        for family in [&self.renders, &self.writes, &self.write_failures] {
            let _ = family.get_or_create(&labels);
        }
        let labelled = [
            (
                &self.render_failures,
                "reason",
                &["template_invalid", "template_unreadable"][..],
            ),
            (
                &self.warmups,
                "outcome",
                &["warmed", "skipped", "abandoned"][..],
            ),
        ];
        for (family, label, values) in labelled {
            for value in values {
                let _ = family.get_or_create(&of_output(output, &[(label, value)]));
            }
        }
        let stages: &[&str] = match self.confirming {
            true => &["written", "confirmed"],
            false => &["written"],
        };
        for until in stages {
            let _ = self
                .propagation
                .get_or_create(&of_output(output, &[("until", until)]));
        }
    }

    /// Count the outcome of every lookup of one batch (once, however many pairs use it).
    /// `token` names the token of a query.
    pub fn looked(&self, results: &Lookups, token: impl Fn(&crate::dns::Query) -> String) {
        for (query, result) in results {
            let outcome = match result {
                Ok(_) => "ok",
                Err(f) => f.outcome(),
            };
            let labels = vec![("token", token(query)), ("outcome", outcome.to_string())];
            self.lookups.get_or_create(&labels).inc();
        }
    }

    /// Count what an event says by itself: validator approvals.
    pub fn event(&self, event: &Event) {
        if let Event::Validated { result: Ok(()), .. } = event {
            self.count(&self.validations, "verdict", "accepted");
        }
    }

    /// Count what a report about the config at `output` tells.
    pub fn report(&self, output: &Path, report: &Report) {
        let of = |more: &[(&'static str, &str)]| of_output(output, more);
        match report {
            Report::Rendered { .. } => {
                self.renders.get_or_create(&of(&[])).inc();
            }
            Report::TemplateRejected { .. } => {
                let labels = of(&[("reason", "template_invalid")]);
                self.render_failures.get_or_create(&labels).inc();
            }
            Report::TemplateUnreadable { .. } => {
                let labels = of(&[("reason", "template_unreadable")]);
                self.render_failures.get_or_create(&labels).inc();
            }
            Report::Wrote { propagation, .. } => {
                self.writes.get_or_create(&of(&[])).inc();
                self.propagated(output, "written", *propagation);
            }
            Report::Restored { .. } | Report::Repaired { .. } => {
                self.writes.get_or_create(&of(&[])).inc();
            }
            Report::WriteFailed { .. } => {
                self.write_failures.get_or_create(&of(&[])).inc();
            }
            Report::ValidatorRejected { .. } => {
                self.count(&self.validations, "verdict", "rejected")
            }
            Report::Confirmed { propagation, .. } => {
                self.count(&self.reloads, "outcome", "confirmed");
                self.propagated(output, "confirmed", *propagation);
            }
            Report::Rejected { .. } => self.count(&self.reloads, "outcome", "rejected"),
            Report::RunsDump { .. } => self.count(&self.reloads, "outcome", "from_dump"),
            Report::CannotTell { .. } => self.count(&self.reloads, "outcome", "cannot_tell"),
            Report::NotReloadedYet { .. } => {
                self.count(&self.reloads, "outcome", "not_reloaded_yet")
            }
            Report::Reoffered { .. } => {
                self.writes.get_or_create(&of(&[])).inc();
            }
            Report::WarmUpPhase { propagation, .. } => {
                self.writes.get_or_create(&of(&[])).inc();
                self.propagated(output, "written", *propagation);
            }
            Report::WarmUpFinished { .. } => {
                self.warmups
                    .get_or_create(&of(&[("outcome", "warmed")]))
                    .inc();
            }
            Report::WarmUpSkipped { .. } => {
                self.warmups
                    .get_or_create(&of(&[("outcome", "skipped")]))
                    .inc();
            }
            Report::WarmUpAbandoned { .. } => {
                self.warmups
                    .get_or_create(&of(&[("outcome", "abandoned")]))
                    .inc();
            }
            Report::StartDeferred { .. } => {
                self.write_failures.get_or_create(&of(&[])).inc();
            }
            _ => {}
        }
    }

    /// The share of keys a change of `pool` (in the config at `output`) remapped; a removed
    /// pool's series goes.
    pub fn remapped(
        &self,
        output: &Path,
        pool: &str,
        gone: bool,
        remapped: &Result<Share, String>,
    ) {
        let labels = of_output(output, &[("pool", pool)]);
        if gone {
            self.pool_remapped.remove(&labels);
            return;
        }
        self.pool_remapped
            .get_or_create(&labels)
            .set(remapped.as_ref().map_or(f64::NAN, |share| share.ratio()));
    }

    /// A DNS change reached a stage (`written`, `confirmed`) after `took`, if it did.
    fn propagated(&self, output: &Path, until: &str, took: Option<std::time::Duration>) {
        if let Some(took) = took {
            self.propagation
                .get_or_create(&of_output(output, &[("until", until)]))
                .observe(took.as_secs_f64());
        }
    }

    /// A signal was passed on to mcrouter.
    pub fn forwarded(&self, signal: &str) {
        self.count(&self.signals, "signal", signal);
    }

    /// mcw restarted mcrouter, for `reason`.
    pub fn restarted(&self, reason: &str) {
        self.count(&self.restarts, "reason", reason);
    }

    fn count(&self, family: &Counters, label: &'static str, value: &str) {
        family
            .get_or_create(&vec![(label, value.to_string())])
            .inc();
    }

    /// mcw's families as OpenMetrics text (without the closing `# EOF`), with the gauges read
    /// from each pair's status and `child` (the child's state name, in `run` mode).
    pub fn encode(&self, pairs: &[PairStatus], child: Option<&str>) -> String {
        self.servers_held.clear();
        self.token_failing.clear();
        self.pool_servers.clear();
        self.warmup_slots.clear();
        self.config_info.clear();
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        for pair in pairs {
            let status = &pair.status;
            let of = |more: &[(&'static str, &str)]| of_output(pair.output, more);
            let last_good = status.tokens.iter().filter(|t| t.last_good_in_use).count();
            self.tokens_last_good
                .get_or_create(&of(&[]))
                .set(last_good as i64);
            for t in &status.tokens {
                self.token_failing
                    .get_or_create(&of(&[("token", &t.token)]))
                    .set(i64::from(t.error.is_some()));
                self.servers_held
                    .get_or_create(&of(&[("token", &t.token)]))
                    .set(t.held.len() as i64);
            }
            for (pool, servers) in &status.pools {
                self.pool_servers
                    .get_or_create(&of(&[("pool", pool)]))
                    .set(servers.len() as i64);
            }
            let secs = |d: Option<std::time::Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64());
            self.since_render
                .get_or_create(&of(&[]))
                .set(secs(status.since_render));
            self.since_write
                .get_or_create(&of(&[]))
                .set(secs(status.since_write));
            let warm = status.warm_up.as_ref();
            let current = warm.map_or("none", |w| w.phase);
            for phase in WARMUP_PHASES {
                self.warmup_phase
                    .get_or_create(&of(&[("phase", phase)]))
                    .set(i64::from(phase == current));
            }
            self.warmup_left
                .get_or_create(&of(&[]))
                .set(secs(warm.and_then(|w| w.left)));
            let running = status.running.as_ref().and_then(|o| o.md5());
            for (config, md5) in [
                ("written", status.written_md5.as_deref()),
                ("running", running),
            ] {
                if let Some(md5) = md5 {
                    self.config_info
                        .get_or_create(&of(&[("config", config), ("md5", md5)]))
                        .set(1);
                }
            }
            if let Some(ok) = status.last_reload_ok {
                self.last_reload_ok
                    .get_or_create(&of(&[]))
                    .set(i64::from(ok));
            }
            let success = status
                .since_reload_success
                .map(|since| wall.saturating_sub(since));
            self.last_reload_success
                .get_or_create(&of(&[]))
                .set(secs(success));
            for p in warm.iter().flat_map(|w| &w.pools) {
                self.warmup_slots
                    .get_or_create(&of(&[("pool", &p.pool)]))
                    .set(p.slots.len() as i64);
            }
        }
        // Confirmation is `run`'s, which has one pair.
        let in_sync = pairs.first().is_some_and(|p| p.status.in_sync);
        self.in_sync.set(i64::from(in_sync));
        if let Some(current) = child {
            for state in CHILD_STATES {
                self.child_state
                    .get_or_create(&vec![("state", state.to_string())])
                    .set(i64::from(state == current));
            }
        }
        let dropped = crate::logging::dropped_lines();
        let seen = self.log_dropped_seen.swap(dropped, Ordering::Relaxed);
        self.log_dropped.inc_by(dropped.saturating_sub(seen));
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode_registry(&mut text, &self.registry);
        text
    }
}

/// The labels of a series about the config at `output`, then `more`.
fn of_output(output: &Path, more: &[(&'static str, &str)]) -> Labels {
    let mut labels = vec![("output", output.display().to_string())];
    labels.extend(more.iter().map(|(k, v)| (*k, v.to_string())));
    labels
}

/// A new metric, registered under `name` (units and `_total` are part of the name as given or
/// added by the type) when `on`; unregistered ones are kept but never shown.
fn add<M: Metric + Clone + Default>(r: &mut Registry, on: bool, name: &str, help: &str) -> M {
    let metric = M::default();
    if on {
        r.register(name, help, metric.clone());
    }
    metric
}

/// The closing line of an OpenMetrics exposition.
/// `mcw_ready`: what `/readyz` would answer now, for a scrape (alerting on readiness lost
/// needs a series; a probe's answer is not one).
pub fn ready(ready: bool) -> String {
    let mut registry = Registry::with_prefix("mcw");
    let gauge: Gauge = Gauge::default();
    gauge.set(i64::from(ready));
    registry.register(
        "ready",
        "1 when /readyz would answer 200 (watch: a config is written; run: mcrouter runs a config mcw wrote and answers on its admin port), else 0",
        gauge,
    );
    let mut text = String::new();
    let _ = encode_registry(&mut text, &registry);
    text
}

pub fn eof() -> String {
    let mut text = String::new();
    let _ = encode_eof(&mut text);
    text
}

/// The same exposition in the classic text format (0.0.4), for clients that do not ask for
/// OpenMetrics: a counter's HELP and TYPE name its `_total` series (as the format wants),
/// and the OpenMetrics-only `# UNIT` and `# EOF` lines go.
pub fn classic(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 64);
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|tag| {
            let rest = line.strip_prefix(tag)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{tag}{name}_total {tail}"))
        });
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Whether an `Accept` header asks for OpenMetrics (Prometheus does).
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_classic_format_names_counter_series_in_help_and_type() {
        let om = "# HELP mcw_writes Output files written.\n# TYPE mcw_writes counter\nmcw_writes_total 3\n# HELP mcw_last_write_age_seconds Age.\n# TYPE mcw_last_write_age_seconds gauge\n# UNIT mcw_last_write_age_seconds seconds\nmcw_last_write_age_seconds 1.5\n# EOF\n";
        assert_eq!(
            classic(om),
            "# HELP mcw_writes_total Output files written.\n# TYPE mcw_writes_total counter\nmcw_writes_total 3\n# HELP mcw_last_write_age_seconds Age.\n# TYPE mcw_last_write_age_seconds gauge\nmcw_last_write_age_seconds 1.5\n"
        );
    }

    #[test]
    fn prometheus_gets_openmetrics_and_curl_the_classic_format() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(Some(prometheus)));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(None));
    }

    #[test]
    fn every_family_has_help_and_counters_end_in_total() {
        let m = Metrics::new(Mode {
            supervise: true,
            confirm: true,
        });
        m.forwarded("SIGUSR1");
        let output = std::path::PathBuf::from("/run/mcw/a.json");
        m.report(
            &output,
            &Report::Confirmed {
                md5: "x".into(),
                after: std::time::Duration::ZERO,
                propagation: Some(std::time::Duration::from_millis(700)),
            },
        );
        let status = crate::engine::Status {
            tokens: Vec::new(),
            pools: [("a".to_string(), vec!["10.0.0.1:11211".to_string()])].into(),
            written_md5: Some("0123abcd".into()),
            running: None,
            confirmed: false,
            reload: None,
            last_failure: None,
            in_sync: true,
            since_render: None,
            since_write: None,
            child: Some("running"),
            retrying: None,
            warm_up: None,
            last_reload_ok: Some(true),
            since_reload_success: Some(std::time::Duration::from_secs(5)),
        };
        m.add_output(&output);
        let pairs = [PairStatus {
            template: &output,
            output: &output,
            status,
        }];
        let text = classic(&m.encode(&pairs, Some("running")));
        for needle in [
            "mcw_signals_forwarded_total{signal=\"SIGUSR1\"} 1",
            "mcw_reloads_total{outcome=\"confirmed\"} 1",
            "mcw_pool_servers{output=\"/run/mcw/a.json\",pool=\"a\"} 1",
            "mcw_writes_total{output=\"/run/mcw/a.json\"} 0",
            "mcw_config_in_sync 1",
            "mcw_propagation_seconds_bucket{le=\"1.0\",output=\"/run/mcw/a.json\",until=\"confirmed\"} 1",
            "mcw_propagation_seconds_count{output=\"/run/mcw/a.json\",until=\"written\"} 0",
            "mcw_config_last_reload_successful{output=\"/run/mcw/a.json\"} 1",
            "mcw_config_info{output=\"/run/mcw/a.json\",config=\"written\",md5=\"0123abcd\"} 1",
            "mcw_child_state{state=\"running\"} 1",
            "mcw_child_state{state=\"pending\"} 0",
            "mcw_child_restarts_total{reason=\"stopped_watching\"} 0",
            "# TYPE process_cpu_seconds_total counter",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
        let typed: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .collect();
        for t in &typed {
            let name = t.split(' ').next().unwrap();
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} has no help"
            );
            assert_eq!(t.ends_with(" counter"), name.ends_with("_total"), "{t}");
        }
    }

    /// Regression: the remapped-share series of a pool that left the config stayed for ever.
    #[test]
    fn a_removed_pool_loses_its_remapped_share_series() {
        let m = Metrics::new(Mode {
            supervise: false,
            confirm: false,
        });
        let output = std::path::PathBuf::from("/run/mcw/a.json");
        let unknown = Err("a new pool".into());
        m.remapped(&output, "a", false, &unknown);
        m.remapped(&output, "b", false, &unknown);
        m.remapped(&output, "b", true, &unknown);
        let text = classic(&m.encode(&[], None));
        assert!(text.contains("pool=\"a\""), "{text}");
        assert!(!text.contains("pool=\"b\""), "{text}");
    }
}
