//! `mcw check`: parse, resolve and validate a template; print each token with its servers and
//! TTL, and every problem (a token that fails, a routing prefix with no alias, a config with
//! neither or both of `route`/`routes`); write nothing.

use std::fmt::Write as _;
use std::io::Write as _;

use crate::cli::CheckArgs;
use crate::error::Error;
use crate::resolve::Dns;
use crate::template::{self, Template};
use crate::{prefix, settings};

/// `mcw check`: prints a report to stdout; fails if anything is wrong.
pub async fn check(args: &CheckArgs) -> Result<(), Error> {
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

    let dns = Dns::new(&settings::dns(&args.dns)?)?;
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
    if let Some(prefix) = &prefix {
        match prefix::check_aliases(template.value(), prefix) {
            Ok(prefix::Aliases::Match) => {}
            Ok(prefix::Aliases::Unverifiable(routes)) => tracing::debug!(
                routes,
                "routing prefix matches no plain alias; some routes are macro calls and cannot be checked"
            ),
            Err(e) => problems.push(e.to_string()),
        }
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
        .map_err(Error::Stdout)?;
    match problems.len() {
        0 => Ok(()),
        count => Err(Error::Check {
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
