//! Noticing that the template may have changed.
//!
//! Owns the file watch (notify). It watches *directories*, not the file: the directory holding
//! the template path, and the one holding the file the path finally resolves to. That catches
//! in-place writes, editors that write a new file and rename it over, and Kubernetes ConfigMap
//! volumes, where the template is a symlink through `..data`, which kubelet swaps by rename.
//! Where inotify cannot be had (its limits are used up) or is not wanted (`--template-poll`, for
//! network filesystems that never report changes), notify's polling watcher stands in.
//! Events are debounced; whether the text really changed is the engine's business (it compares
//! bytes), so a spurious wake-up costs one file read.

use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{PollWatcher, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How often the polling watcher looks when inotify is unavailable and no interval was given.
const FALLBACK_POLL: Duration = Duration::from_secs(2);

/// A template that never goes quiet (a tool rewriting it in a loop) is still read: at the
/// latest this many debounce periods after the first change of a burst.
const LONGEST_WAIT: u32 = 10;

/// A template watch that survives renames and symlink swaps.
pub struct TemplateWatcher {
    template: PathBuf,
    debounce: Duration,
    /// Never dropped: notify's teardown removes each watch and closes inotify on its thread,
    /// which holds up mcw's exit by about 15 ms (the kernel waits out a grace period); at
    /// process exit the kernel releases the same things without that wait. mcw makes one
    /// watcher per process.
    backend: ManuallyDrop<Box<dyn Watcher + Send>>,
    events: mpsc::UnboundedReceiver<()>,
    watched: Vec<PathBuf>,
    /// When the directory will have been quiet for the debounce period, if an event is
    /// pending. Kept here, not in the future, so `changed` is cancellation-safe: the event loop
    /// drops it whenever another arm of its `select!` wins, and the next call carries on with
    /// the same deadline instead of starting the debounce over.
    quiet_at: Option<Instant>,
    /// When the first event of the pending burst arrived (meaningful while `quiet_at` is set).
    burst_from: Instant,
}

impl TemplateWatcher {
    /// Watch with inotify, or poll every `poll` when given (and every few seconds when inotify
    /// cannot be set up).
    pub fn new(
        template: &Path,
        debounce: Duration,
        poll: Option<Duration>,
    ) -> std::io::Result<TemplateWatcher> {
        let (tx, events) = mpsc::unbounded_channel();
        let handler = move |event: notify::Result<notify::Event>| {
            // An error (a lost event, an overflowed queue) is a reason to look again too.
            if event.is_ok_and(|e| !may_change_content(&e.kind)) {
                return;
            }
            let _ = tx.send(());
        };
        let backend: Box<dyn Watcher + Send> = match poll {
            Some(every) => Box::new(poller(handler, every)?),
            None => match RecommendedWatcher::new(handler.clone(), notify::Config::default()) {
                Ok(w) => Box::new(w),
                Err(e) => {
                    tracing::warn!(
                        template = %template.display(),
                        reason = %e,
                        every = ?FALLBACK_POLL,
                        "cannot use inotify; polling the template's directory instead (raise fs.inotify.max_user_instances to avoid this)"
                    );
                    Box::new(poller(handler, FALLBACK_POLL)?)
                }
            },
        };
        let mut watcher = TemplateWatcher {
            template: template.to_path_buf(),
            debounce,
            backend: ManuallyDrop::new(backend),
            events,
            watched: Vec::new(),
            quiet_at: None,
            burst_from: Instant::now(),
        };
        watcher.rewatch();
        Ok(watcher)
    }

    /// The directories that decide what the template path reads: its own, and (when it is a
    /// symlink chain) the final target's. While its own directory is missing (deleted, not
    /// yet mounted), the nearest ancestor that exists stands in, so its creation is seen and
    /// the directory is watched again.
    fn wanted_dirs(&self) -> Vec<PathBuf> {
        let own = crate::fsx::parent_dir(&self.template);
        // Absolute, so that the two entries compare equal when they are one directory.
        let own = std::fs::canonicalize(own).unwrap_or_else(|_| nearest_existing(own));
        let mut dirs = vec![own];
        if let Ok(real) = std::fs::canonicalize(&self.template)
            && let Some(parent) = real.parent()
            && !dirs.iter().any(|d| d == parent)
        {
            dirs.push(parent.to_path_buf());
        }
        dirs
    }

    /// Bring the set of watched directories in line with where the template now resolves.
    fn rewatch(&mut self) {
        let wanted = self.wanted_dirs();
        let backend = &mut self.backend;
        self.watched.retain(|dir| {
            let keep = wanted.contains(dir);
            if !keep {
                let _ = backend.unwatch(dir);
            }
            keep
        });
        for dir in wanted {
            if self.watched.contains(&dir) {
                continue;
            }
            match self.backend.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => self.watched.push(dir),
                Err(e) => tracing::warn!(
                    template = %self.template.display(),
                    dir = %dir.display(),
                    reason = %e,
                    "cannot watch the template's directory; changes are picked up at the next refresh"
                ),
            }
        }
    }

    /// Wait until something in the watched directories changed, then until it has been quiet
    /// for the debounce period, or for ten periods in all if changes keep coming.
    /// Cancellation-safe.
    pub async fn changed(&mut self) {
        if self.watched.is_empty() {
            // Nothing to wait on: never resolve, the periodic re-read still works.
            return std::future::pending().await;
        }
        loop {
            let Some(quiet_at) = self.quiet_at else {
                self.next_event().await;
                self.burst_from = Instant::now();
                self.quiet_at = Some(self.burst_from + self.debounce);
                continue;
            };
            tokio::select! {
                _ = tokio::time::sleep_until(quiet_at) => {
                    self.quiet_at = None;
                    self.rewatch();
                    return;
                }
                _ = self.next_event() => {
                    let latest = self.burst_from + self.debounce * LONGEST_WAIT;
                    self.quiet_at = Some((Instant::now() + self.debounce).min(latest));
                }
            }
        }
    }

    async fn next_event(&mut self) {
        if self.events.recv().await.is_none() {
            // The backend is gone (it owns the sender): only the periodic re-read is left.
            self.watched.clear();
            std::future::pending::<()>().await
        }
    }
}

/// The nearest directory above `dir` that exists, canonical (`dir` itself when none does).
fn nearest_existing(dir: &Path) -> PathBuf {
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    absolute
        .ancestors()
        .find_map(|a| std::fs::canonicalize(a).ok())
        .unwrap_or(absolute)
}

/// Whether an event may mean new content. Opening and reading a file (mcw's own reads of the
/// template among them) may not: waking for those would make every read wake mcw again.
fn may_change_content(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, EventKind};
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

fn poller(handler: impl notify::EventHandler, every: Duration) -> std::io::Result<PollWatcher> {
    let config = notify::Config::default()
        .with_poll_interval(every)
        .with_compare_contents(true);
    PollWatcher::new(handler, config).map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind};

    #[test]
    fn reads_do_not_wake_the_watcher_and_writes_do() {
        let cases = [
            (EventKind::Access(AccessKind::Open(AccessMode::Any)), false),
            (
                EventKind::Access(AccessKind::Close(AccessMode::Read)),
                false,
            ),
            (
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                true,
            ),
            (EventKind::Modify(ModifyKind::Any), true),
            (EventKind::Create(CreateKind::File), true),
            (EventKind::Any, true),
        ];
        for (kind, want) in cases {
            assert_eq!(may_change_content(&kind), want, "{kind:?}");
        }
    }
}
