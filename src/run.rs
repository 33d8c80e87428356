//! The event loop of `mcw watch` and `mcw run`: one `select!` whose arms each call one named
//! step, in the manner of tini's main loop, and the executor of the engine's actions.
//!
//! Owns the effects: lookups (spawned, so signals are handled while DNS is slow), reading the
//! template, writing the output, the validator process, questions to mcrouter, the child and
//! its signals, and turning the engine's reports into log lines. What to do, and when, is the
//! [`Engine`]'s decision; the child's lifecycle is [`supervise::Child`]'s.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::{Id, JoinError, JoinSet};
use tokio::time::{Instant, sleep_until};

use crate::cli::{RunArgs, WatchArgs};
use crate::confirm;
use crate::engine::{Action, ConfirmSettings, Engine, Event, Lookups, Observed, Report};
use crate::error::Error;
use crate::http::{self, Ask, Readiness};
use crate::metrics::{self, Metrics};
use crate::output::{Candidate, OutputSpec};
use crate::resolve::Query;
use crate::resolve::{Dns, Failure};
use crate::settings::{self, Service, Supervise};
use crate::supervise::signals::{self, Arrival, Disposition, Mode, Signals};
use crate::supervise::{self, Child, Exit};
use crate::template::Template;
use crate::watch::TemplateWatcher;

/// How long the template directory must be quiet before a change is read.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// `mcw watch`: keep the output current until SIGTERM/SIGINT (exit 0).
pub async fn watch(args: &WatchArgs) -> Result<u8, Error> {
    let service = settings::service(&args.service)?;
    // As a sidecar's PID 1, orphans (of `kubectl exec` sessions, say) land on mcw: reap them.
    Loop::new(service, None)?.serve().await
}

/// `mcw run`: everything `watch` does, plus supervising the command after `--`.
pub async fn run(args: &RunArgs) -> Result<u8, Error> {
    let sup = settings::supervise(args)?;
    let service = settings::service(&args.service)?;
    settings::one_pair(&service)?;
    if sup.launch.mcrouter_at.is_none() {
        tracing::warn!(
            command = %args.command.join(" "),
            name = %args.mcrouter_name,
            "no word of the command is named mcrouter, so its arguments are not vetted (see --mcrouter-name)"
        );
    }
    if let Err(e) = signals::unblock_all() {
        tracing::warn!(reason = %e, "cannot clear the inherited signal mask; mcrouter inherits it");
    }
    let pid1 = std::process::id() == 1;
    if !pid1
        && sup.subreaper
        && let Err(e) = supervise::become_subreaper()
    {
        tracing::warn!(reason = %e, "cannot become a child subreaper; orphans of mcrouter's children will not be reaped by mcw");
    }
    if sup.admin.is_none() {
        tracing::warn!(
            "mcrouter has no -p/--port, so mcw cannot confirm that it reloads the configs it writes"
        );
    }
    Loop::new(service, Some(sup))?.serve().await
}

/// The child side of `run`.
struct Supervisor {
    settings: Supervise,
    child: Child,
    /// The candidate being validated (`--validate`).
    validation: Option<Validation>,
}

struct Validation {
    generation: u64,
    candidate: Candidate,
    /// The validator's pid until it has been reaped.
    pid: Option<i32>,
}

impl Validation {
    /// Kill the validator if it still runs; its exit is reaped like any orphan's.
    fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = signals::send(pid, nix::sys::signal::Signal::SIGKILL as i32);
        }
    }

    /// mcw is leaving: stop the validator and remove its candidate.
    fn abandon(mut self) {
        self.stop();
        self.candidate.discard();
    }
}

/// One template and its output: its own engine (template in force, last good answers, what
/// was written) and its own template watch.
struct Pair {
    engine: Engine,
    template: PathBuf,
    output: OutputSpec,
    watcher: TemplateWatcher,
}

/// Everything the loop owns.
struct Loop {
    /// At least one; in `run` mode exactly one, and the child, validation and confirmation
    /// are about it.
    pairs: Vec<Pair>,
    dns: Dns,
    admin: Option<SocketAddr>,
    signals: Signals,
    lookups: JoinSet<Lookups>,
    /// The queries of each lookup task, so a task that panics still reports them (as failed).
    in_flight: HashMap<Id, Vec<Query>>,
    /// Every query some lookup task is asking: a pair that wants one of them waits for that
    /// answer (every pair gets every answer) instead of asking again.
    asking: HashSet<Query>,
    asks: JoinSet<Observed>,
    sup: Option<Supervisor>,
    metrics: Metrics,
    /// Questions from the HTTP endpoint (`--metrics-listen`).
    http: Option<mpsc::Receiver<Ask>>,
}

