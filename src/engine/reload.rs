//! How each change fares on its way to mcrouter, for a fleet's metrics: how long a change
//! that DNS made takes to be written and to run in mcrouter (its propagation), and whether the
//! latest attempt to put a change in force worked (the last reload's outcome, and when one
//! last did).
//!
//! A *reload* is an attempt to put a new template or DNS answer in force. It fails when the
//! template edit is refused or unreadable, when the write fails, when `--validate` or mcrouter
//! rejects the config, or when mcrouter serves its dump instead; it succeeds when mcrouter
//! confirms the config (or, with nothing to confirm with, once it is written), or when a good
//! template edit renders the config already in force. Writes mcw makes to repair the file or
//! to put back what mcrouter runs are not reloads.

use std::time::{Duration, Instant};

/// The state behind the fleet's reload metrics.
#[derive(Debug, Default)]
pub(super) struct Reloads {
    /// A DNS answer changed its records at this time, and no render has carried it yet.
    dns_changed: Option<Instant>,
    /// A render that carries a DNS change, on its way to mcrouter.
    carrying: Option<Carrying>,
    /// A good template edit has not been rendered yet.
    edit_pending: bool,
    /// md5 of the latest new config written (a render or a warm-up phase) whose word from
    /// mcrouter is awaited.
    awaiting: Option<String>,
    /// The latest reload's outcome; `None` before the first.
    ok: Option<bool>,
    /// When a reload last succeeded.
    last_success: Option<Instant>,
}

/// A change DNS made at `since`, rendered as `generation`: every write of that generation or a
/// later one carries it.
#[derive(Debug)]
struct Carrying {
    since: Instant,
    generation: u64,
    /// md5 of the latest write that carries it, once written.
    written: Option<String>,
}

/// How long a DNS change took to reach a stage.
pub type Propagation = Option<Duration>;

impl Reloads {
    /// A lookup brought records that differ from the last good answer's.
    pub(super) fn dns_changed(&mut self, now: Instant) {
        self.dns_changed.get_or_insert(now);
    }

    /// A template edit was read and is good: its render decides the outcome.
    pub(super) fn edited(&mut self) {
        self.edit_pending = true;
    }

    /// The latest reload failed (a refused edit, a failed write, a rejection).
    pub(super) fn failed(&mut self) {
        self.ok = Some(false);
        self.edit_pending = false;
    }

    fn succeeded(&mut self, now: Instant) {
        self.ok = Some(true);
        self.last_success = Some(now);
    }

    /// The render equals the config in force: a DNS change it follows made no difference,
    /// and a good edit is in force already.
    pub(super) fn unchanged(&mut self, now: Instant) {
        self.dns_changed = None;
        if std::mem::take(&mut self.edit_pending) {
            self.succeeded(now);
        }
    }

    /// A new config was rendered as `generation`.
    pub(super) fn rendered(&mut self, generation: u64) {
        self.edit_pending = false;
        if let Some(since) = self.dns_changed.take() {
            // An earlier change still on its way is carried by this render too.
            let since = self.carrying.as_ref().map_or(since, |c| c.since.min(since));
            self.carrying = Some(Carrying {
                since,
                generation,
                written: None,
            });
        }
    }

    /// A new config (`generation`, `md5`) is in the output; `confirming`: mcrouter's word on
    /// it will come. How long since the DNS change it carries, the first time one is written.
    pub(super) fn written(
        &mut self,
        generation: u64,
        md5: &str,
        confirming: bool,
        now: Instant,
    ) -> Propagation {
        let mut took = None;
        if let Some(c) = self
            .carrying
            .as_mut()
            .filter(|c| generation >= c.generation)
        {
            if c.written.is_none() {
                took = Some(now.saturating_duration_since(c.since));
            }
            c.written = Some(md5.to_string());
        }
        if confirming {
            self.awaiting = Some(md5.to_string());
        } else {
            self.carrying = None;
            self.succeeded(now);
        }
        took
    }

    /// mcrouter runs `md5`. How long since the DNS change it carries, if it carries one.
    pub(super) fn confirmed(&mut self, md5: &str, now: Instant) -> Propagation {
        if self.awaiting.as_deref() == Some(md5) {
            self.awaiting = None;
            self.succeeded(now);
        }
        let carried = self
            .carrying
            .as_ref()
            .is_some_and(|c| c.written.as_deref() == Some(md5));
        carried
            .then(|| self.carrying.take())
            .flatten()
            .map(|c| now.saturating_duration_since(c.since))
    }

    /// mcrouter (or the validator) refused `md5`, or serves its dump instead of it: the change
    /// it carries does not run.
    pub(super) fn rejected(&mut self, md5: &str) {
        self.failed();
        if self.awaiting.as_deref() == Some(md5) {
            self.awaiting = None;
        }
        // A carrying render refused before it was written (by the validator) is gone too.
        if self
            .carrying
            .as_ref()
            .is_some_and(|c| c.written.as_deref().is_none_or(|w| w == md5))
        {
            self.carrying = None;
        }
    }

    /// The latest reload's outcome, and how long ago one last succeeded, as of `now`.
    pub(super) fn last(&self, now: Instant) -> (Option<bool>, Option<Duration>) {
        let since = self.last_success.map(|t| now.saturating_duration_since(t));
        (self.ok, since)
    }
}
