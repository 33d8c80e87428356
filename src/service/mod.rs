//! The event loop of `mcw watch` and `mcw run`: one `select!` whose arms each call one named
//! step, in the manner of tini's main loop, and the executor of the engine's actions.
//!
//! Owns the loop itself: the pairs (each an engine, a template and its watch, an output), the
//! order of start-up, feeding events to the engines and performing their actions (reading the
//! template, writing the output, asking mcrouter). The rest of its work is one file each:
//! - `lookups`: DNS lookups spawned and de-duplicated across pairs;
//! - `child`: mcrouter's side in `run`: starting it, signals, reaping, restarts, the stop
//!   timeout;
//! - `validator`: the `--validate` process and its candidate;
//! - `answer`: answers to the HTTP endpoint, and readiness;
//! - `notify`: what systemd is told (`READY=1`, `RELOADING=1`, `STATUS=`, the watchdog);
//! - `log`: the engine's reports as log lines; the share of keys a change remaps, measured
//!   off the loop when it is costly;
//! - `served`: one template/output pair as the loop serves it (engine, template watch);
//! - `wake`: what the `select!` waits on besides the loop's own fields.
//!
//! What to do, and when, is the [`Engine`]'s decision; the child's lifecycle is
//! [`Child`](crate::supervise::Child)'s.

mod answer;
mod child;
mod log;
mod lookups;
mod notify;
mod served;
mod stderr;
mod validator;
mod wake;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;

use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};
use tokio::time::{Instant, sleep_until};

use crate::engine::{Action, Event, Observed, Report, Wrote};
use crate::error::Error;
use crate::http::{self, Ask};
use crate::mcrouter::admin;
use crate::metrics::{self, Metrics};
use crate::output::Written;
use crate::resolve::Dns;
use crate::settings::{Run, Service};
use crate::supervise::signals::{self, Mode, Signals};
use crate::supervise::socket::Held;
use crate::template::Template;

use child::Mcrouter;
use log::Remapped;
use lookups::InFlight;
use notify::Notifier;
use served::Served;
use wake::{first_change, next, tick};

/// Serve `service` (and, in `run` mode, supervise mcrouter as `run` says) until stopped
/// (`watch`) or until mcrouter exits (`run`); returns the exit code.
pub async fn serve(service: Service, run: Option<Run>) -> Result<u8, Error> {
    Loop::new(service, run)?.serve().await
}

/// Everything the loop owns.
struct Loop {
    /// At least one; in `run` mode exactly one, and the child, validation and confirmation
    /// are about it.
    pairs: Vec<Served>,
    admin: Option<SocketAddr>,
    signals: Signals,
    lookups: InFlight,
    asks: JoinSet<Observed>,
    mcrouter: Option<Mcrouter>,
    metrics: Metrics,
    /// Questions from the HTTP endpoint (`--metrics-listen`).
    http: Option<mpsc::Receiver<Ask>>,
    /// What mcrouter's log tells (once it runs): why a config failed to load, a lost watch.
    told: Option<mpsc::UnboundedReceiver<stderr::Told>>,
    /// What each validator's stderr gave as the reason, once it closed: `(pid, reason)`.
    validators_said: (
        mpsc::UnboundedSender<stderr::Said>,
        mpsc::UnboundedReceiver<stderr::Said>,
    ),
    /// Shares of keys remapped by large Rendezvous changes, measured on a blocking thread.
    remaps: JoinSet<Remapped>,
    /// Probes of old servers before a warm-up: the pair, and the servers that answered.
    probes: JoinSet<(usize, std::collections::HashSet<String>)>,
    notifier: Notifier,
}

