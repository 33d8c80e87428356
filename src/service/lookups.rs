//! DNS lookups on behalf of every pair: spawned, so signals and HTTP are served while DNS is
//! slow, and de-duplicated, so a question that several templates ask is asked once.
//!
//! Owns the lookup tasks, which queries each one asks, and which queries some task is asking
//! now. A task that panics still answers for its queries, as failed ones, so they are retried
//! instead of staying "in flight" for ever.

use std::collections::{HashMap, HashSet};

use tokio::task::{Id, JoinSet};

use crate::dns::{Failure, Query};
use crate::engine::Lookups;
use crate::resolve::Dns;

/// The lookups in flight.
pub(super) struct InFlight {
    dns: Dns,
    tasks: JoinSet<Lookups>,
    /// The queries of each task.
    queries: HashMap<Id, Vec<Query>>,
    /// Every query some task is asking: a pair that wants one of them waits for that answer
    /// (every pair gets every answer) instead of asking again.
    asking: HashSet<Query>,
}

impl InFlight {
    pub(super) fn new(dns: Dns) -> InFlight {
        InFlight {
            dns,
            tasks: JoinSet::new(),
            queries: HashMap::new(),
            asking: HashSet::new(),
        }
    }

    /// Start one task asking those of `queries` no task is asking yet.
    pub(super) fn start(&mut self, queries: Vec<Query>) {
        let queries: Vec<Query> = queries
            .into_iter()
            .filter(|q| self.asking.insert(q.clone()))
            .collect();
        if queries.is_empty() {
            return;
        }
        let dns = self.dns.clone();
        let task = self.tasks.spawn({
            let queries = queries.clone();
            async move { dns.resolve_all(queries).await }
        });
        self.queries.insert(task.id(), queries);
    }

    /// The answers of the next task to finish; pending while none runs. Cancellation-safe.
    pub(super) async fn next(&mut self) -> Lookups {
        let Some(done) = self.tasks.join_next_with_id().await else {
            return std::future::pending().await;
        };
        let (id, results) = match done {
            Ok((id, results)) => (id, results),
            Err(e) => {
                tracing::error!(reason = %e, "lookup task failed");
                let failure = Failure::other(format!("lookup task failed: {e}"));
                let queries = self.queries.get(&e.id()).cloned().unwrap_or_default();
                let failed = queries.into_iter().map(|q| (q, Err(failure.clone())));
                (e.id(), failed.collect())
            }
        };
        for q in self.queries.remove(&id).unwrap_or_default() {
            self.asking.remove(&q);
        }
        results
    }
}
