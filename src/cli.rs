//! The command line: clap types, each option with its `MCW_*` environment twin, and the
//! parsers that turn flag strings into typed values (durations, DNS servers, output specs).
//!
//! Owns what the user can type and how each value is parsed (a bad value is a usage error,
//! exit 2). Rules about values together (bounds, order) are `settings`'; acting is `app`'s and
//! `run`'s.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::output::OutputSpec;
use crate::supervise::restart::Policy;
use crate::supervise::{signal_table, signals};

/// Keeps an mcrouter config in step with DNS.
#[derive(Debug, Parser)]
#[command(name = "mcw", version, about, max_term_width = 100)]
pub struct Cli {
    /// Log format on stderr (level from MCW_LOG or RUST_LOG, default info).
    #[arg(long, global = true, env = "MCW_LOG_FORMAT", value_enum, default_value_t = Format::Text)]
    pub log_format: Format,

    #[command(subcommand)]
    pub command: Command,
}

/// Text for people, JSON for scripts: of the logs (`--log-format`) and of `diff`'s report
/// (`--format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render the template once, to --output or stdout.
    Render(RenderArgs),
    /// Parse, resolve and validate the template; print each token's servers; write nothing.
    Check(CheckArgs),
    /// Render now and compare with the config on disk: per pool the servers added, removed
    /// and moved, and the share of keys remapped. Exit 0: no change, 1: changes, 2: trouble.
    Diff(DiffArgs),
    /// Sidecar mode: render, then keep the output current until SIGTERM/SIGINT or Ctrl-C;
    /// SIGHUP re-reads the template and re-resolves now.
    #[command(after_help = watch_notes())]
    Watch(WatchArgs),
    /// Supervisor mode: everything watch does, plus running mcrouter with -f on the output,
    /// forwarding signals to it and confirming each reload.
    #[command(after_help = run_notes())]
    Run(RunArgs),
}

/// What `mcw watch --help` adds after the options: the signal table.
fn watch_notes() -> String {
    signal_table::help(signals::Mode::Watch)
}

/// What `mcw run --help` adds after the options: the signal table, the port, restarts,
/// confirmation and readiness.
fn run_notes() -> String {
    format!("{}\n{RUN_MORE}", signal_table::help(signals::Mode::Run))
}

const RUN_MORE: &str = "\
mcrouter runs in a process group of its own: a terminal's or a shell's signals reach mcw,
which passes on what mcrouter should get.

The port: when the command names one TCP port (-p N, with at most one --listen-addresses
address) and no --listen-sock-fd, --ssl-port or --unix-domain-sock, mcw binds it at start (a
port in use is an error before anything starts), listens from mcrouter's first start, and
passes it to every mcrouter it starts with --listen-sock-fd (mcrouter then binds nothing; -p
stays, as mcrouter names its dumps and stats files after it): clients that connect while
mcrouter restarts wait and are served. Other shapes (several ports, TLS, a unix socket) are
left to mcrouter, and --hold-port false leaves every port to it.

