//! Where mcw's log lines (and mcrouter's, which pass through mcw) go: stderr, written by a
//! thread of its own so that a paused terminal or a stalled journal never blocks the event
//! loop. Lines go through a bounded queue; when it is full, new lines are dropped and counted
//! (`mcw_log_lines_dropped_total`) rather than waited for.
//!
//! Owns the subscriber's set-up (text or JSON, the level from `MCW_LOG`/`RUST_LOG`, colours only
//! at a terminal, no second timestamp in the journal) and the one writer both kinds of line
//! share, so they stay in order. The queue is tracing-appender's non-blocking writer.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::cli::Format;

/// Lines the queue holds before new ones are dropped: about a minute of a very chatty
/// mcrouter, and a few MiB at most.
const QUEUED_LINES: usize = 16_384;

static WRITER: OnceLock<NonBlocking> = OnceLock::new();

/// Keeps the writing thread; dropping it (at exit) writes out what is queued, waiting a second
/// at most.
pub struct Guard(#[allow(dead_code)] WorkerGuard);

/// Set up logging to stderr in `format`. Keep the guard until the end of `main`.
pub fn init(format: Format) -> Guard {
    // hickory logs every retry at warn; mcw reports DNS outcomes itself.
    let default = "info,hickory_resolver=error,hickory_net=error,hickory_proto=error";
    let filter = std::env::var("MCW_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.to_string());
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(QUEUED_LINES)
        .thread_name("mcw-log")
        .finish(std::io::stderr());
    let _ = WRITER.set(writer.clone());
    // Colours only for a person at a terminal, never in files or journald. A line that cannot
    // be written (stderr is a closed pipe) is dropped by the writing thread.
    let builder = tracing_subscriber::fmt()
        .with_writer(writer)
        .log_internal_errors(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(EnvFilter::new(filter));
    match format {
        // The journal stamps every line itself: a second timestamp is noise there.
        Format::Text if stderr_is_the_journal() => builder.without_time().init(),
        Format::Text => builder.init(),
        Format::Json => builder.json().flatten_event(true).init(),
    }
    Guard(guard)
}

/// Write `line` (a whole line of a child's, newline included) in order with mcw's own lines,
/// without waiting: dropped and counted when the queue is full. Before [`init`] (in tests that
/// use the library directly), straight to stderr.
pub fn write_line(line: &[u8]) {
    match WRITER.get() {
        Some(writer) => {
            let _ = writer.clone().write_all(line);
        }
        None => {
            let _ = std::io::stderr().lock().write_all(line);
        }
    }
}

/// How many lines were dropped because stderr did not keep up.
pub fn dropped_lines() -> u64 {
    WRITER
        .get()
        .map(NonBlocking::error_counter)
        .as_ref()
        .map_or(0, ErrorCounter::dropped_lines) as u64
}

/// True when stderr is connected to systemd's journal: systemd then sets JOURNAL_STREAM to
/// the stream's "device:inode", which a redirected stderr no longer matches.
fn stderr_is_the_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| stream == format!("{}:{}", m.dev(), m.ino()))
}
