//! The commands, one file each: `render`, `check`, `diff` (one-shot: load, resolve, render,
//! then write or report), and `watch`, `run` (settings and set-up, then the event loop of
//! [`crate::service`]).
//!
//! This file holds what the one-shot commands share: one round of lookups for a template, and
//! sorting their results into answers and failed tokens.

mod check;
mod diff;
mod render;
mod run;
mod watch;

use std::collections::HashMap;

pub use check::check;
pub use diff::diff;
pub use render::render;
pub use run::run;
pub use watch::watch;

use crate::dns;
use crate::dns::{Answer, Failure, Query};
use crate::engine::FailedToken;
use crate::error::Error;
use crate::resolve::Dns;
use crate::settings;
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
        match dns::with_allow_empty(&query, result, allow_empty) {
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
pub(crate) async fn render_once(
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
