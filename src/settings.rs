//! Command-line values → checked settings, once, up front (ripgrep's low-args → high-args
//! split).
//!
//! Owns every rule about what the flags may hold together: durations within sane bounds (so no
//! `Instant + d` can overflow and no retry loop can spin), `--min-refresh` not above
//! `--max-refresh`, the output's directory (created, made absolute), mcrouter's arguments and
//! routing prefix, and what `--validate` will run. A bad combination is a [`UsageError`]
//! (exit 2) before anything starts. It does not start anything.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{DnsArgs, RunArgs, ServiceArgs};
use crate::engine;
use crate::error::{Error, UsageError};
use crate::mcrouter::{self, admin};
use crate::output::OutputSpec;
use crate::prefix;
use crate::resolve::DnsSettings;
use crate::supervise::args::{self, Launch};
use crate::supervise::restart::Policy;
use crate::supervise::socket::{NotHeld, Plan};

/// No duration flag may exceed this: a day is longer than any sensible refresh, timeout or
/// grace period, and far from where adding it to the clock could overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// The shortest `--min-refresh`: it is also the retry interval after a failure, so a smaller
/// one would make a failing token a busy loop.
pub const MIN_REFRESH_FLOOR: Duration = Duration::from_millis(10);

/// One template and the output rendered from it.
#[derive(Clone, Debug)]
pub struct Pair {
    pub template: PathBuf,
    /// Absolute (mcrouter gets it with `-f`), its directory created.
    pub output: OutputSpec,
}

/// What `watch` and `run` share.
#[derive(Clone, Debug)]
pub struct Service {
    /// At least one; `run` has exactly one. Outputs are distinct.
    pub pairs: Vec<Pair>,
    pub dns: DnsSettings,
    /// Refresh, startup and hold settings, as every pair's engine takes them.
    pub refresh: engine::Refresh,
    pub template_poll: Option<Duration>,
    /// `--metrics-listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// `--warm-up` and `--warm-up-ttl`, when on.
    pub warm_up: Option<(Duration, Duration)>,
}

/// What `run` adds: mcrouter's command and what mcw read from it, and how to supervise it.
#[derive(Clone, Debug)]
pub struct Run {
    pub launch: Launch,
    /// What the engine needs of it: the routing prefix, validation, confirmation.
    pub supervision: engine::Supervision,
    pub stop_timeout: Duration,
    /// mcrouter's admin address, when its port is known.
    pub admin: Option<SocketAddr>,
    /// `mcrouter ARGS… --validate-config=exit …` (`--validate`); `-f CANDIDATE` is added.
    pub validator: Option<Vec<String>>,
    /// What mcw appends to mcrouter's command, before `-f OUTPUT` (see [`appended`]).
    pub appended: Vec<String>,
    pub subreaper: bool,
    /// The port mcw holds for mcrouter, or why it leaves it to mcrouter.
    pub hold: Result<Plan, NotHeld>,
    pub restart: Policy,
    pub restart_limit: u32,
}

impl Run {
    /// The command mcrouter is started with, as given. When mcw holds the port, its
    /// `--listen-sock-fd` goes after it and `-p` stays: mcrouter then binds nothing but still
    /// names itself after the port (its config dumps and stats files), as without mcw.
    pub fn command(&self) -> &[String] {
        &self.launch.command
    }
}

/// Check one duration flag against `[min, MAX_DURATION]`.
fn bounded(flag: &'static str, value: Duration, min: Duration) -> Result<Duration, UsageError> {
    if value > MAX_DURATION {
        return Err(UsageError::TooLong {
            flag,
            value,
            max: MAX_DURATION,
        });
    }
    if value < min {
        return Err(UsageError::TooShort { flag, value, min });
    }
    Ok(value)
}

/// DNS settings of every command.
pub fn dns(args: &DnsArgs) -> Result<DnsSettings, UsageError> {
    Ok(DnsSettings {
        servers: args.dns_servers.clone(),
        resolv_conf: args.resolv_conf.clone(),
        timeout: bounded("--dns-timeout", args.dns_timeout, Duration::from_millis(1))?,
        retries: args.dns_retries,
        tcp: args.dns_tcp,
    })
}

/// Settings of `watch`, and the shared part of `run`.
pub fn service(args: &ServiceArgs) -> Result<Service, Error> {
    let r = &args.refresh;
    let min_refresh = bounded("--min-refresh", r.min_refresh, MIN_REFRESH_FLOOR)?;
    let max_refresh = bounded("--max-refresh", r.max_refresh, MIN_REFRESH_FLOOR)?;
    if min_refresh > max_refresh {
        return Err(UsageError::RefreshOrder {
            min: min_refresh,
            max: max_refresh,
        }
        .into());
    }
    // Zero would give up before the first lookup could answer, even for a template without
    // tokens.
    let startup_timeout = bounded(
        "--startup-timeout",
        r.startup_timeout,
        Duration::from_millis(1),
    )?;
    let template_poll = args
        .template_poll
        .map(|d| bounded("--template-poll", d, MIN_REFRESH_FLOOR))
        .transpose()?;
    Ok(Service {
        pairs: pairs(args)?,
        dns: dns(&args.dns)?,
        refresh: engine::Refresh {
            min_refresh,
            max_refresh,
            startup_timeout,
            allow_empty: args.dns.allow_empty,
            hold_removed: bounded("--hold-removed", args.hold_removed, Duration::ZERO)?,
        },
        template_poll,
        metrics_listen: args.metrics_listen,
        warm_up: warm_up(args)?,
    })
}

