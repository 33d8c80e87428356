//! Warm-up on membership change (`--warm-up`): which slots of a changed pool are warmed, and
//! the configs of the three phases that take mcrouter from the old list to the new one
//! without a miss spike and without serving a stale value.
//!
//! Owns the plan (per pool: how mcrouter's own route picks the slot of a key, and which slots
//! go through warm-up routes: those whose server changed and whose old server answered) and,
//! in [`routes`], the configs: the plain render with each warmed pool's references replaced by
//! a route that sends the keys of unchanged slots to the plain pool and those of changed slots
//! to a per-command composite of mcrouter's own routes. Pure: probing the old servers, the
//! timing of the phases and the writes are the engine's and the event loop's.
//!
//! Why a key's slot can be picked by a route: Ch3 (furc_hash) only ever moves keys to slots a
//! growth adds (a key keeps its index, or lands at or beyond the old length), so for a list
//! that grows or keeps its length a key in new slot `j < old length` was in old slot `j`, and
//! for one that shrinks a key in old slot `i < new length` goes to new slot `i`. Rendezvous
//! picks the highest-scoring tag: with tags only added a key whose new tag was an old one kept
//! it, with tags only removed a key whose old tag stays keeps it, and with both the route is
//! nested (each new slot over the old ones).

pub mod routes;

use std::collections::{BTreeMap, HashSet};

use crate::placement::{Hashing, Pool};
use crate::template::Rendered;

/// The phases a warm-up goes through, in order; the plain config follows the last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Reads of changed slots from the old list; writes to both (the new one invalidated).
    FirstBracket,
    /// Reads from the new list and, on a miss, from the old one (copied over); writes to both.
    WarmUp,
    /// Reads from the new list; writes to both.
    LastBracket,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::FirstBracket => "first_bracket",
            Phase::WarmUp => "warm_up",
            Phase::LastBracket => "last_bracket",
        }
    }

    /// The phase after this one; `None` after the last bracket (the plain config).
    pub fn next(self) -> Option<Phase> {
        match self {
            Phase::FirstBracket => Some(Phase::WarmUp),
            Phase::WarmUp => Some(Phase::LastBracket),
            Phase::LastBracket => None,
        }
    }
}

/// What a slot's keys do during a warm-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Same server before and after: routed as without warm-up.
    Plain,
    /// Another server, and the old one answered: through the warm-up routes.
    Warm,
    /// Another server, but its old server did not answer: routed to the new list only (warming
    /// from it would only cost a timeout).
    Cold,
    /// (Nested) the key's slot on the other side of the change decides: one of the above per
    /// slot of the other list (the old one under a new-side split, the new one under an
    /// old-side split).
    ByOther(Vec<Slot>),
}

/// How the route that replaces the pool picks a key's slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Split {
    /// With the new list's hash: one child per new slot.
    New(Vec<Slot>),
    /// With the old list's hash: one child per old slot.
    Old(Vec<Slot>),
}

/// One pool to warm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolPlan {
    pub pool: String,
    pub before: Pool,
    pub after: Pool,
    pub split: Split,
}

impl PoolPlan {
    /// The slots whose keys go through the warm-up routes, as the split counts them (new slots
    /// for a new-side or nested split, old slots for an old-side one).
    pub fn warmed(&self) -> Vec<usize> {
        let slots = match &self.split {
            Split::New(s) | Split::Old(s) => s,
        };
        let warm = |s: &Slot| match s {
            Slot::Warm => true,
            Slot::ByOther(inner) => inner.contains(&Slot::Warm),
            Slot::Plain | Slot::Cold => false,
        };
        (0..slots.len()).filter(|&i| warm(&slots[i])).collect()
    }

    /// Which side of the change the slot numbers of [`PoolPlan::warmed`] count.
    pub fn side(&self) -> &'static str {
        match self.split {
            Split::New(_) => "new",
            Split::Old(_) => "old",
        }
    }
}

