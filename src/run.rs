//! The event loop of `mcw watch` and `mcw run`: one `select!` whose arms each call one named
//! step, in the manner of tini's main loop.
//!
//! Owns the order of events and how the process ends: lookups finishing, timers, template
//! changes, signals, the startup deadline, and — in `run` mode — starting mcrouter once the
//! first config is on disk, forwarding signals to it, the stop timeout, and leaving with its
//! exit status. Decisions about configs live in [`Engine`]; the child's lifecycle in
//! [`supervise::Child`].

use std::net::SocketAddr;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};

use crate::app::AppError;
use crate::cli::{RunArgs, ServiceArgs, WatchArgs};
use crate::confirm::{self, Verdict};
use crate::engine::{Engine, EngineConfig, Lookups};
use crate::output::OutputSpec;
use crate::prefix;
use crate::resolve::Dns;
use crate::supervise::signals::{self, Arrival, Disposition, Mode, Signals};
use crate::supervise::{self, Child, args::Launch};
use crate::template::Query;
use crate::watch::TemplateWatcher;

/// How long the template directory must be quiet before a change is read.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// `mcw watch`: keep the output current until SIGTERM/SIGINT (exit 0).
pub async fn watch(args: &WatchArgs) -> Result<u8, AppError> {
    // As a sidecar's PID 1, orphans (of `kubectl exec` sessions, say) land on mcw: reap them.
    let service = Service::new(&args.service, None, false, Mode::Watch)?;
    service.serve(None).await
}

/// `mcw run`: everything `watch` does, plus supervising the command after `--`.
pub async fn run(args: &RunArgs) -> Result<u8, AppError> {
    let launch = supervise::args::vet(&args.command, &args.mcrouter_name)
        .map_err(|e| AppError::Usage(e.to_string()))?;
    if launch.mcrouter_at.is_none() {
        tracing::warn!(
            command = %args.command.join(" "),
            name = %args.mcrouter_name,
            "no word of the command is named mcrouter, so its arguments are not vetted (see --mcrouter-name)"
        );
    }
    // mcrouter's default routing prefix is /././ when -R is not given.
    let raw_prefix = launch.route_prefix.as_deref().unwrap_or("/././");
    let route_prefix = prefix::normalise(raw_prefix).map_err(|e| AppError::Usage(e.to_string()))?;

    if let Err(e) = signals::unblock_all() {
        tracing::warn!(reason = %e, "cannot clear the inherited signal mask; mcrouter inherits it");
    }
    let pid1 = std::process::id() == 1;
    if !pid1
        && args.subreaper
        && let Err(e) = supervise::become_subreaper()
    {
        tracing::warn!(reason = %e, "cannot become a child subreaper; orphans of mcrouter's children will not be reaped by mcw");
    }
    let validator = match (args.validate, launch.mcrouter_at) {
        (false, _) => None,
        (true, None) => {
            return Err(AppError::Usage(
                "--validate runs mcrouter --validate-config, but no word of the command is named mcrouter (see --mcrouter-name)".into(),
            ));
        }
        (true, Some(at)) => {
            let mut argv = launch.command[at..].to_vec();
            if launch.ports.is_empty() {
                argv.extend(["-p".into(), "1".into()]);
            }
            argv.extend([
                "--validate-config=exit".into(),
                "--config-dump-root=".into(),
                "--stats-logging-interval=0".into(),
            ]);
            Some(argv)
        }
    };
    let service = Service::new(
        &args.service,
        Some(route_prefix),
        validator.is_some(),
        Mode::Run,
    )?;
    let admin = confirm::admin_addr(&launch.ports, &launch.listen_addresses);
    if admin.is_none() {
        tracing::warn!(
            "mcrouter has no -p/--port, so mcw cannot confirm that it reloads the configs it writes"
        );
    }
    let supervision = Supervision {
        launch,
        stop_timeout: args.stop_timeout,
        child: Child::Pending,
        admin,
        confirm_timeout: args.confirm_timeout,
        confirming: JoinSet::new(),
        rejections: 0,
        validator,
        validating: None,
    };
    service.serve(Some(supervision)).await
}