/// `--warm-up` and its copies' expiry, which must outlast it (a copy that expires with the
/// warm-up only puts the misses off).
fn warm_up(args: &ServiceArgs) -> Result<Option<(Duration, Duration)>, UsageError> {
    let Some(duration) = args.warm_up else {
        return Ok(None);
    };
    let duration = bounded("--warm-up", duration, Duration::from_secs(1))?;
    let ttl = bounded("--warm-up-ttl", args.warm_up_ttl, Duration::from_secs(1))?;
    if ttl <= duration {
        return Err(UsageError::WarmUpTtl { duration, ttl });
    }
    Ok(Some((duration, ttl)))
}

/// Settings of `run`: mcrouter's command vetted, its routing prefix normalised.
pub fn run(args: &RunArgs) -> Result<Run, UsageError> {
    let launch = args::vet(&args.command, &args.mcrouter_name)?;
    // mcrouter's default routing prefix is /././ when -R is not given.
    let raw_prefix = launch.route_prefix.as_deref().unwrap_or("/././");
    let route_prefix = prefix::normalise(raw_prefix)?;
    let stop_timeout = bounded("--stop-timeout", args.stop_timeout, Duration::ZERO)?;
    let confirm_timeout = bounded(
        "--confirm-timeout",
        args.confirm_timeout,
        Duration::from_millis(1),
    )?;
    reload_fits(&launch, confirm_timeout)?;
    let validate_timeout = bounded(
        "--validate-timeout",
        args.validate_timeout,
        Duration::from_millis(1),
    )?;
    let validator = match (args.validate, launch.mcrouter_at) {
        (false, _) => None,
        (true, None) => return Err(UsageError::ValidateWithoutMcrouter),
        (true, Some(at)) => {
            let mut argv = launch.command[at..].to_vec();
            if launch.ports.is_empty() {
                // Validation needs a port argument even though it binds nothing.
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
    let hold = match args.hold_port {
        true => Plan::of(&launch),
        false => Err(NotHeld::Off),
    };
    let admin = mcrouter::admin_addr(&launch.ports, &launch.listen_addresses);
    let confirm = admin.map(|_| engine::ConfirmSettings {
        timeout: confirm_timeout,
        poll: admin::POLL,
        slow_poll: admin::SLOW_POLL,
    });
    Ok(Run {
        admin,
        appended: appended(&launch),
        supervision: engine::Supervision {
            route_prefix,
            validate_timeout: validator.as_ref().map(|_| validate_timeout),
            confirm,
        },
        launch,
        stop_timeout,
        validator,
        subreaper: args.subreaper,
        hold,
        restart: args.restart,
        restart_limit: args.restart_limit,
    })
}

/// The `--reconfiguration-delay-ms` mcw gives mcrouter when the command sets none (mcrouter's
/// own default is 1000). The delay guards against reading a half-written file; mcw only ever
/// replaces the config by rename, so a short one costs nothing and saves a second or two on
/// every change (BENCHMARKS.md, "DNS change to traffic").
pub const RELOAD_DELAY_UNDER_MCW: Duration = Duration::from_millis(100);

/// What mcw appends to a vetted mcrouter command (before `-f OUTPUT`), each unless the command
/// sets it itself: the short reload delay above, and `--max-dumped-config-age=0`, so that a
/// config mcrouter cannot load at startup makes it exit (and mcw with it) instead of serving,
/// silently, a copy it dumped up to 12 hours earlier. A command mcw did not vet (no word named
/// mcrouter) gets nothing but `-f`.
pub fn appended(launch: &Launch) -> Vec<String> {
    if launch.mcrouter_at.is_none() {
        return Vec::new();
    }
    let mut extra = Vec::new();
    if launch.reconfiguration_delay_ms.is_none() {
        let ms = RELOAD_DELAY_UNDER_MCW.as_millis();
        extra.push(format!("--reconfiguration-delay-ms={ms}"));
    }
    if !launch.sets_dump_age {
        extra.push("--max-dumped-config-age=0".into());
    }
    extra
}

/// The reconfiguration delay mcrouter runs with: the command's, else mcw's (when mcw vets the
/// command), else mcrouter's default of 1 s.
fn reload_delay(launch: &Launch) -> Duration {
    match (launch.reconfiguration_delay_ms, launch.mcrouter_at) {
        (Some(ms), _) => Duration::from_millis(ms),
        (None, Some(_)) => RELOAD_DELAY_UNDER_MCW,
        (None, None) => Duration::from_millis(1000),
    }
}

/// The longest mcrouter may take to reload a written file: it notices the change within one
/// reconfiguration delay, waits another (plus its jitter) and then rebuilds, so 3 × delay +
/// jitter leaves one delay for the build.
pub fn reload_window(launch: &Launch) -> Duration {
    let jitter = Duration::from_millis(launch.reconfiguration_jitter_ms.unwrap_or(0));
    reload_delay(launch)
        .saturating_mul(3)
        .saturating_add(jitter)
}

/// `--confirm-timeout` must leave mcrouter the time its own settings give it to reload.
fn reload_fits(launch: &Launch, confirm_timeout: Duration) -> Result<(), UsageError> {
    let needed = reload_window(launch);
    if confirm_timeout >= needed {
        return Ok(());
    }
    Err(UsageError::ConfirmTooShort {
        timeout: confirm_timeout,
        delay: reload_delay(launch).as_millis() as u64,
        jitter: launch.reconfiguration_jitter_ms.unwrap_or(0),
        needed,
    })
}

/// `--template`/`--source` and `--output` paired in order; each output absolute and distinct.
fn pairs(args: &ServiceArgs) -> Result<Vec<Pair>, Error> {
    let templates = args.template_paths();
    if templates.len() != args.outputs.len() {
        return Err(UsageError::PairCount {
            templates: templates.len(),
            outputs: args.outputs.len(),
        }
        .into());
    }
    let mut pairs: Vec<Pair> = Vec::with_capacity(templates.len());
    for (template, output) in templates.iter().zip(&args.outputs) {
        let output = absolute_output(output)?;
        if pairs.iter().any(|p| p.output.path == output.path) {
            return Err(UsageError::SharedOutput(output.path).into());
        }
        pairs.push(Pair {
            template: template.clone(),
            output,
        });
    }
    Ok(pairs)
}

/// The engine's settings for the pair whose template is `template`: the service's refresh
/// settings and, in `run` mode, what supervising mcrouter takes.
pub fn engine(service: &Service, run: Option<&Run>, template: &Path) -> engine::Settings {
    let warm_up = service.warm_up.map(|(duration, copy_ttl)| {
        // Two replicas reload one change apart by their DNS refresh (the engine adds the
        // token's), one lookup with its retries, and mcrouter's reload window: the command's
        // in `run`, mcrouter's default (3 × 1 s) in `watch`, which cannot see it.
        let dns = &service.dns;
        let lookup = dns.timeout.saturating_mul(dns.retries as u32 + 1);
        let reload = run.map_or(Duration::from_secs(3), |r| reload_window(&r.launch));
        engine::WarmUpSettings {
            duration,
            copy_ttl,
            allowance: lookup + reload,
        }
    });
    engine::Settings {
        template: template.to_path_buf(),
        refresh: service.refresh.clone(),
        supervision: run.map(|r| r.supervision.clone()),
        warm_up,
    }
}

/// `run` starts one mcrouter with one `-f`: exactly one pair.
pub fn one_pair(service: &Service) -> Result<(), UsageError> {
    match service.pairs.len() {
        1 => Ok(()),
        n => Err(UsageError::RunOnePair(n)),
    }
}

/// The output with an absolute path (mcrouter gets it with -f), its directory created if
/// missing (the default lives under /run).
fn absolute_output(output: &OutputSpec) -> Result<OutputSpec, Error> {
    let dir = crate::fsx::parent_dir(&output.path).to_path_buf();
    std::fs::create_dir_all(&dir).map_err(|source| Error::OutputDir {
        dir: dir.clone(),
        source,
    })?;
    let dir = std::fs::canonicalize(&dir).map_err(|source| Error::OutputDir { dir, source })?;
    let mut spec = output.clone();
    // OutputSpec refuses paths without a file name.
    spec.path = dir.join(output.path.file_name().unwrap_or_default());
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_bounded() {
        let ms = Duration::from_millis;
        assert_eq!(bounded("--x", ms(10), ms(10)).unwrap(), ms(10));
        let long = bounded(
            "--stop-timeout",
            Duration::from_secs(u64::MAX),
            Duration::ZERO,
        );
        let msg = long.unwrap_err().to_string();
        assert!(
            msg.starts_with("--stop-timeout") && msg.contains("too long"),
            "{msg}"
        );
        let short = bounded("--min-refresh", Duration::ZERO, MIN_REFRESH_FLOOR);
        assert!(short.unwrap_err().to_string().contains("too short"));
        assert!(bounded("--x", MAX_DURATION, Duration::ZERO).is_ok());
    }
}
