//! One template/output pair as the loop serves it: the pair's settings, its own engine
//! (template in force, last good answers, what was written) and its own template watch.

use std::time::Duration;

use tokio::time::Instant;

use crate::engine::Engine;
use crate::error::Error;
use crate::settings::{self, Pair, Run, Service};
use crate::template::Template;
use crate::template_watch::TemplateWatcher;

/// How long the template directory must be quiet before a change is read.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// One template/output pair as the loop serves it: its own engine (template in force, last
/// good answers, what was written) and its own template watch.
pub(super) struct Served {
    pub(super) pair: Pair,
    pub(super) engine: Engine,
    pub(super) watcher: TemplateWatcher,
}

impl Served {
    /// Pair `n` of `s`: its template read and checked, leftovers beside its output removed,
    /// its template watched.
    pub(super) fn new(s: &Service, run: Option<&Run>, n: usize) -> Result<Served, Error> {
        let p = &s.pairs[n];
        let text = Template::read(&p.template)?;
        let settings = settings::engine(s, run, &p.template);
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
        Ok(Served {
            pair: p.clone(),
            engine,
            watcher,
        })
    }
}

/// Seed of the refresh jitter: differs between processes and starts.
fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()).rotate_left(32)
}
