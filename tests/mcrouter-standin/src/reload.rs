//! Reloading the config file as mcrouter does: an inotify watch on the path and on every link
//! of its symlink chain (IN_MODIFY | IN_MOVE_SELF | IN_DELETE_SELF | IN_DONT_FOLLOW), checked
//! every reconfiguration delay; after an event the events are drained, the watch is re-created
//! on the *path* (a missing path drops it for good), and after one more delay the file is read
//! and built. A config that fails to build is counted and logged, the old one stays, and
//! nothing is retried until the next event.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use inotify::{Inotify, WatchDescriptor, WatchMask};

use crate::config;
use crate::dump::Dump;
use crate::options::log;
use crate::server::{State, unix_now};

fn mask() -> WatchMask {
    WatchMask::MODIFY | WatchMask::MOVE_SELF | WatchMask::DELETE_SELF | WatchMask::DONT_FOLLOW
}

/// Watch `path` and each link of its symlink chain.
fn add_watches(inotify: &mut Inotify, path: &Path) -> Vec<WatchDescriptor> {
    let mut watches = Vec::new();
    let mut at = path.to_path_buf();
    for _ in 0..40 {
        match inotify.watches().add(&at, mask()) {
            Ok(wd) => watches.push(wd),
            Err(_) => break,
        }
        match std::fs::read_link(&at) {
            Ok(target) => at = at.parent().map_or(target.clone(), |dir| dir.join(&target)),
            Err(_) => break,
        }
    }
    watches
}

/// Arm the watch now (so a change right after startup is seen), then poll it on a thread.
pub fn spawn(
    path: PathBuf,
    delay: Duration,
    prefix: String,
    state: Arc<State>,
    dump: Option<Dump>,
) {
    let mut inotify = Inotify::init().expect("inotify");
    let mut watches = add_watches(&mut inotify, &path);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            std::thread::sleep(delay);
            let noticed = inotify
                .read_events(&mut buf)
                .is_ok_and(|mut e| e.next().is_some());
            state.polls.fetch_add(1, Ordering::Relaxed);
            if !noticed {
                continue;
            }
            while inotify
                .read_events(&mut buf)
                .is_ok_and(|mut e| e.next().is_some())
            {}
            for wd in watches.drain(..) {
                let _ = inotify.watches().remove(wd);
            }
            watches = add_watches(&mut inotify, &path);
            if watches.is_empty() {
                // mcrouter's words; the check failed, so it does not read the file, now or
                // ever again.
                let path = path.display();
                log(&format!(
                    "Check {path} for update failed: Can not add inotify watch for '{path}'"
                ));
                continue;
            }
            std::thread::sleep(delay);
            reload(&path, &prefix, &state, dump.as_ref());
        }
    });
}

fn reload(path: &Path, prefix: &str, state: &State, dump: Option<&Dump>) {
    state.attempts.fetch_add(1, Ordering::Relaxed);
    state.last_attempt.store(unix_now(), Ordering::Relaxed);
    let bytes = std::fs::read(path).map_err(|e| e.to_string());
    let built = bytes.clone().and_then(|b| config::build(&b, prefix));
    match (built, bytes) {
        (Ok(cfg), Ok(bytes)) => {
            log(&format!("reconfigured, md5 {}", cfg.md5));
            *state.config.write().expect("config lock") = Arc::new(cfg);
            state.last_success.store(unix_now(), Ordering::Relaxed);
            state.from_disk.store(0, Ordering::Relaxed);
            if let Some(d) = dump {
                d.save(&bytes);
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            state.failures.fetch_add(1, Ordering::Relaxed);
            log(&format!(
                "FAILURE [invalid-config] Failed to reconfigure: {e}"
            ));
        }
    }
}
