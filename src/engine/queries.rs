//! Each DNS question's state: its last good answer, when it is due again, and the servers
//! `--hold-removed` keeps after DNS dropped them.
//!
//! Owns refresh timing (the TTL clamped to the settings, plus jitter), what a lookup's result
//! does to the last good answer (a failure keeps it; the same records again cost nothing),
//! holds and their expiry, and which tokens never answered (for the startup failure).

use std::time::{Duration, Instant};

use super::{Action, Engine, FailedToken, Lookups, Report};
use crate::dns;
use crate::dns::{Answer, Failure, Member, Query};
use crate::template::Template;

/// The token of `template` that asks `query`, as written (the question itself if none does,
/// as for a query dropped from the template while its lookup ran).
fn token_text(template: &Template, query: &Query) -> String {
    template
        .token_of(query)
        .map_or_else(|| query.to_string(), str::to_string)
}

#[derive(Debug)]
pub(super) struct QueryState {
    /// The last good answer, with any held servers in it.
    pub(super) good: Option<Answer>,
    /// `--hold-removed`: servers of `good` that DNS stopped listing, and until when they stay.
    pub(super) held: Vec<(Member, Instant)>,
    /// When `good` arrived.
    pub(super) answered: Option<Instant>,
    pub(super) failure: Option<Failure>,
    pub(super) due: Instant,
    pub(super) in_flight: bool,
}

impl QueryState {
    pub(super) fn due_at(now: Instant) -> QueryState {
        QueryState {
            good: None,
            held: Vec::new(),
            answered: None,
            failure: None,
            due: now,
            in_flight: false,
        }
    }
}

/// When to ask again after an answer with `ttl`: the TTL clamped to `[min, max]`, plus up to
/// 10 % so replicas and tokens do not ask in lock-step. `jitter` is in `[0, 1)`.
pub fn refresh_after(ttl: u32, min: Duration, max: Duration, jitter: f64) -> Duration {
    let base = Duration::from_secs(u64::from(ttl)).clamp(min, max.max(min));
    base + base.mul_f64(0.1 * jitter.clamp(0.0, 1.0))
}

/// `--hold-removed`: `fresh` with the servers it dropped (since `state.good`) kept for `hold`,
/// each in the slot canonical order gives it. A held server that is back is no longer held.
fn hold_vanished(
    state: &mut QueryState,
    fresh: Answer,
    now: Instant,
    hold: Duration,
    token: impl Fn() -> String,
    out: &mut Vec<Action>,
) -> Answer {
    state.held.retain(|(m, _)| {
        let back = fresh.has(m);
        if back {
            out.push(Action::Report(Report::HoldEnded {
                token: token(),
                server: m.to_string(),
                back: true,
            }));
        }
        !back
    });
    if let Some(previous) = &state.good {
        for m in previous.members() {
            if !fresh.has(&m) && !state.held.iter().any(|(h, _)| h.same(&m)) {
                out.push(Action::Report(Report::Holding {
                    token: token(),
                    server: m.to_string(),
                    hold,
                }));
                state.held.push((m, now + hold));
            }
        }
    }
    let held: Vec<Member> = state.held.iter().map(|(m, _)| m.clone()).collect();
    fresh.with(&held)
}

impl Engine {
    /// Holds that ran out: their servers leave the answers, and the pools shrink.
    pub(super) fn release_holds(&mut self, now: Instant) {
        for (query, state) in &mut self.states {
            let expired: Vec<Member> = state
                .held
                .iter()
                .filter(|(_, until)| *until <= now)
                .map(|(m, _)| m.clone())
                .collect();
            if expired.is_empty() {
                continue;
            }
            state.held.retain(|(_, until)| *until > now);
            state.good = state.good.as_ref().map(|g| g.without(&expired));
            self.due.render = true;
            let token = token_text(&self.template, query);
            for m in expired {
                self.out.push(Action::Report(Report::HoldEnded {
                    token: token.clone(),
                    server: m.to_string(),
                    back: false,
                }));
            }
        }
    }

    /// Every query not already in flight, now (SIGHUP, template change).
    pub(super) fn lookup_all(&mut self) {
        self.take_lookups(|_| true);
    }

    /// Look up the queries not in flight that `pick` wants, marking them in flight.
    pub(super) fn take_lookups(&mut self, pick: impl Fn(&QueryState) -> bool) {
        let queries: Vec<Query> = self
            .states
            .iter_mut()
            .filter(|(_, s)| !s.in_flight && pick(s))
            .map(|(q, s)| {
                s.in_flight = true;
                q.clone()
            })
            .collect();
        if !queries.is_empty() {
            self.out.push(Action::Lookup(queries));
        }
    }

    /// Record lookup results; an answer with the same records as before (only its TTL
    /// differs) does not call for a render.
    pub(super) fn looked(&mut self, results: Lookups, now: Instant) {
        for (query, result) in results {
            let result = dns::with_allow_empty(&query, result, self.s.refresh.allow_empty);
            let jitter = self.jitter();
            let template = &self.template;
            // A query dropped from the template while its lookup ran: nothing to record.
            let Some(state) = self.states.get_mut(&query) else {
                continue;
            };
            state.in_flight = false;
            match result {
                Ok(answer) => {
                    let answer = if self.s.refresh.hold_removed.is_zero() {
                        answer
                    } else {
                        let token = || token_text(template, &query);
                        hold_vanished(
                            state,
                            answer,
                            now,
                            self.s.refresh.hold_removed,
                            token,
                            &mut self.out,
                        )
                    };
                    if state.failure.take().is_some() && state.good.is_some() {
                        let token = token_text(template, &query);
                        self.out
                            .push(Action::Report(Report::DnsRecovered { token }));
                    }
                    state.due = now
                        + refresh_after(
                            answer.ttl(),
                            self.s.refresh.min_refresh,
                            self.s.refresh.max_refresh,
                            jitter,
                        );
                    if state
                        .good
                        .as_ref()
                        .is_none_or(|g| g.records() != answer.records())
                    {
                        if state.good.is_some() {
                            self.reloads.dns_changed(now);
                        }
                        self.due.render = true;
                    }
                    state.good = Some(answer);
                    state.answered = Some(now);
                }
                Err(failure) => {
                    if state.failure.as_ref() != Some(&failure) {
                        self.out.push(Action::Report(Report::LookupFailed {
                            token: token_text(template, &query),
                            failure: failure.clone(),
                            kept: state.good.is_some(),
                        }));
                    }
                    state.failure = Some(failure);
                    state.due = now + self.s.refresh.min_refresh;
                }
            }
        }
    }

    /// Tokens that have never had an answer, with the latest reason.
    pub(super) fn missing(&self) -> Vec<FailedToken> {
        self.template
            .sites()
            .filter_map(|site| {
                let state = self.states.get(&site.token.query)?;
                if state.good.is_some() {
                    return None;
                }
                Some(FailedToken {
                    pointer: site.pointer.clone(),
                    text: site.text.clone(),
                    failure: state
                        .failure
                        .clone()
                        .unwrap_or_else(|| Failure::other("no answer yet")),
                })
            })
            .collect()
    }

    /// xorshift64: jitter only needs to differ between processes and calls.
    pub(super) fn jitter(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }
}