Restarts: mcw restarts mcrouter on the same port and config when its log says it stopped
watching its config file, on SIGUSR2, and, with --restart on-failure, when it dies of a signal
mcw did not send or exits non-zero (after 1s, doubling to 30s; a minute of health resets it;
after --restart-limit restarts in a row mcw exits with mcrouter's status). The config in force
is on disk before every start.

Confirmation and readiness (/readyz):
  Ready once mcrouter reports the md5 of the config mcw wrote. Past --confirm-timeout without
  it, mcw says \"not reloaded yet\" (or \"cannot tell\") and keeps asking every second. A
  config counts as rejected, and the previous one is written back, only when mcrouter shows
  it tried and failed (its config_failures grew); the reason from mcrouter's log is given.";

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub template: TemplateArgs,
    /// Where to write the config: a path, or file:///abs/path?mode=0640&uid=N&gid=N.
    /// Without it the config goes to stdout.
    #[arg(long, env = "MCW_OUTPUT", value_name = "PATH|URL")]
    pub output: Option<OutputSpec>,
    #[command(flatten)]
    pub dns: DnsArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub template: TemplateArgs,
    /// Check this routing prefix (mcrouter's -R) against the config's routes aliases.
    #[arg(long, env = "MCW_ROUTE_PREFIX", value_name = "/REGION/CLUSTER/")]
    pub route_prefix: Option<String>,
    #[command(flatten)]
    pub dns: DnsArgs,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub template: TemplateArgs,
    /// The config to compare with (what watch or run last wrote); never written.
    #[arg(
        long,
        env = "MCW_OUTPUT",
        value_name = "PATH|URL",
        default_value = "/run/mcw/mcrouter.json"
    )]
    pub output: OutputSpec,
    /// text for people, json for scripts.
    #[arg(long, env = "MCW_FORMAT", value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub dns: DnsArgs,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub service: ServiceArgs,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub service: ServiceArgs,
    /// The file name that marks mcrouter in the command; the arguments after it are vetted.
    #[arg(
        long,
        env = "MCW_MCROUTER_NAME",
        value_name = "NAME",
        default_value = "mcrouter"
    )]
    pub mcrouter_name: String,
    /// After forwarding SIGTERM/SIGINT, how long to wait before SIGKILL.
    #[arg(long, env = "MCW_STOP_TIMEOUT", value_name = "DURATION", default_value = "25s", value_parser = parse_duration)]
    pub stop_timeout: Duration,
    /// After each write, how long mcrouter may take to report the new config's md5. Past it mcw
    /// says "not reloaded yet" (or "cannot tell") and keeps asking, slowly; it rolls back only
    /// when mcrouter shows that it tried the config and failed (its config_failures grew). At
    /// least 3 x mcrouter's --reconfiguration-delay-ms + --reconfiguration-jitter-ms.
    #[arg(long, env = "MCW_CONFIRM_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub confirm_timeout: Duration,
    /// Check each new config with `mcrouter --validate-config=exit` on a candidate file in the
    /// output's directory; a rejected candidate is never installed.
    #[arg(long, env = "MCW_VALIDATE")]
    pub validate: bool,
    /// With --validate: a validator still running after this long is killed, and the
    /// candidate counts as rejected.
    #[arg(long, env = "MCW_VALIDATE_TIMEOUT", value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub validate_timeout: Duration,
    /// Restart mcrouter when it dies of a signal mcw did not send or exits non-zero
    /// (on-failure: after 1s, doubling to 30s, on the same port and config), or leave with its
    /// status (never).
    #[arg(long, env = "MCW_RESTART", value_enum, default_value_t = Policy::Never)]
    pub restart: Policy,
    /// With --restart on-failure: after this many restarts in a row without a minute of
    /// health, mcw gives up and exits with mcrouter's status.
    #[arg(long, env = "MCW_RESTART_LIMIT", value_name = "N", default_value_t = 5)]
    pub restart_limit: u32,
    /// Hold mcrouter's port: when the command names one TCP port (-p N, on one
    /// --listen-addresses address or all), mcw listens on it and passes it to mcrouter as
    /// --listen-sock-fd, so no connection is refused while mcrouter restarts.
    #[arg(long, env = "MCW_HOLD_PORT", value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub hold_port: bool,
    /// Become a child subreaper (when not PID 1), so orphans are re-parented to mcw and reaped.
    #[arg(long, env = "MCW_SUBREAPER", value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub subreaper: bool,
    /// The command that starts mcrouter; mcw appends `-f <output>` (so it may not end with --)
    /// and, to a command naming mcrouter, `--reconfiguration-delay-ms=100` and
    /// `--max-dumped-config-age=0` unless it sets them.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// What `watch` and `run` share.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// The config template (JSON5: JSON with comments, trailing commas, bare keys and single
    /// quotes; with DNS tokens). `watch` takes several, each
    /// paired with the --output in the same position; `run` takes one.
    #[arg(
        long = "template",
        env = "MCW_TEMPLATE",
        value_name = "PATH",
        default_value = "/etc/mcw/template.json"
    )]
    pub templates: Vec<PathBuf>,
    /// Synonym of --template in the form file:///abs/path (kept from the original mcw);
    /// repeatable like --template, but the two spellings do not mix.
    #[arg(long = "source", env = "MCW_SOURCE", value_name = "URL", value_parser = parse_source, conflicts_with = "templates")]
    pub sources: Vec<PathBuf>,
    /// Where to write the config: a path, or file:///abs/path?mode=0640&uid=N&gid=N. The
    /// directory is created if missing. With several --template, one --output each, in order.
    #[arg(
        long = "output",
        env = "MCW_OUTPUT",
        value_name = "PATH|URL",
        default_value = "/run/mcw/mcrouter.json"
    )]
    pub outputs: Vec<OutputSpec>,
    #[command(flatten)]
    pub dns: DnsArgs,
    #[command(flatten)]
    pub refresh: RefreshArgs,
    /// Poll the template's directory at this interval instead of using inotify (for network
    /// and FUSE filesystems that never report changes). Without it mcw uses inotify, and polls
    /// every 2s only if inotify cannot be set up.
    #[arg(long, env = "MCW_TEMPLATE_POLL", value_name = "DURATION", value_parser = parse_duration)]
    pub template_poll: Option<Duration>,
    /// A server that vanishes from a token's answer keeps its slot this long before the pool
    /// shrinks (mcrouter's health checks cover it meanwhile); one that comes back within it
    /// changes nothing. Additions apply at once. 0s: off.
    #[arg(long, env = "MCW_HOLD_REMOVED", value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    pub hold_removed: Duration,
    /// Serve /metrics, /healthz, /readyz and /status over HTTP on this address (for example
    /// 0.0.0.0:9442). Off by default.
    #[arg(long, env = "MCW_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
    /// Warm up a changed pool for this long: keys whose server changed are read from the new
    /// servers and, on a miss, from the old ones (copied over), between two brackets that keep
    /// replicas consistent; then the plain config. Off by default.
    #[arg(long, env = "MCW_WARM_UP", value_name = "DURATION", value_parser = parse_duration)]
    pub warm_up: Option<Duration>,
    /// With --warm-up: the expiry of the copies a read makes from the old servers (also the
    /// most a value can outlive the TTL it was written with). Longer than --warm-up.
    #[arg(long, env = "MCW_WARM_UP_TTL", value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    pub warm_up_ttl: Duration,
}

