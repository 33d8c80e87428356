//! Noticing that the template may have changed.
//!
//! Owns the inotify watches. It watches *directories*, not the file: the directory holding the
//! template path, and the one holding the file the path finally resolves to. That catches
//! in-place writes, editors that write a new file and rename it over, and Kubernetes ConfigMap
//! volumes, where the template is a symlink through `..data`, which kubelet swaps by rename.
//! Events are debounced; whether the text really changed is the engine's business (it compares
//! bytes), so a spurious wake-up costs one file read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use inotify::{EventStream, Inotify, WatchDescriptor, WatchMask};

/// A template watch that survives renames and symlink swaps.
pub struct TemplateWatcher {
    template: PathBuf,
    debounce: Duration,
    stream: EventStream<Vec<u8>>,
    watched: HashMap<PathBuf, WatchDescriptor>,
    /// When the directory will have been quiet for the debounce period, if an event is
    /// pending. Kept here, not in the future, so `changed` is cancellation-safe: the event loop
    /// drops it whenever another arm of its `select!` wins, and the next call carries on with
    /// the same deadline instead of starting the debounce over.
    quiet_at: Option<tokio::time::Instant>,
}

fn mask() -> WatchMask {
    WatchMask::CLOSE_WRITE
        | WatchMask::MODIFY
        | WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::ATTRIB
        | WatchMask::DELETE_SELF
        | WatchMask::MOVE_SELF
}

impl TemplateWatcher {
    pub fn new(template: &Path, debounce: Duration) -> std::io::Result<TemplateWatcher> {
        let inotify = Inotify::init()?;
        let stream = inotify.into_event_stream(vec![0u8; 4096])?;
        let mut watcher = TemplateWatcher {
            template: template.to_path_buf(),
            debounce,
            stream,
            watched: HashMap::new(),
            quiet_at: None,
        };
        watcher.rewatch();
        Ok(watcher)
    }

    /// The directories that decide what the template path reads: its own, and (when it is a
    /// symlink chain) the final target's.
    fn wanted_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        let own = match self.template.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        dirs.push(own);
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
        let mut watches = self.stream.watches();
        self.watched.retain(|dir, wd| {
            let keep = wanted.contains(dir);
            if !keep {
                let _ = watches.remove(wd.clone());
            }
            keep
        });
        for dir in wanted {
            if self.watched.contains_key(&dir) {
                continue;
            }
            match watches.add(&dir, mask()) {
                Ok(wd) => {
                    self.watched.insert(dir, wd);
                }
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
    /// for the debounce period. Cancellation-safe.
    pub async fn changed(&mut self) {
        if self.watched.is_empty() {
            // Nothing to wait on: never resolve, the periodic re-read still works.
            return std::future::pending().await;
        }
        loop {
            let Some(quiet_at) = self.quiet_at else {
                self.next_event().await;
                self.quiet_at = Some(tokio::time::Instant::now() + self.debounce);
                continue;
            };
            tokio::select! {
                _ = tokio::time::sleep_until(quiet_at) => {
                    self.quiet_at = None;
                    self.rewatch();
                    return;
                }
                _ = self.next_event() => {
                    self.quiet_at = Some(tokio::time::Instant::now() + self.debounce);
                }
            }
        }
    }

    async fn next_event(&mut self) {
        match self.stream.next().await {
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                tracing::warn!(template = %self.template.display(), reason = %e, "inotify read failed");
                self.watched.clear();
                std::future::pending::<()>().await
            }
            None => std::future::pending::<()>().await,
        }
    }
}
