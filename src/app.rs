//! The one-shot commands, `render` and `check`: load, resolve, render, then write or report.
//!
//! Owns the order of those steps and the messages that close them. Long-running modes reuse
//! the same pieces through their own loop.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use crate::cli::{CheckArgs, RenderArgs};
use crate::output::WriteError;
use crate::prefix::{self, PrefixError};
use crate::resolve::{self, Answer, Dns, Failure, SetupError};
use crate::template::{self, Query, Template, TemplateError};

/// Why a command failed (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Dns(#[from] SetupError),
    #[error("template {path}: {}", FailedTokens(.failed))]
    Resolve {
        path: PathBuf,
        failed: Vec<FailedToken>,
    },
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("cannot write to stdout: {0}")]
    Stdout(std::io::Error),
    #[error(transparent)]
    Prefix(#[from] PrefixError),
    #[error("template {}: check found {count} problem(s), listed above", .path.display())]
    Check { count: usize, path: PathBuf },
    #[error("{}", StartupFailure(*.timeout, .failed))]
    StartupTimeout {
        timeout: std::time::Duration,
        failed: Vec<FailedToken>,
    },
    #[error("cannot create the output directory {}: {source}; pass --output with a writable path", .dir.display())]
    OutputDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set up: {0}")]
    Setup(std::io::Error),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Spawn(crate::supervise::SpawnError),
}

/// A token that has no usable answer, with the reason.
#[derive(Debug, Clone)]
pub struct FailedToken {
    pub pointer: String,
    pub text: String,
    pub failure: Failure,
}

impl AppError {
    /// 2 for usage errors, 126/127 when mcrouter cannot be started, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Usage(_) => 2,
            AppError::Spawn(e) => e.code,
            _ => 1,
        }
    }
}

struct StartupFailure<'a>(std::time::Duration, &'a [FailedToken]);

impl std::fmt::Display for StartupFailure<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "startup timed out after {:?}: ", self.0)?;
        list_tokens(f, self.1, "never resolved")
    }
}

struct FailedTokens<'a>(&'a [FailedToken]);

impl std::fmt::Display for FailedTokens<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        list_tokens(f, self.0, "could not be resolved")
    }
}

/// `N token(s) VERB; nothing was written` and one indented line per token.
fn list_tokens(
    f: &mut std::fmt::Formatter<'_>,
    tokens: &[FailedToken],
    verb: &str,
) -> std::fmt::Result {
    let n = tokens.len();
    let s = if n == 1 { "" } else { "s" };
    write!(f, "{n} token{s} {verb}; nothing was written")?;
    for t in tokens {
        write!(f, "\n  {} {}: {}", t.pointer, t.text, t.failure)?;
    }
    Ok(())
}

/// Answers per query, plus the tokens that failed. NXDOMAIN and empty answers count as "no
/// servers" when `allow_empty` is set.
pub fn settle(
    template: &Template,
    results: HashMap<Query, Result<Answer, Failure>>,
    allow_empty: bool,
) -> (HashMap<Query, Answer>, Vec<FailedToken>) {
    let mut answers = HashMap::new();
    let mut failed_queries = HashMap::new();
    for (query, result) in results {
        let result = match allow_empty {
            true => resolve::allowing_empty(&query, result),
            false => result,
        };
        match result {
            Ok(answer) => {
                answers.insert(query, answer);
            }
            Err(f) => {
                failed_queries.insert(query, f);
            }
        }
    }
    let failed = template
        .sites()
        .filter_map(|site| {
            failed_queries
                .get(&site.token.query)
                .map(|failure| FailedToken {
                    pointer: site.pointer.clone(),
                    text: site.text.clone(),
                    failure: failure.clone(),
                })
        })
        .collect();
    (answers, failed)
}