#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// Shortest time between two lookups of a token; also the retry interval after a failure.
    #[arg(long, env = "MCW_MIN_REFRESH", value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub min_refresh: Duration,
    /// Longest time between two lookups of a token, whatever its TTL.
    #[arg(long, env = "MCW_MAX_REFRESH", value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub max_refresh: Duration,
    /// Give up (exit 1) if some token still has no answer this long after start (at least 1ms).
    #[arg(long, env = "MCW_STARTUP_TIMEOUT", value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub startup_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct TemplateArgs {
    /// The config template (JSON5: JSON with comments, trailing commas, bare keys and single
    /// quotes; with DNS tokens).
    #[arg(
        long,
        env = "MCW_TEMPLATE",
        value_name = "PATH",
        default_value = "/etc/mcw/template.json"
    )]
    pub template: PathBuf,
    /// Synonym of --template in the form file:///abs/path (kept from the original mcw).
    #[arg(long, env = "MCW_SOURCE", value_name = "URL", value_parser = parse_source, conflicts_with = "template")]
    pub source: Option<PathBuf>,
}

impl TemplateArgs {
    pub fn path(&self) -> &PathBuf {
        self.source.as_ref().unwrap_or(&self.template)
    }
}

impl ServiceArgs {
    /// The templates, in the order given, whichever spelling was used.
    pub fn template_paths(&self) -> &[PathBuf] {
        match self.sources.is_empty() {
            true => &self.templates,
            false => &self.sources,
        }
    }
}

