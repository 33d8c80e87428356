//! The one-shot commands, `render`, `check` and `diff`: load, resolve, render, then write or
//! report.
//!
//! Owns the order of those steps and the messages that close them. Long-running modes reuse
//! the same pieces through their own loop.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write as _;

use crate::cli::{CheckArgs, DiffArgs, DiffFormat, RenderArgs};
use crate::engine::FailedToken;
use crate::error::Error;
use crate::placement;
use crate::placement::Pool;
use crate::prefix;
use crate::resolve::Query;
use crate::resolve::{self, Answer, Dns, Failure};
use crate::settings;
use crate::template::pools::pools_of;
use crate::template::{self, Template};

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
        match resolve::with_allow_empty(&query, result, allow_empty) {
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

/// Resolve every token of `template` (loaded from `path`) once and render it; any token
/// that fails fails the whole render.
async fn render_once(
    path: &std::path::Path,
    template: &Template,
    dns: &crate::cli::DnsArgs,
) -> Result<template::Rendered, Error> {
    let resolver = Dns::new(&settings::dns(dns)?)?;
    let results = resolver.resolve_all(template.queries()).await;
    let (answers, failed) = settle(template, results, dns.allow_empty);
    if !failed.is_empty() {
        return Err(Error::Resolve {
            path: path.to_path_buf(),
            failed,
        });
    }
    Ok(template::render(template, &answers)
        .expect("settle gives every query an answer or a failure"))
}

/// `mcw render`.
pub async fn render(args: &RenderArgs) -> Result<(), Error> {
    let path = args.template.path();
    let template = Template::load(path)?;
    let rendered = render_once(path, &template, &args.dns).await?;
    for note in &rendered.notes {
        tracing::warn!(template = %path.display(), reason = %note, "rendered with a caveat");
    }
    match &args.output {
        None => std::io::stdout()
            .lock()
            .write_all(&rendered.bytes)
            .map_err(Error::Stdout),
        Some(spec) => {
            let written = spec.write_if_changed(&rendered.bytes)?;
            let servers: usize = rendered.pools.values().map(|p| p.servers.len()).sum();
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

/// One pool's difference between the config on disk and a fresh render.
struct PoolDiff {
    label: String,
    before: Option<Pool>,
    after: Option<Pool>,
}

impl PoolDiff {
    fn remapped(&self) -> Result<placement::Share, String> {
        placement::remapped(self.before.as_ref(), self.after.as_ref())
    }

    fn hashing(&self) -> &str {
        self.after
            .as_ref()
            .or(self.before.as_ref())
            .map_or("unknown", |p| p.hashing.name())
    }

    fn to_json(&self) -> serde_json::Value {
        let (old, new) = (
            placement::servers_of(self.before.as_ref()),
            placement::servers_of(self.after.as_ref()),
        );
        let (added, removed) = placement::added_removed(old, new);
        let moved: Vec<_> = placement::moved(old, new)
            .into_iter()
            .map(|(server, from, to)| serde_json::json!({"server": server, "from": from, "to": to}))
            .collect();
        let (remapped, why) = match self.remapped() {
            Ok(share) => (serde_json::json!(share.ratio()), None),
            Err(why) => (serde_json::Value::Null, Some(why)),
        };
        serde_json::json!({
            "pool": self.label,
            "hash": self.hashing(),
            "servers_before": self.before.as_ref().map(|p| p.servers.len()),
            "servers_after": self.after.as_ref().map(|p| p.servers.len()),
            "added": added,
            "removed": removed,
            "moved": moved,
            "remapped": remapped,
            "remapped_unknown": why,
        })
    }

    fn to_text(&self, out: &mut String) {
        let (old, new) = (
            placement::servers_of(self.before.as_ref()),
            placement::servers_of(self.after.as_ref()),
        );
        let remapped = match self.remapped() {
            Ok(share) => format!("{share} of keys remapped"),
            Err(why) => format!("keys remapped: unknown ({why})"),
        };
        let _ = writeln!(
            out,
            "pool {} ({}): {} -> {} servers, {remapped}",
            self.label,
            self.hashing(),
            old.len(),
            new.len()
        );
        let (added, removed) = placement::added_removed(old, new);
        for s in added {
            let _ = writeln!(out, "  + {s}");
        }
        for s in removed {
            let _ = writeln!(out, "  - {s}");
        }
        for (s, from, to) in placement::moved(old, new) {
            let _ = writeln!(out, "  ~ {s}  (slot {from} -> {to})");
        }
    }
}

/// `mcw diff`: 0 when a fresh render equals the config on disk, 1 when it differs (the
/// difference printed), an error (exit 2) when either side cannot be had.
pub async fn diff(args: &DiffArgs) -> Result<u8, Error> {
    let path = args.template.path();
    let template = Template::load(path)?;
    let output = &args.output.path;
    let on_disk = std::fs::read(output).map_err(|source| Error::DiffInput {
        path: output.clone(),
        source,
        hint: "pass --output with the file mcw watch or mcw run writes",
    })?;
    let before: serde_json::Value =
        serde_json::from_slice(&on_disk).map_err(|e| Error::DiffInput {
            path: output.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            hint: "it is not a config mcw wrote",
        })?;
    let rendered = render_once(path, &template, &args.dns).await?;
    let differs = on_disk != rendered.bytes;

    let (mut was, mut is) = (pools_of(&before), rendered.pools);
    let labels: std::collections::BTreeSet<String> = was.keys().chain(is.keys()).cloned().collect();
    let changed: Vec<PoolDiff> = labels
        .into_iter()
        .map(|label| PoolDiff {
            before: was.remove(&label),
            after: is.remove(&label),
            label,
        })
        .filter(|d| d.before != d.after)
        .collect();
    let outside = differs && changed.is_empty();

    let text = match args.format {
        DiffFormat::Json => {
            let report = serde_json::json!({
                "output": output.display().to_string(),
                "template": path.display().to_string(),
                "changed": differs,
                "outside_pools": outside,
                "pools": changed.iter().map(PoolDiff::to_json).collect::<Vec<_>>(),
            });
            format!("{report:#}\n")
        }
        DiffFormat::Text => {
            let mut out = String::new();
            for d in &changed {
                d.to_text(&mut out);
            }
            if outside {
                out.push_str("the config differs outside the pools' server lists\n");
            }
            if !differs {
                let _ = writeln!(
                    out,
                    "no change: {} is what the template renders to now",
                    output.display()
                );
            }
            out
        }
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(Error::Stdout)?;
    Ok(u8::from(differs))
}