/// `mcw render`.
pub async fn render(args: &RenderArgs) -> Result<(), AppError> {
    let path = args.template.path();
    let template = Template::load(path)?;
    let dns = Dns::new(&args.dns.settings())?;
    let results = dns.resolve_all(template.queries()).await;
    let (answers, failed) = settle(&template, results, args.dns.allow_empty);
    if !failed.is_empty() {
        return Err(AppError::Resolve {
            path: path.clone(),
            failed,
        });
    }
    let rendered = template::render(&template, &answers)
        .expect("settle gives every query an answer or a failure");
    match &args.output {
        None => std::io::stdout()
            .lock()
            .write_all(&rendered.bytes)
            .map_err(AppError::Stdout),
        Some(spec) => {
            let written = spec.write_if_changed(&rendered.bytes)?;
            let servers: usize = rendered.pools.values().map(Vec::len).sum();
            tracing::info!(
                output = %spec.path.display(),
                written,
                pools = rendered.pools.len(),
                servers,
                "rendered config"
            );
            Ok(())
        }
    }
}

/// `mcw check`: prints a report to stdout; fails if anything is wrong.
pub async fn check(args: &CheckArgs) -> Result<(), AppError> {
    let path = args.template.path();
    let template = Template::load(path)?;
    let mut problems = Vec::new();
    let prefix = match args.route_prefix.as_deref().map(prefix::normalise) {
        Some(Ok(p)) => Some(p),
        Some(Err(e)) => {
            problems.push(e.to_string());
            None
        }
        None => None,
    };
    problems.extend(structure_problems(template.value()));

    let dns = Dns::new(&args.dns.settings())?;
    let results = dns.resolve_all(template.queries()).await;
    let mut report = String::new();
    for site in template.sites() {
        let _ = write!(report, "{}  {}", site.pointer, site.text);
        match results.get(&site.token.query) {
            Some(Ok(answer)) => {
                let servers = template::render::expand(&site.token, answer);
                let _ = writeln!(
                    report,
                    "  ttl {}s  {} server(s)",
                    answer.ttl(),
                    servers.len()
                );
                for s in servers {
                    if s.identity == s.entry {
                        let _ = writeln!(report, "    {}", s.entry);
                    } else {
                        let _ = writeln!(report, "    {}  ({})", s.entry, s.identity);
                    }
                }
            }
            Some(Err(f)) if args.dns.allow_empty && f.is_empty_answer() => {
                let _ = writeln!(report, "  0 server(s): {f} (allowed by --allow-empty)");
            }
            Some(Err(f)) => {
                let _ = writeln!(report, "  FAILED: {f}");
                problems.push(format!("{} {}: {f}", site.pointer, site.text));
            }
            None => problems.push(format!("{} {}: not resolved", site.pointer, site.text)),
        }
    }
    if let Some(prefix) = &prefix
        && let Err(e) = prefix::check_aliases(template.value(), prefix)
    {
        problems.push(e.to_string());
    }
    let tokens = template.sites().count();
    let _ = writeln!(
        report,
        "{tokens} token(s), {} lookup(s), {} problem(s)",
        results.len(),
        problems.len()
    );
    for p in &problems {
        let _ = writeln!(report, "problem: {p}");
    }
    std::io::stdout()
        .lock()
        .write_all(report.as_bytes())
        .map_err(AppError::Stdout)?;
    match problems.len() {
        0 => Ok(()),
        count => Err(AppError::Check {
            count,
            path: path.clone(),
        }),
    }
}

/// Config shape problems mcrouter would refuse to start with.
fn structure_problems(config: &serde_json::Value) -> Vec<String> {
    let has = |k| config.get(k).is_some();
    match (has("route"), has("routes")) {
        (true, true) => {
            vec!["the config has both \"route\" and \"routes\"; mcrouter needs exactly one".into()]
        }
        (false, false) => vec![
            "the config has neither \"route\" nor \"routes\"; mcrouter needs exactly one".into(),
        ],
        _ => Vec::new(),
    }
}