#[derive(Debug, Args)]
pub struct DnsArgs {
    /// DNS server to ask instead of resolv.conf's nameservers (repeatable).
    #[arg(long = "dns-server", env = "MCW_DNS_SERVER", value_name = "IP[:PORT]", value_delimiter = ',', value_parser = parse_dns_server)]
    pub dns_servers: Vec<SocketAddr>,
    /// Where the search list, ndots and (without --dns-server) nameservers come from.
    #[arg(
        long,
        env = "MCW_RESOLV_CONF",
        value_name = "PATH",
        default_value = "/etc/resolv.conf"
    )]
    pub resolv_conf: PathBuf,
    /// Timeout of one DNS query.
    #[arg(long, env = "MCW_DNS_TIMEOUT", value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    pub dns_timeout: Duration,
    /// Retries after a failed DNS query.
    #[arg(long, env = "MCW_DNS_RETRIES", value_name = "N", default_value_t = 1)]
    pub dns_retries: usize,
    /// Ask every DNS query over TCP, never UDP (for networks that drop or truncate UDP;
    /// the original mcw's FORCE_TCP).
    #[arg(long, env = "MCW_DNS_TCP")]
    pub dns_tcp: bool,
    /// Let a token whose name is NXDOMAIN or has no records expand to no servers (by default
    /// that is a failure, and the last good answer is kept).
    #[arg(long, env = "MCW_ALLOW_EMPTY")]
    pub allow_empty: bool,
}

/// `file:///abs/path` → `/abs/path`.
fn parse_source(s: &str) -> Result<PathBuf, String> {
    match s.strip_prefix("file://") {
        Some(path) if path.starts_with('/') => Ok(PathBuf::from(path)),
        Some(_) => Err("a file:// URL needs an absolute path (file:///dir/template.json)".into()),
        None => Err("expected file:///abs/path (or use --template PATH)".into()),
    }
}

/// `IP`, `IP:PORT`, `[IPv6]:PORT`; port 53 when none is given.
pub fn parse_dns_server(s: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{s:?} is not IP or IP:PORT (IPv6 with a port: [::1]:53)"))
}

/// `250ms`, `2s`, `1.5s`, `5m`, `1h`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. 500ms, 2s, 1m)"))?;
    let scale = match unit {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("250ms", 250),
            ("2s", 2000),
            ("2", 2000),
            ("1.5s", 1500),
            ("1m", 60_000),
        ];
        for (text, ms) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        for bad in ["", "s", "5x", "-1s", "1.2.3s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dns_servers() {
        assert_eq!(
            parse_dns_server("127.0.0.1:5353"),
            Ok("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(
            parse_dns_server("10.0.0.1"),
            Ok("10.0.0.1:53".parse().unwrap())
        );
        assert_eq!(parse_dns_server("::1"), Ok("[::1]:53".parse().unwrap()));
        assert!(parse_dns_server("dns.example").is_err());
    }

    /// Every option of every command has its `MCW_<NAME>` twin, named after the flag.
    #[test]
    fn every_option_has_an_environment_twin() {
        use clap::CommandFactory;
        let cli = Cli::command();
        let mut commands = vec![&cli];
        commands.extend(cli.get_subcommands());
        let mut checked = 0;
        for command in commands {
            for arg in command.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                if matches!(long, "help" | "version") {
                    continue;
                }
                let want = format!("MCW_{}", long.to_uppercase().replace('-', "_"));
                let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
                assert_eq!(
                    env.as_deref(),
                    Some(want.as_str()),
                    "{} --{long}",
                    command.get_name()
                );
                checked += 1;
            }
        }
        assert!(checked > 40, "only {checked} options seen");
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
