//! The event loop of `mcw watch`: one `select!` whose arms each call one named step.
//!
//! Owns the order of events and how the process stops: lookups finishing, timers, template
//! changes, SIGHUP (re-resolve now), SIGTERM/SIGINT (stop, exit 0), and the startup deadline
//! (exit 1 naming every token without an answer). The decisions live in [`Engine`].

use std::path::Path;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};

use crate::app::AppError;
use crate::cli::WatchArgs;
use crate::engine::{Engine, EngineConfig, Lookups};
use crate::output::OutputSpec;
use crate::resolve::Dns;
use crate::template::Query;
use crate::watch::TemplateWatcher;

/// How long the template directory must be quiet before a change is read.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// `mcw watch`.
pub async fn watch(args: &WatchArgs) -> Result<(), AppError> {
    let refresh = &args.refresh;
    if refresh.min_refresh > refresh.max_refresh {
        return Err(AppError::Usage(format!(
            "--min-refresh ({:?}) is longer than --max-refresh ({:?})",
            refresh.min_refresh, refresh.max_refresh
        )));
    }
    prepare_output_dir(&args.output)?;
    let template = args.template.path().clone();
    let cfg = EngineConfig {
        template: template.clone(),
        output: args.output.clone(),
        min_refresh: refresh.min_refresh,
        max_refresh: refresh.max_refresh,
        allow_empty: args.dns.allow_empty,
    };
    let dns = Dns::new(&args.dns.settings())?;
    let mut engine = Engine::new(cfg, dns)?;
    let mut watcher = TemplateWatcher::new(&template, DEBOUNCE).map_err(AppError::Setup)?;
    let mut signals = Signals::new().map_err(AppError::Setup)?;
    let mut lookups: JoinSet<Lookups> = JoinSet::new();
    let startup_deadline = Instant::now() + refresh.startup_timeout;
    tracing::info!(
        template = %template.display(),
        output = %args.output.path.display(),
        "watching"
    );

    loop {
        tokio::select! {
            Some(done) = lookups.join_next(), if !lookups.is_empty() => {
                lookup_done(&mut engine, done);
            }
            _ = sleep_until(engine.next_wake()) => {
                timer_fired(&mut engine, &mut lookups);
            }
            _ = watcher.changed() => {
                template_touched(&mut engine, &mut lookups);
            }
            _ = signals.hup.recv() => {
                tracing::info!(signal = "SIGHUP", "re-resolving every token");
                let all = engine.take_all();
                start_lookups(&mut engine, &mut lookups, all);
            }
            _ = signals.term.recv() => return stopping("SIGTERM"),
            _ = signals.int.recv() => return stopping("SIGINT"),
            _ = sleep_until(startup_deadline), if !engine.has_output() => {
                return Err(AppError::StartupTimeout {
                    timeout: refresh.startup_timeout,
                    failed: engine.missing(),
                });
            }
        }
    }
}

fn lookup_done(engine: &mut Engine, done: Result<Lookups, tokio::task::JoinError>) {
    match done {
        Ok(results) => {
            engine.apply(results);
        }
        Err(e) => tracing::error!(reason = %e, "lookup task failed"),
    }
}

fn timer_fired(engine: &mut Engine, lookups: &mut JoinSet<Lookups>) {
    let now = Instant::now();
    let (_, template_changed) = engine.on_timer(now);
    let queries = match template_changed {
        true => engine.take_all(),
        false => engine.take_due(now),
    };
    if template_changed || !queries.is_empty() {
        start_lookups(engine, lookups, queries);
    }
}

fn template_touched(engine: &mut Engine, lookups: &mut JoinSet<Lookups>) {
    if engine.reload_template() {
        let all = engine.take_all();
        start_lookups(engine, lookups, all);
    }
}

/// Spawn a lookup; with nothing to look up (a template without tokens), render right away.
fn start_lookups(engine: &mut Engine, lookups: &mut JoinSet<Lookups>, queries: Vec<Query>) {
    if queries.is_empty() {
        engine.apply(Lookups::new());
    } else {
        lookups.spawn(engine.lookup(queries));
    }
}

fn stopping(signal: &str) -> Result<(), AppError> {
    tracing::info!(signal, "stopping");
    Ok(())
}

/// The output's directory is created if missing (the default lives under /run).
pub fn prepare_output_dir(output: &OutputSpec) -> Result<(), AppError> {
    let dir = match output.path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|source| AppError::OutputDir {
        dir: dir.to_path_buf(),
        source,
    })
}

struct Signals {
    hup: Signal,
    term: Signal,
    int: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            hup: signal(SignalKind::hangup())?,
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }
}
