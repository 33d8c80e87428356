//! mcrouter's stderr: passed on to mcw's own, line by line and unchanged, and read on the way
//! for the reason mcrouter gives when a config fails to load, so that a rejection can say why.
//!
//! Owns the task that relays the lines. mcrouter writes little (glog lines, and a FAILURE line
//! with its options when a config fails), so a line at a time costs nothing.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::process::ChildStderr;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::unix::pipe;
use tokio::sync::mpsc;

use crate::mcrouter::failure_reason;

/// Relay `stderr` to mcw's stderr until mcrouter closes it; the reasons of failed loads come
/// out of the receiver.
pub(super) fn relay(stderr: ChildStderr) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    let pipe = match pipe::Receiver::from_owned_fd(OwnedFd::from(stderr)) {
        Ok(pipe) => pipe,
        Err(e) => {
            tracing::warn!(reason = %e, "cannot read mcrouter's stderr; its lines are lost");
            return rx;
        }
    };
    tokio::spawn(async move {
        let mut lines = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match lines.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            // A line that cannot be written (stderr gone) is dropped, as mcw's own are.
            let _ = std::io::stderr().lock().write_all(&line);
            if let Some(reason) = failure_reason(&String::from_utf8_lossy(&line)) {
                let _ = tx.send(reason.to_string());
            }
        }
    });
    rx
}