/// What a change would warm, and why some of it would not be.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub pools: Vec<PoolPlan>,
    /// Changed pools that are not warmed, with the reason.
    pub skipped: Vec<(String, String)>,
}

impl Plan {
    /// Whether anything is warmed at all.
    pub fn warms(&self) -> bool {
        self.pools.iter().any(|p| !p.warmed().is_empty())
    }
}

/// The largest nested route (new slots × old slots) mcw renders; beyond it a pool is not
/// warmed (the config would grow by megabytes).
pub const MAX_NESTED: usize = 10_000;

/// The pools whose server list `after` changes from `before`, with the old servers a warm-up
/// would read from: what to probe before planning.
pub fn old_servers(before: &Rendered, after: &Rendered) -> Vec<String> {
    let mut servers = Vec::new();
    let mut seen = HashSet::new();
    for (label, old) in &before.pools {
        let Some(new) = after.pools.get(label) else {
            continue;
        };
        if old.servers == new.servers {
            continue;
        }
        for s in &old.servers {
            if !new.servers.contains(s) && seen.insert(s.clone()) {
                servers.push(s.clone());
            }
        }
    }
    servers
}

/// Plan the warm-up of the change `before` → `after`, warming only from old servers that
/// answered (`alive`, or still in the new list). Pools that cannot be warmed are listed with
/// the reason.
pub fn plan(before: &Rendered, after: &Rendered, alive: &HashSet<String>) -> Plan {
    let mut plan = Plan::default();
    let config: Option<serde_json::Value> = serde_json::from_slice(&after.bytes).ok();
    for (label, new) in &after.pools {
        let Some(old) = before.pools.get(label) else {
            continue;
        };
        if old.servers == new.servers {
            continue;
        }
        let answers = |s: &String| alive.contains(s) || new.servers.contains(s);
        let checked = match &config {
            Some(config) => routes::check(config, label),
            None => Err("the config does not parse".into()),
        };
        match checked.and_then(|()| pool_plan(old, new, &answers)) {
            Ok(split) => plan.pools.push(PoolPlan {
                pool: label.clone(),
                before: old.clone(),
                after: new.clone(),
                split,
            }),
            Err(why) => plan.skipped.push((label.clone(), why)),
        }
    }
    for label in before.pools.keys() {
        if !after.pools.contains_key(label) {
            plan.skipped
                .push((label.clone(), "the pool is gone from the config".into()));
        }
    }
    plan
}

/// What a key that the old server `old` held and the new server `new` holds does: nothing
/// special when they are one, else it is warmed when `old` answers.
fn slot(old: &String, new: Option<&String>, answers: &impl Fn(&String) -> bool) -> Slot {
    match (new == Some(old), answers(old)) {
        (true, _) => Slot::Plain,
        (false, true) => Slot::Warm,
        (false, false) => Slot::Cold,
    }
}

/// A slot whose keys each come from (or go to) any slot of the other list: one child per
/// slot of it, collapsed when they all agree. `pair(k)` is the (old, new) server pair of the
/// other list's slot k.
fn by_other<'a>(
    count: usize,
    pair: impl Fn(usize) -> (&'a String, &'a String),
    answers: &impl Fn(&String) -> bool,
) -> Slot {
    let inner: Vec<Slot> = (0..count)
        .map(|k| {
            let (old, new) = pair(k);
            slot(old, Some(new), answers)
        })
        .collect();
    match inner.iter().all(|s| *s == inner[0]) {
        true => inner[0].clone(),
        false => Slot::ByOther(inner),
    }
}