impl Loop {
    /// Bind the HTTP port, load each template, clear leftovers of a crashed run, and start
    /// listening for signals (before any child exists, so none is lost).
    fn new(s: Service, run: Option<Run>) -> Result<Loop, Error> {
        // First, so a taken port stops mcw before anything else happens.
        let listener = s
            .metrics_listen
            .map(|addr| http::bind(addr).map_err(|source| Error::Listen { addr, source }))
            .transpose()?;
        let held = match run.as_ref().map(|r| &r.hold) {
            Some(Ok(plan)) => {
                let held = Held::bind(plan).map_err(|source| Error::HoldPort {
                    addr: std::net::SocketAddr::new(
                        plan.ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into()),
                        plan.port,
                    ),
                    source,
                })?;
                tracing::info!(addr = %held.addr, "holding mcrouter's port; it gets the socket with --listen-sock-fd");
                Some(held)
            }
            Some(Err(why)) => {
                tracing::info!(reason = %why, "mcrouter binds its own port: a restart refuses connections until it listens again");
                None
            }
            None => None,
        };
        let admin = held
            .as_ref()
            .map(Held::admin_addr)
            .or(run.as_ref().and_then(|r| r.admin));
        let pairs = (0..s.pairs.len())
            .map(|n| Served::new(&s, run.as_ref(), n))
            .collect::<Result<Vec<_>, _>>()?;
        let dns = Dns::new(&s.dns)?;
        let mode = match run {
            Some(_) => Mode::Run,
            None => Mode::Watch,
        };
        let signals = Signals::listen(&signals::caught(mode)).map_err(|source| Error::Setup {
            what: "signal handling",
            source,
        })?;
        let metrics = Metrics::new(metrics::Mode {
            supervise: run.is_some(),
            confirm: admin.is_some(),
        });
        for p in &pairs {
            metrics.add_output(&p.pair.output.path);
            tracing::info!(
                template = %p.pair.template.display(),
                output = %p.pair.output.path.display(),
                "watching"
            );
        }
        let http = listener.map(|listener| {
            let (tx, rx) = mpsc::channel(16);
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "serving /metrics, /healthz, /readyz and /status");
            }
            http::serve(listener, tx, admin);
            rx
        });
        Ok(Loop {
            pairs,
            admin,
            signals,
            lookups: InFlight::new(dns),
            asks: JoinSet::new(),
            mcrouter: run.map(|settings| Mcrouter::new(settings, held)),
            metrics,
            http,
            told: None,
            validators_said: mpsc::unbounded_channel(),
            remaps: JoinSet::new(),
            probes: JoinSet::new(),
            notifier: Notifier::from_env(),
        })
    }

    /// Run until stopped (watch) or until the child exits (run); returns the exit code. A
    /// validator still running then is killed and its candidate removed.
    async fn serve(mut self) -> Result<u8, Error> {
        let result = self.serve_until_done().await;
        if let Some(v) = self.mcrouter.as_mut().and_then(|m| m.validation.take()) {
            v.abandon();
        }
        result
    }

    async fn serve_until_done(&mut self) -> Result<u8, Error> {
        self.feed_all(|| Event::Tick)?;
        let mut watchdog = self.notifier.watchdog.map(tokio::time::interval);
        loop {
            self.tell_the_service_manager();
            let wake = self.pairs.iter().map(|p| p.engine.next_wake()).min();
            let wake = Instant::from_std(wake.unwrap_or_else(|| Instant::now().into_std()));
            let child = self.mcrouter.as_ref().map(|m| m.child);
            let kill_at = child.and_then(|c| c.kill_deadline());
            let restart_at = child.and_then(|c| c.restart_at());
            let step = tokio::select! {
                results = self.lookups.next() => self.looked(results),
                _ = sleep_until(wake) => self.feed_all(|| Event::Tick).map(|()| None),
                n = first_change(&mut self.pairs) => self.template_touched(n),
                arrival = self.signals.next() => self.on_signal(arrival),
                Some(answer) = self.asks.join_next(), if !self.asks.is_empty() => {
                    self.mcrouter_answered(answer)
                }
                _ = sleep_until(kill_at.unwrap_or_else(Instant::now)), if kill_at.is_some() => {
                    self.stop_timeout_passed()
                }
                _ = sleep_until(restart_at.unwrap_or_else(Instant::now)), if restart_at.is_some() => {
                    self.backoff_over()
                }
                Some(ask) = next(&mut self.http) => self.answer(ask),
                Some(told) = next(&mut self.told) => self.mcrouter_told(told),
                Some((pid, reason)) = self.validators_said.1.recv() => {
                    self.validator_said(pid, reason)
                }
                Some(done) = self.remaps.join_next(), if !self.remaps.is_empty() => {
                    self.remap_measured(done)
                }
                Some(done) = self.probes.join_next(), if !self.probes.is_empty() => {
                    self.probed(done)
                }
                _ = tick(&mut watchdog) => {
                    self.notifier.ping();
                    Ok(None)
                }
            };
            if let Some(code) = step? {
                return Ok(code);
            }
        }
    }

    /// Tell systemd (when it listens) whether mcw serves, whether a reload is done, and the
    /// state in a few words.
    fn tell_the_service_manager(&mut self) {
        if !self.notifier.on() {
            return;
        }
        let serving = self.serving();
        let settled = self.pairs.iter().all(|p| p.engine.settled());
        let status = self.status_line();
        self.notifier.update(serving, settled, status);
    }

    /// Give every pair's engine the event `make` makes, in order (time passed, SIGHUP, an
    /// answer: each pair keeps its own state of the same facts).
    fn feed_all(&mut self, make: impl Fn() -> Event) -> Result<(), Error> {
        for n in 0..self.pairs.len() {
            self.feed(n, make())?;
        }
        Ok(())
    }

    /// Give pair `n`'s engine `event`, perform what it says, and feed back what that caused,
    /// until nothing follows. Fails when the engine gives up (the startup timeout).
    fn feed(&mut self, n: usize, event: Event) -> Result<(), Error> {
        let mut queue = VecDeque::from([event]);
        while let Some(event) = queue.pop_front() {
            let now = Instant::now().into_std();
            self.metrics.event(&event);
            for action in self.pairs[n].engine.handle(event, now) {
                if let Some(next) = self.perform(n, action)? {
                    queue.push_back(next);
                }
            }
        }
        Ok(())
    }

    /// Perform one action of pair `n`'s engine; some produce the event that reports their
    /// outcome.
    fn perform(&mut self, n: usize, action: Action) -> Result<Option<Event>, Error> {
        let pair = &self.pairs[n].pair;
        Ok(match action {
            Action::Lookup(queries) => {
                self.lookups.start(queries);
                None
            }
            Action::ReadTemplate => Some(Event::Template(Template::read(&pair.template))),
            Action::Write {
                generation,
                bytes,
                force,
            } => {
                let written = match force {
                    true => pair.output.replace(&bytes),
                    false => pair.output.write_if_changed(&bytes),
                };
                let result = written.map(wrote).map_err(|e| e.to_string());
                Some(Event::Wrote { generation, result })
            }
            Action::Validate { generation, bytes } => self.start_validation(n, generation, &bytes),
            Action::EndValidation {
                generation,
                install,
            } => self.end_validation(n, generation, install),
            Action::AskMcrouter => {
                if let Some(addr) = self.admin {
                    self.asks.spawn(admin::ask(addr));
                }
                None
            }
            Action::StartChild { bytes } => Some(self.start_child(n, &bytes)?),
            Action::Probe { servers } => {
                self.probes
                    .spawn(async move { (n, crate::memcached::answering(servers).await) });
                None
            }
            Action::GiveUp(mut failure) => {
                failure.output = self.named(n).map(|p| p.to_path_buf());
                return Err(failure.into());
            }
            Action::Report(Report::PoolChanged {
                pool,
                added,
                removed,
                servers,
                change,
                gone,
            }) => {
                let change_of = Remapped {
                    n,
                    pool,
                    added,
                    removed,
                    servers,
                    gone,
                    remapped: Err(String::new()),
                };
                self.measure(change_of, change);
                None
            }
            Action::Report(report) => {
                self.metrics.report(&pair.output.path, &report);
                log::log(&report, &pair.template, &pair.output.path, self.named(n));
                None
            }
        })
    }

    /// Pair `n`'s output when there are several pairs, so messages about one config name it;
    /// with one pair, messages stay as they are.
    fn named(&self, n: usize) -> Option<&Path> {
        (self.pairs.len() > 1).then(|| self.pairs[n].pair.output.path.as_path())
    }

    /// A lookup task finished: its answers go to every pair (each keeps those its template
    /// asks for), and are counted once, under the token of the first pair that asks.
    fn looked(&mut self, results: crate::engine::Lookups) -> Result<Option<u8>, Error> {
        self.metrics.looked(&results, |q| {
            let mut engines = self.pairs.iter().map(|p| &p.engine);
            engines
                .find_map(|e| e.token_of(q))
                .map_or_else(|| q.to_string(), str::to_string)
        });
        self.feed_all(|| Event::Looked(results.clone()))?;
        Ok(None)
    }

    fn mcrouter_told(&mut self, told: stderr::Told) -> Result<Option<u8>, Error> {
        match told {
            stderr::Told::LoadFailed(reason) => self.feed(0, Event::LoadFailed(reason))?,
            stderr::Told::StoppedWatching => self.restart_for_lost_watch(),
        }
        Ok(None)
    }

    fn template_touched(&mut self, n: usize) -> Result<Option<u8>, Error> {
        let read = Template::read(&self.pairs[n].pair.template);
        self.feed(n, Event::Template(read))?;
        Ok(None)
    }

    fn probed(
        &mut self,
        done: Result<(usize, std::collections::HashSet<String>), JoinError>,
    ) -> Result<Option<u8>, Error> {
        match done {
            Ok((n, alive)) => self.feed(n, Event::Probed(alive))?,
            // Whichever pair asked, none of its servers counts as answering.
            Err(e) => {
                tracing::warn!(reason = %e, "probing the old servers failed");
                self.feed_all(|| Event::Probed(Default::default()))?;
            }
        }
        Ok(None)
    }

    fn mcrouter_answered(
        &mut self,
        answer: Result<Observed, JoinError>,
    ) -> Result<Option<u8>, Error> {
        let answer = answer.unwrap_or_else(|e| Observed {
            running: Err(format!("the question failed: {e}")),
            failures: None,
            from_disk: false,
        });
        self.feed(0, Event::Running(answer))?;
        Ok(None)
    }
}

/// What the output's write did, in the engine's words.
fn wrote(written: Written) -> Wrote {
    match written {
        Written::Unchanged => Wrote::Unchanged,
        Written::Replaced => Wrote::Replaced,
        Written::Unsynced(reason) => Wrote::Unsynced(reason),
    }
}