/// The child side of `run`.
struct Supervision {
    launch: Launch,
    stop_timeout: Duration,
    child: Child,
    /// mcrouter's admin address, when its port is known.
    admin: Option<SocketAddr>,
    confirm_timeout: Duration,
    /// The pending confirmation of the latest write (a newer write replaces it).
    confirming: JoinSet<(Vec<u8>, Verdict)>,
    rejections: u64,
    /// `mcrouter ARGS… --validate-config=exit …` (with `--validate`); `-f CANDIDATE` is added.
    validator: Option<Vec<String>>,
    /// pid of the running validator.
    validating: Option<i32>,
}

/// Everything the loop owns.
struct Service {
    engine: Engine,
    watcher: TemplateWatcher,
    lookups: JoinSet<Lookups>,
    signals: Signals,
    startup_timeout: Duration,
}

impl Service {
    /// Validate settings, load the template, and start listening for the signals of `mode`
    /// (before any child exists, so none is lost).
    fn new(
        args: &ServiceArgs,
        route_prefix: Option<String>,
        validate: bool,
        mode: Mode,
    ) -> Result<Service, AppError> {
        let refresh = &args.refresh;
        if refresh.min_refresh > refresh.max_refresh {
            return Err(AppError::Usage(format!(
                "--min-refresh ({:?}) is longer than --max-refresh ({:?})",
                refresh.min_refresh, refresh.max_refresh
            )));
        }
        let output = absolute_output(&args.output)?;
        let template = args.template.path().clone();
        let cfg = EngineConfig {
            template: template.clone(),
            output,
            min_refresh: refresh.min_refresh,
            max_refresh: refresh.max_refresh,
            allow_empty: args.dns.allow_empty,
            route_prefix,
            validate,
        };
        let dns = Dns::new(&args.dns.settings())?;
        let engine = Engine::new(cfg, dns)?;
        let watcher = TemplateWatcher::new(&template, DEBOUNCE, args.template_poll)
            .map_err(AppError::Setup)?;
        let signals = Signals::listen(&signals::caught(mode)).map_err(AppError::Setup)?;
        tracing::info!(
            template = %template.display(),
            output = %engine.output().path.display(),
            "watching"
        );
        Ok(Service {
            engine,
            watcher,
            lookups: JoinSet::new(),
            signals,
            startup_timeout: refresh.startup_timeout,
        })
    }

    /// Run until stopped (watch) or until the child exits (run); returns the exit code.
    async fn serve(mut self, mut sup: Option<Supervision>) -> Result<u8, AppError> {
        let startup_deadline = Instant::now() + self.startup_timeout;
        // The first render: every token at once (and, without tokens, a render right away).
        let all = self.engine.take_all();
        self.start_lookups(all);
        loop {
            if let Some(code) = self.advance_child(sup.as_mut())? {
                return Ok(code);
            }
            self.validate_candidate(sup.as_mut());
            self.confirm_writes(sup.as_mut());
            let kill_at = sup.as_ref().and_then(|s| s.child.kill_deadline());
            let confirming = sup.as_ref().is_some_and(|s| !s.confirming.is_empty());
            tokio::select! {
                Some(done) = self.lookups.join_next(), if !self.lookups.is_empty() => {
                    self.lookup_done(done);
                }
                _ = sleep_until(self.engine.next_wake()) => self.timer_fired(),
                _ = self.watcher.changed() => self.template_touched(),
                arrival = self.signals.next() => {
                    if let Some(code) = self.on_signal(arrival, sup.as_mut()) {
                        return Ok(code);
                    }
                }
                Some(done) = next_verdict(sup.as_mut()), if confirming => {
                    if let (Ok((bytes, verdict)), Some(s)) = (done, sup.as_mut()) {
                        self.on_verdict(s, &bytes, verdict);
                    }
                }
                _ = sleep_until(kill_at.unwrap_or_else(Instant::now)), if kill_at.is_some() => {
                    if let Some(s) = sup.as_mut() {
                        s.child.kill();
                    }
                }
                _ = sleep_until(startup_deadline), if !self.engine.has_output() => {
                    return Err(AppError::StartupTimeout {
                        timeout: self.startup_timeout,
                        failed: self.engine.missing(),
                    });
                }
            }
        }
    }