impl Loop {
    /// Load the template, clear leftovers of a crashed run, and start listening for signals
    /// (before any child exists, so none is lost).
    fn new(s: Service, sup: Option<Supervise>) -> Result<Loop, Error> {
        // First, so a taken port stops mcw before anything else happens.
        let listener = s
            .metrics_listen
            .map(|addr| http::bind(addr).map_err(|source| Error::Listen { addr, source }))
            .transpose()?;
        let admin = sup.as_ref().and_then(|p| p.admin);
        let engine_settings = |template: PathBuf| crate::engine::Settings {
            template,
            min_refresh: s.min_refresh,
            max_refresh: s.max_refresh,
            startup_timeout: s.startup_timeout,
            allow_empty: s.allow_empty,
            hold_removed: s.hold_removed,
            route_prefix: sup.as_ref().map(|p| p.route_prefix.clone()),
            validate_timeout: sup
                .as_ref()
                .filter(|p| p.validator.is_some())
                .map(|p| p.validate_timeout),
            start_child: sup.is_some(),
            confirm: sup
                .as_ref()
                .filter(|p| p.admin.is_some())
                .map(|p| ConfirmSettings {
                    timeout: p.confirm_timeout,
                    poll: confirm::POLL,
                    slow_poll: confirm::SLOW_POLL,
                }),
        };
        let mut pairs = Vec::with_capacity(s.pairs.len());
        for (n, p) in s.pairs.into_iter().enumerate() {
            let text = Template::read(&p.template)?;
            let settings = engine_settings(p.template.clone());
            let now = Instant::now().into_std();
            let engine = Engine::new(settings, text, now, seed() ^ n as u64)?;
            for left in p.output.remove_leftovers() {
                tracing::info!(path = %left.display(), "removed a temp file left by an earlier run");
            }
            let watcher =
                TemplateWatcher::new(&p.template, DEBOUNCE, s.template_poll).map_err(|source| {
                    Error::Setup {
                        what: "the template watch",
                        source,
                    }
                })?;
            pairs.push(Pair {
                engine,
                template: p.template,
                output: p.output,
                watcher,
            });
        }
        let dns = Dns::new(&s.dns)?;
        let mode = if sup.is_some() {
            Mode::Run
        } else {
            Mode::Watch
        };
        let signals = Signals::listen(&signals::caught(mode)).map_err(|source| Error::Setup {
            what: "signal handling",
            source,
        })?;
        let metrics = Metrics::new(metrics::Mode {
            supervise: sup.is_some(),
            confirm: admin.is_some(),
        });
        for p in &pairs {
            metrics.add_output(&p.output.path);
        }
        let http = listener.map(|listener| {
            let (tx, rx) = mpsc::channel(16);
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(%addr, "serving /metrics, /healthz, /readyz and /status");
            }
            http::serve(listener, tx, admin);
            rx
        });
        for p in &pairs {
            tracing::info!(
                template = %p.template.display(),
                output = %p.output.path.display(),
                "watching"
            );
        }
        Ok(Loop {
            pairs,
            dns,
            admin,
            signals,
            lookups: JoinSet::new(),
            in_flight: HashMap::new(),
            asking: HashSet::new(),
            asks: JoinSet::new(),
            sup: sup.map(|settings| Supervisor {
                settings,
                child: Child::Pending,
                validation: None,
            }),
            metrics,
            http,
        })
    }

    /// Run until stopped (watch) or until the child exits (run); returns the exit code. A
    /// validator still running then is killed and its candidate removed.
    async fn serve(mut self) -> Result<u8, Error> {
        let result = self.serve_until_done().await;
        if let Some(v) = self.sup.as_mut().and_then(|s| s.validation.take()) {
            v.abandon();
        }
        result
    }

    async fn serve_until_done(&mut self) -> Result<u8, Error> {
        if let Some(code) = self.feed_all(|| Event::Tick)? {
            return Ok(code);
        }
        loop {
            let wake = self.pairs.iter().map(|p| p.engine.next_wake()).min();
            let wake = Instant::from_std(wake.unwrap_or_else(|| Instant::now().into_std()));
            let kill_at = self.sup.as_ref().and_then(|s| s.child.kill_deadline());
            let step = tokio::select! {
                Some(done) = self.lookups.join_next_with_id(), if !self.lookups.is_empty() => {
                    self.lookup_done(done)
                }
                _ = sleep_until(wake) => self.feed_all(|| Event::Tick),
                n = first_change(&mut self.pairs) => self.template_touched(n),
                arrival = self.signals.next() => self.on_signal(arrival),
                Some(answer) = self.asks.join_next(), if !self.asks.is_empty() => {
                    self.mcrouter_answered(answer)
                }
                _ = sleep_until(kill_at.unwrap_or_else(Instant::now)), if kill_at.is_some() => {
                    self.stop_timeout_passed()
                }
                Some(ask) = next_ask(&mut self.http) => self.answer(ask),
            };
            if let Some(code) = step? {
                return Ok(code);
            }
        }
    }

    /// Give every pair's engine the event `make` makes, in order (time passed, SIGHUP, an
    /// answer: each pair keeps its own state of the same facts).
    fn feed_all(&mut self, make: impl Fn() -> Event) -> Result<Option<u8>, Error> {
        for n in 0..self.pairs.len() {
            if let Some(code) = self.feed(n, make())? {
                return Ok(Some(code));
            }
        }
        Ok(None)
    }

    /// Give pair `n`'s engine `event`, perform what it says, and feed back what that caused,
    /// until nothing follows.
    fn feed(&mut self, n: usize, event: Event) -> Result<Option<u8>, Error> {
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
        Ok(None)
    }

    /// Perform one action of pair `n`'s engine; some produce the event that reports their
    /// outcome.
    fn perform(&mut self, n: usize, action: Action) -> Result<Option<Event>, Error> {
        let pair = &self.pairs[n];
        Ok(match action {
            Action::Lookup(queries) => {
                self.lookup(queries);
                None
            }
            Action::ReadTemplate => Some(Event::Template(Template::read(&pair.template))),
            Action::Write { generation, bytes } => {
                let result = pair
                    .output
                    .write_if_changed(&bytes)
                    .map_err(|e| e.to_string());
                Some(Event::Wrote { generation, result })
            }
            Action::Validate { generation, bytes } => self.start_validation(n, generation, &bytes),
            Action::EndValidation {
                generation,
                install,
            } => self.end_validation(n, generation, install),
            Action::AskMcrouter => {
                if let Some(addr) = self.admin {
                    self.asks.spawn(confirm::ask(addr));
                }
                None
            }
            Action::StartChild => Some(self.start_child(n)?),
            Action::GiveUp(mut failure) => {
                failure.output = self.named(n).map(|p| p.to_path_buf());
                return Err(failure.into());
            }
            Action::Report(report) => {
                self.metrics.report(&pair.output.path, &report);
                self.log(n, &report);
                None
            }
        })
    }

    /// Pair `n`'s output when there are several pairs, so messages about one config name it;
    /// with one pair, messages stay as they are.
    fn named(&self, n: usize) -> Option<&std::path::Path> {
        (self.pairs.len() > 1).then(|| self.pairs[n].output.path.as_path())
    }

    /// Start one task asking those of `queries` no task is asking yet.
    fn lookup(&mut self, queries: Vec<Query>) {
        let queries: Vec<Query> = queries
            .into_iter()
            .filter(|q| self.asking.insert(q.clone()))
            .collect();
        if queries.is_empty() {
            return;
        }
        let dns = self.dns.clone();
        let task = self.lookups.spawn({
            let queries = queries.clone();
            async move { dns.resolve_all(queries).await }
        });
        self.in_flight.insert(task.id(), queries);
    }

    /// The token that asks `query`, as the first pair whose template asks it writes it.
    fn token_of(&self, query: &Query) -> String {
        let mut engines = self.pairs.iter().map(|p| &p.engine);
        engines
            .find_map(|e| e.token_of(query))
            .map_or_else(|| query.to_string(), str::to_string)
    }

    /// A lookup task finished: its answers go to every pair (each keeps those its template
    /// asks for), and are counted once.
    fn lookup_done(&mut self, done: Result<(Id, Lookups), JoinError>) -> Result<Option<u8>, Error> {
        let results = match done {
            Ok((id, results)) => {
                for q in self.in_flight.remove(&id).unwrap_or_default() {
                    self.asking.remove(&q);
                }
                results
            }
            // A lookup task that panicked still answers for its queries, as failed ones, so
            // they are retried instead of staying "in flight" for ever.
            Err(e) => {
                tracing::error!(reason = %e, "lookup task failed");
                let queries = self.in_flight.remove(&e.id()).unwrap_or_default();
                let failure = Failure::other(format!("lookup task failed: {e}"));
                for q in &queries {
                    self.asking.remove(q);
                }
                queries
                    .into_iter()
                    .map(|q| (q, Err(failure.clone())))
                    .collect()
            }
        };
        self.metrics.looked(&results, |q| self.token_of(q));
        self.feed_all(|| Event::Looked(results.clone()))
    }

    fn template_touched(&mut self, n: usize) -> Result<Option<u8>, Error> {
        let read = Template::read(&self.pairs[n].template);
        self.feed(n, Event::Template(read))
    }

    fn mcrouter_answered(
        &mut self,
        answer: Result<Observed, JoinError>,
    ) -> Result<Option<u8>, Error> {
        let answer = answer.unwrap_or_else(|e| Observed {
            running: Err(format!("the question failed: {e}")),
            failures: None,
        });
        self.feed(0, Event::Running(answer))
    }

    fn stop_timeout_passed(&mut self) -> Result<Option<u8>, Error> {
        if let Some(s) = &mut self.sup {
            s.child.kill();
        }
        Ok(None)
    }

    /// Write a candidate beside the output and start `mcrouter --validate-config` on it; a
    /// candidate that cannot be made or checked is a rejection.
    fn start_validation(&mut self, n: usize, generation: u64, bytes: &[u8]) -> Option<Event> {
        let reject = |reason: String| {
            Some(Event::Validated {
                generation,
                result: Err(reason),
            })
        };
        let Some(s) = &mut self.sup else {
            return reject("no validator".into());
        };
        let Some(argv) = &s.settings.validator else {
            return reject("no validator".into());
        };
        let candidate = match self.pairs[n].output.prepare(bytes) {
            Ok(c) => c,
            Err(e) => return reject(e.to_string()),
        };
        let mut args = argv[1..].to_vec();
        args.extend(["-f".into(), candidate.path.to_string_lossy().into_owned()]);
        match supervise::spawn_quiet(&argv[0], &args) {
            Ok(pid) => {
                tracing::debug!(pid, candidate = %candidate.path.display(), "validating");
                s.validation = Some(Validation {
                    generation,
                    candidate,
                    pid: Some(pid),
                });
                None
            }
            Err(e) => {
                candidate.discard();
                reject(format!("cannot run {}: {e}", argv[0]))
            }
        }
    }

    /// Stop the validator if it still runs; install the candidate or discard it.
    fn end_validation(&mut self, n: usize, generation: u64, install: bool) -> Option<Event> {
        let s = self.sup.as_mut()?;
        let mut v = s.validation.take_if(|v| v.generation == generation)?;
        v.stop();
        if !install {
            v.candidate.discard();
            return None;
        }
        let result = self.pairs[n].output.install(v.candidate).map(|()| true);
        Some(Event::Wrote {
            generation,
            result: result.map_err(|e| e.to_string()),
        })
    }

    fn start_child(&mut self, n: usize) -> Result<Event, Error> {
        let Some(s) = &mut self.sup else {
            return Ok(Event::ChildStarted);
        };
        let config = self.pairs[n].output.path.to_string_lossy().into_owned();
        let command = &s.settings.launch.command;
        s.child = Child::spawn(command, &["-f".into(), config])?;
        tracing::info!(pid = s.child.pid(), command = %command.join(" "), "started mcrouter");
        Ok(Event::ChildStarted)
    }

    /// Act on one signal. Returns an exit code when mcw should leave now.
    fn on_signal(&mut self, arrival: Arrival) -> Result<Option<u8>, Error> {
        let sig = arrival.signal;
        let name = signals::name(sig);
        match (arrival.disposition(), &mut self.sup) {
            (Disposition::Drop, _) => {
                // A SIGPIPE for mcw's own write (stderr gone, say): the write already failed
                // with EPIPE, and the signal is about mcw, not for mcrouter.
                tracing::debug!(signal = %name, "raised by mcw's own write; not forwarded");
                Ok(None)
            }
            (Disposition::Refresh, _) => {
                tracing::info!(signal = %name, "re-reading the template and re-resolving every token");
                self.feed_all(|| Event::Refresh)
            }
            (Disposition::Reap, _) => self.reap(),
            (Disposition::HangUp, Some(s)) if s.child.pid().is_some() => {
                // mcrouter has no SIGHUP handler: the terminal's signal would kill it.
                let term = nix::sys::signal::Signal::SIGTERM as i32;
                tracing::info!(signal = %name, pid = s.child.pid(), timeout = ?s.settings.stop_timeout, "terminal hung up; stopping mcrouter");
                if s.child.stop(term, s.settings.stop_timeout) {
                    self.metrics.forwarded(&signals::name(term));
                }
                Ok(None)
            }
            (Disposition::HangUp, _) => {
                tracing::info!(signal = %name, "terminal hung up; stopping");
                Ok(Some(0))
            }
            (Disposition::Stop, Some(s)) if s.child.pid().is_some() => {
                tracing::info!(signal = %name, pid = s.child.pid(), timeout = ?s.settings.stop_timeout, "stopping mcrouter");
                if s.child.stop(sig, s.settings.stop_timeout) {
                    self.metrics.forwarded(&name);
                }
                Ok(None)
            }
            (Disposition::Stop, _) => {
                tracing::info!(signal = %name, "stopping");
                Ok(Some(0))
            }
            (Disposition::Forward, Some(s)) => {
                let sent = s.child.forward(sig);
                tracing::debug!(signal = %name, sent, "forwarded");
                if sent {
                    self.metrics.forwarded(&name);
                }
                Ok(None)
            }
            (Disposition::Forward, None) => Ok(None),
        }
    }

    /// Collect every exited child: mcrouter (then leave with its status), the validator (its
    /// verdict goes to the engine), orphans.
    fn reap(&mut self) -> Result<Option<u8>, Error> {
        for (pid, exit) in supervise::reap() {
            let Some(s) = &mut self.sup else { continue };
            if Some(pid) == s.child.pid() {
                s.child.exited(exit);
            } else if let Some(v) = s.validation.as_mut().filter(|v| v.pid == Some(pid)) {
                v.pid = None;
                let generation = v.generation;
                let result = match exit {
                    Exit::Code(0) => Ok(()),
                    other => Err(format!("exit status {}", other.code())),
                };
                self.feed(0, Event::Validated { generation, result })?;
            } else {
                tracing::debug!(pid, "reaped an orphan");
            }
        }
        match self.sup.as_ref().map(|s| s.child) {
            Some(Child::Exited { code }) => Ok(Some(code)),
            _ => Ok(None),
        }
    }

    /// Answer the HTTP endpoint from the loop's own state.
    fn answer(&mut self, ask: Ask) -> Result<Option<u8>, Error> {
        // Health and readiness need no snapshot; metrics and /status take one per pair.
        let now = Instant::now().into_std();
        let statuses = || {
            let pairs = self.pairs.iter();
            pairs
                .map(|p| crate::engine::PairStatus {
                    template: &p.template,
                    output: &p.output.path,
                    status: p.engine.status(now),
                })
                .collect::<Vec<_>>()
        };
        let child = self.sup.as_ref().map(|s| s.child);
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
        let Some(s) = &self.sup else {
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

    /// One log line per report, with the field names the README lists (`template`, `output`,
    /// `token`, `pool`, `generation`, `reason`, `pid`, `signal`, `exit_code`, `md5`).
    fn log(&self, n: usize, report: &Report) {
        let pair = &self.pairs[n];
        let output = pair.output.path.display();
        let template = pair.template.display();
        // With several pairs, every line names its output (once).
        let config = self.named(n).map(|p| tracing::field::display(p.display()));
        match report {
            Report::TemplateChanged { tokens } => {
                tracing::info!(output = config, %template, tokens, "template changed")
            }
            Report::TemplateRejected { reason } => {
                tracing::error!(output = config, %template, reason, "template edit rejected; keeping the last good config")
            }
            Report::TemplateUnreadable { reason } => {
                tracing::warn!(output = config, %template, reason, "cannot read the template; keeping the last good config")
            }
            Report::PrefixUnchecked { routes } => {
                tracing::debug!(output = config, %template, routes, "routing prefix matches no plain alias; some routes are macro calls and cannot be checked")
            }
            Report::LookupFailed {
                token,
                failure,
                kept: true,
            } => {
                tracing::warn!(output = config, token, reason = %failure, "DNS lookup failed; keeping the last good answer")
            }
            Report::LookupFailed { token, failure, .. } => {
                tracing::warn!(output = config, token, reason = %failure, "DNS lookup failed; nothing to write until it answers")
            }
            Report::DnsRecovered { token } => {
                tracing::info!(output = config, token, "DNS answers again")
            }
            Report::Holding {
                token,
                server,
                hold,
            } => tracing::info!(
                output = config,
                %token,
                %server,
                hold = ?hold,
                "server vanished from DNS; holding its slot (--hold-removed)"
            ),
            Report::HoldEnded {
                token,
                server,
                back: true,
            } => {
                tracing::info!(output = config, %token, %server, "held server is back in DNS; nothing changes")
            }
            Report::HoldEnded {
                token,
                server,
                back: false,
            } => {
                tracing::info!(output = config, %token, %server, "hold ran out; removing the server")
            }
            Report::Rendered { generation, md5 } => {
                tracing::debug!(output = config, generation, %md5, "rendered a new config")
            }
            Report::PoolChanged {
                pool,
                added,
                removed,
                servers,
                remapped,
                gone,
            } => {
                let remapped = match remapped {
                    Ok(share) => share.to_string(),
                    Err(why) => format!("unknown ({why})"),
                };
                let added = added.iter().map(|s| format!("+{s}")).collect::<Vec<_>>();
                let removed = removed.iter().map(|s| format!("-{s}")).collect::<Vec<_>>();
                let message = if *gone {
                    "pool removed"
                } else if added.is_empty() && removed.is_empty() {
                    "pool servers reordered"
                } else {
                    "pool servers changed"
                };
                tracing::info!(
                    output = config,
                    pool = %pool,
                    added = %added.join(" "),
                    removed = %removed.join(" "),
                    servers,
                    %remapped,
                    "{message}"
                );
            }
            Report::Wrote {
                generation,
                md5,
                pools,
                servers,
            } => {
                tracing::info!(%output, generation, %md5, pools, servers, "wrote config")
            }
            Report::RenderNote { note } => {
                tracing::warn!(output = config, %template, reason = %note, "rendered with a caveat")
            }
            Report::AlreadyOnDisk { md5 } => {
                tracing::info!(%output, %md5, "output already holds this config")
            }
            Report::WriteFailed { reason } => {
                tracing::error!(%output, reason, "cannot write the config; the old file is intact, retrying")
            }
            Report::SkippedRejected { md5 } => {
                tracing::debug!(output = config, %md5, "this render was rejected before; not writing it again")
            }
            Report::ValidatorRejected { generation, reason } => {
                tracing::error!(
                    generation,
                    reason,
                    "mcrouter --validate-config rejected the new config; it was not installed"
                )
            }
            Report::Confirmed { md5, after } => {
                let after_ms = after.as_millis() as u64;
                tracing::info!(%md5, after_ms, "mcrouter runs the new config")
            }
            Report::RunsEarlier { md5 } => {
                tracing::debug!(%md5, "mcrouter runs an earlier config of mcw's")
            }
            Report::Rejected {
                md5,
                running,
                failures,
                restoring,
            } => {
                tracing::error!(
                    %md5,
                    running_md5 = %running,
                    config_failures = failures,
                    restoring,
                    "mcrouter rejected the config and still runs the previous one"
                )
            }
            Report::Restored { md5 } => {
                tracing::info!(%md5, %output, "wrote the running config back to the output")
            }
            Report::NotReloadedYet { md5, running } => {
                tracing::warn!(%md5, running_md5 = %running, "mcrouter has not reloaded the new config yet and shows no failed reload; still asking")
            }
            Report::CannotTell { md5, reason } => {
                tracing::warn!(%md5, reason, "cannot tell whether mcrouter runs the new config; still asking")
            }
            Report::Repaired { md5 } => {
                tracing::warn!(%md5, %output, "the output on disk was not the config in force (deleted or replaced); wrote it again")
            }
        }
    }
}

/// The index of the first pair whose template may have changed. Cancellation-safe, as each
/// watcher's `changed` is.
async fn first_change(pairs: &mut [Pair]) -> usize {
    let mut waits: Vec<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = pairs
        .iter_mut()
        .map(|p| Box::pin(p.watcher.changed()) as Pin<Box<dyn Future<Output = ()> + Send>>)
        .collect();
    std::future::poll_fn(|cx| {
        let ready = waits
            .iter_mut()
            .position(|w| w.as_mut().poll(cx).is_ready());
        ready.map_or(Poll::Pending, Poll::Ready)
    })
    .await
}

/// The next question from the HTTP endpoint; never, without one.
async fn next_ask(rx: &mut Option<mpsc::Receiver<Ask>>) -> Option<Ask> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Seed of the refresh jitter: differs between processes and starts.
fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()).rotate_left(32)
}