/// The split of one changed pool.
fn pool_plan(old: &Pool, new: &Pool, answers: &impl Fn(&String) -> bool) -> Result<Split, String> {
    if old.servers.is_empty() || new.servers.is_empty() {
        return Err("the pool was or becomes empty".into());
    }
    match (&old.hashing, &new.hashing) {
        (Hashing::Ch3, Hashing::Ch3) => Ok(ch3(&old.servers, &new.servers, answers)),
        (Hashing::Rendezvous { tags: old_tags }, Hashing::Rendezvous { tags: new_tags }) => {
            rendezvous(old, old_tags, new, new_tags, answers)
        }
        (Hashing::Unknown(why), _) | (_, Hashing::Unknown(why)) => {
            Err(format!("mcw does not model its hash ({why})"))
        }
        _ => Err("its hash function changed".into()),
    }
}

/// Ch3: a growing (or same-length) list splits on the new slots, a shrinking one on the old.
/// A new slot beyond the old length takes keys from any old slot, and an old slot beyond the
/// new length gives its keys to any new one: those are nested over the other list.
fn ch3(old: &[String], new: &[String], answers: &impl Fn(&String) -> bool) -> Split {
    if new.len() >= old.len() {
        let slots = (0..new.len())
            .map(|j| match old.get(j) {
                Some(o) => slot(o, Some(&new[j]), answers),
                None => by_other(old.len(), |i| (&old[i], &new[j]), answers),
            })
            .collect();
        Split::New(slots)
    } else {
        let slots = (0..old.len())
            .map(|i| match new.get(i) {
                Some(n) => slot(&old[i], Some(n), answers),
                None => by_other(new.len(), |j| (&old[i], &new[j]), answers),
            })
            .collect();
        Split::Old(slots)
    }
}

/// Rendezvous: slots are tags. Only added tags: split on the new ones; only removed: on the
/// old ones; both: each new slot over the old ones.
fn rendezvous(
    old: &Pool,
    old_tags: &[String],
    new: &Pool,
    new_tags: &[String],
    answers: &impl Fn(&String) -> bool,
) -> Result<Split, String> {
    let old_at: BTreeMap<&String, usize> =
        old_tags.iter().enumerate().map(|(i, t)| (t, i)).collect();
    let new_at: BTreeMap<&String, usize> =
        new_tags.iter().enumerate().map(|(j, t)| (t, j)).collect();
    let added = new_tags.iter().any(|t| !old_at.contains_key(t));
    let removed = old_tags.iter().any(|t| !new_at.contains_key(t));
    match (added, removed) {
        // A key whose tag both lists have keeps it; a key of an added tag came from any old
        // one.
        (_, false) => Ok(Split::New(
            (0..new_tags.len())
                .map(|j| match old_at.get(&new_tags[j]) {
                    Some(&i) => slot(&old.servers[i], Some(&new.servers[j]), answers),
                    None => by_other(
                        old_tags.len(),
                        |i| (&old.servers[i], &new.servers[j]),
                        answers,
                    ),
                })
                .collect(),
        )),
        // A key whose old tag stays keeps it; a key of a removed tag goes to any new one.
        (false, true) => Ok(Split::Old(
            (0..old_tags.len())
                .map(|i| match new_at.get(&old_tags[i]) {
                    Some(&j) => slot(&old.servers[i], Some(&new.servers[j]), answers),
                    None => by_other(
                        new_tags.len(),
                        |j| (&old.servers[i], &new.servers[j]),
                        answers,
                    ),
                })
                .collect(),
        )),
        (true, true) => {
            let size = new_tags.len() * old_tags.len();
            if size > MAX_NESTED {
                return Err(format!(
                    "tags were both added and removed in a pool of {} (before {}) servers: its route would have {size} entries, more than {MAX_NESTED}",
                    new_tags.len(),
                    old_tags.len()
                ));
            }
            // Each new slot over the old ones: a key whose tag is the same on both kept it, any
            // other came from old slot i, and is unmoved only if the servers are one.
            Ok(Split::New(
                (0..new_tags.len())
                    .map(|j| {
                        by_other(
                            old_tags.len(),
                            |i| (&old.servers[i], &new.servers[j]),
                            answers,
                        )
                    })
                    .collect(),
            ))
        }
    }
}

#[cfg(test)]
mod tests;