    /// Start the child once the first config is written; report its exit code once it is gone.
    fn advance_child(&mut self, sup: Option<&mut Supervision>) -> Result<Option<u8>, AppError> {
        let Some(sup) = sup else { return Ok(None) };
        match sup.child {
            Child::Pending if self.engine.has_output() => {
                let config = self.engine.output().path.to_string_lossy().into_owned();
                let child = Child::spawn(&sup.launch.command, &["-f".into(), config])
                    .map_err(AppError::Spawn)?;
                tracing::info!(pid = child.pid(), command = %sup.launch.command.join(" "), "started mcrouter");
                sup.child = child;
                Ok(None)
            }
            Child::Exited { code } => Ok(Some(code)),
            _ => Ok(None),
        }
    }

    /// Start `mcrouter --validate-config=exit` on a waiting candidate (`--validate`).
    fn validate_candidate(&mut self, sup: Option<&mut Supervision>) {
        let Some(s) = sup else { return };
        let (Some(argv), None) = (&s.validator, s.validating) else {
            return;
        };
        let Some(path) = self.engine.candidate_path() else {
            return;
        };
        let mut args = argv[1..].to_vec();
        args.extend(["-f".into(), path.to_string_lossy().into_owned()]);
        match supervise::spawn_quiet(&argv[0], &args) {
            Ok(pid) => {
                tracing::debug!(pid, candidate = %path.display(), "validating");
                s.validating = Some(pid);
            }
            Err(e) => {
                let reason = format!("cannot run {}: {e}", argv[0]);
                self.engine.candidate_verdict(false, &reason);
            }
        }
    }

    /// Hand each new write to a confirmation task once mcrouter runs (in `watch` mode, just
    /// forget it).
    fn confirm_writes(&mut self, sup: Option<&mut Supervision>) {
        let Some(s) = sup else {
            self.engine.take_written();
            return;
        };
        if s.child.pid().is_none() {
            return;
        }
        let Some(bytes) = self.engine.take_written() else {
            return;
        };
        let Some(addr) = s.admin else { return };
        s.confirming.abort_all();
        let md5 = confirm::md5_hex(&bytes);
        let limit = s.confirm_timeout;
        tracing::debug!(md5, "waiting for mcrouter to load the config");
        s.confirming.spawn(async move {
            let verdict = confirm::confirm(addr, md5, limit).await;
            (bytes, verdict)
        });
    }

    fn on_verdict(&mut self, s: &mut Supervision, bytes: &[u8], verdict: Verdict) {
        match verdict {
            Verdict::Confirmed { md5, after } => {
                self.engine.confirmed(bytes);
                tracing::info!(
                    md5,
                    after_ms = after.as_millis() as u64,
                    "mcrouter runs the new config"
                );
            }
            Verdict::Rejected { md5, running } => {
                s.rejections += 1;
                tracing::error!(
                    md5,
                    running_md5 = running,
                    rejections = s.rejections,
                    "mcrouter rejected the config and still runs the previous one"
                );
                if self.engine.rejected(bytes) {
                    tracing::info!(md5 = running, output = %self.engine.output().path.display(), "wrote the running config back to the output");
                }
            }
            Verdict::Unreachable { md5, reason } => {
                tracing::warn!(md5, reason, "cannot ask mcrouter which config it runs");
            }
        }
    }

