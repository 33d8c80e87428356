//! What mcrouter's processes write to stderr. mcrouter's own lines are passed on to mcw's
//! stderr, line by line and unchanged; a validator's are read only for their reason. Both are
//! read on the way for the reason mcrouter gives when a config fails to load, so that a
//! rejection can say why; mcrouter's also for the line that says it stopped watching its
//! config file.
//!
//! Owns the tasks that read the lines. mcrouter writes little (glog lines, and a FAILURE line
//! with its options when a config fails), so a line at a time costs nothing. Lines are passed
//! on through [`logging::write_line`], which never waits: a stalled stderr drops (and counts)
//! lines instead of blocking the event loop.

use std::os::fd::OwnedFd;
use std::process::ChildStderr;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::unix::pipe;
use tokio::sync::mpsc;

use crate::logging;
use crate::mcrouter::{failure_reason, stopped_watching};

/// What mcrouter's log told mcw.
#[derive(Debug)]
pub(super) enum Told {
    /// A config failed to load, for this reason.
    LoadFailed(String),
    /// It could not watch its config file again and will never reload.
    StoppedWatching,
}

/// Relay `stderr` to mcw's stderr until mcrouter closes it; what its lines tell about loads
/// and about its `config` file comes out of the receiver.
pub(super) fn relay(stderr: ChildStderr, config: String) -> mpsc::UnboundedReceiver<Told> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(read_lines(stderr, move |line| {
        logging::write_line(line);
        let line = String::from_utf8_lossy(line);
        if let Some(reason) = failure_reason(&line) {
            let _ = tx.send(Told::LoadFailed(reason.to_string()));
        } else if stopped_watching(&line, &config) {
            let _ = tx.send(Told::StoppedWatching);
        }
    }));
    rx
}

/// A validator's pid, and the first reason its stderr gave.
pub(super) type Said = (i32, Option<String>);

/// Read validator `pid`'s `stderr` until it closes, then send `(pid, the first reason it
/// gave)` on `said`: the validator has then said all it will.
pub(super) fn first_reason(pid: i32, stderr: ChildStderr, said: mpsc::UnboundedSender<Said>) {
    let mut first: Option<String> = None;
    tokio::spawn(async move {
        read_lines(stderr, |line| {
            if first.is_none() {
                first = failure_reason(&String::from_utf8_lossy(line)).map(str::to_string);
            }
        })
        .await;
        let _ = said.send((pid, first));
    });
}

/// Give each line of `stderr` to `each` until the pipe closes (at once, after a warning, when
/// it cannot be read).
async fn read_lines(stderr: ChildStderr, mut each: impl FnMut(&[u8])) {
    let pipe = match pipe::Receiver::from_owned_fd(OwnedFd::from(stderr)) {
        Ok(pipe) => pipe,
        Err(e) => {
            tracing::warn!(reason = %e, "cannot read a child's stderr; its lines are lost");
            return;
        }
    };
    let mut lines = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => each(&line),
        }
    }
}