    fn lookup_done(&mut self, done: Result<Lookups, tokio::task::JoinError>) {
        match done {
            Ok(results) => {
                self.engine.apply(results);
            }
            Err(e) => tracing::error!(reason = %e, "lookup task failed"),
        }
    }

    fn timer_fired(&mut self) {
        let now = Instant::now();
        let template_changed = self.engine.on_timer(now);
        let queries = match template_changed {
            true => self.engine.take_all(),
            false => self.engine.take_due(now),
        };
        if template_changed || !queries.is_empty() {
            self.start_lookups(queries);
        }
    }

    fn template_touched(&mut self) {
        if self.engine.reload_template() {
            let all = self.engine.take_all();
            self.start_lookups(all);
        }
    }

    /// Spawn a lookup; with nothing to look up (a template without tokens), render right away.
    fn start_lookups(&mut self, queries: Vec<Query>) {
        if queries.is_empty() {
            self.engine.apply(Lookups::new());
        } else {
            self.lookups.spawn(self.engine.lookup(queries));
        }
    }

    /// Act on one signal. Returns an exit code when mcw should leave now.
    fn on_signal(&mut self, arrival: Arrival, sup: Option<&mut Supervision>) -> Option<u8> {
        let sig = arrival.signal;
        let name = signals::name(sig);
        if arrival.own {
            // A SIGPIPE for mcw's own write (stderr gone, say): the write already failed with
            // EPIPE, and the signal is about mcw, not for mcrouter.
            tracing::debug!(signal = %name, "raised by mcw's own write; not forwarded");
            return None;
        }
        match (signals::disposition(sig), sup) {
            (Disposition::Refresh, _) => {
                tracing::info!(signal = %name, "re-resolving every token");
                let all = self.engine.take_all();
                self.start_lookups(all);
                None
            }
            (Disposition::Reap, Some(s)) => {
                for (pid, status) in supervise::reap() {
                    if Some(pid) == s.child.pid() {
                        s.child.exited(status);
                    } else if Some(pid) == s.validating {
                        s.validating = None;
                        let code = status.code();
                        let reason = format!("exit status {code}");
                        self.engine.candidate_verdict(code == 0, &reason);
                    } else {
                        tracing::debug!(pid, "reaped an orphan");
                    }
                }
                None
            }
            (Disposition::Reap, None) => {
                supervise::reap();
                None
            }
            (Disposition::Stop, Some(s)) if s.child.pid().is_some() => {
                tracing::info!(signal = %name, pid = s.child.pid(), timeout = ?s.stop_timeout, "stopping mcrouter");
                s.child.stop(sig, s.stop_timeout);
                None
            }
            (Disposition::Stop, _) => {
                tracing::info!(signal = %name, "stopping");
                Some(0)
            }
            (Disposition::Forward, Some(s)) => {
                let sent = s.child.forward(sig);
                tracing::debug!(signal = %name, sent, "forwarded");
                None
            }
            (Disposition::Forward, None) => None,
        }
    }
}

/// The next finished confirmation (pending forever when there is none).
async fn next_verdict(
    sup: Option<&mut Supervision>,
) -> Option<Result<(Vec<u8>, Verdict), tokio::task::JoinError>> {
    match sup {
        Some(s) => s.confirming.join_next().await,
        None => std::future::pending().await,
    }
}

/// The output with an absolute path (mcrouter gets it with -f), its directory created if
/// missing (the default lives under /run).
fn absolute_output(output: &OutputSpec) -> Result<OutputSpec, AppError> {
    let dir = crate::output::parent_dir(&output.path).to_path_buf();
    std::fs::create_dir_all(&dir).map_err(|source| AppError::OutputDir {
        dir: dir.clone(),
        source,
    })?;
    let dir = std::fs::canonicalize(&dir).map_err(|source| AppError::OutputDir { dir, source })?;
    let mut spec = output.clone();
    // OutputSpec refuses paths without a file name.
    spec.path = dir.join(output.path.file_name().unwrap_or_default());
    Ok(spec)
}
