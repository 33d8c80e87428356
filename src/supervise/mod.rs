//! Supervising mcrouter: starting it, forwarding signals, reaping, and its exit status.
//!
//! Owns the child's lifecycle as a small state machine ([`Child`]), the signal table and
//! stream ([`signals`]), the port mcw holds for mcrouter ([`socket`]), the restart policy
//! ([`restart`]), and the one and only call to `waitpid` in mcw ([`reap`]), which reaps every
//! orphan too, as PID 1 or as a child subreaper. It does not decide when to start the child;
//! the engine does, once the config is on disk, and the event loop carries it out.
//!
//! The reaper asks rustix, not nix: nix's `WaitStatus` cannot hold a real-time signal, so its
//! `waitpid` reaps a child killed by `SIGRTMIN+n` and then returns `EINVAL` without the pid —
//! and mcw forwards real-time signals, so mcrouter can die of one.

pub mod args;
pub mod restart;
pub mod signal_table;
pub mod signals;
pub mod socket;

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{ChildStderr, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::time::Instant;

use restart::Reason;
use socket::Held;

/// What follows once a child that was told to stop has exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// mcw leaves with its status.
    Leave,
    /// It is started again at once.
    Restart(Reason),
}

/// The supervised child, as a state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Child {
    /// Not started yet (waiting for the first config).
    Pending,
    Running {
        pid: i32,
        /// The signals mcw has sent it, as bits (`1 << (n - 1)` for signal n): a death by
        /// one of them is not a failure.
        sent: u64,
    },
    /// Told to stop; SIGKILL at `deadline`.
    Stopping {
        pid: i32,
        deadline: Instant,
        then: Then,
    },
    /// Sent SIGKILL after the stop timeout; its SIGCHLD is on the way.
    Killed { pid: i32, then: Then },
    /// It exited on its own (status `code`) and is started again at `at`
    /// (`--restart on-failure`).
    Backoff {
        at: Instant,
        reason: Reason,
        code: u8,
    },
    /// Gone for good, with mcw's exit code derived from its status.
    Exited { code: u8 },
}

/// Why the child could not be started, with the conventional exit code.
#[derive(Debug, thiserror::Error)]
#[error("cannot start {program:?}: {reason}")]
pub struct SpawnError {
    pub program: String,
    pub reason: String,
    pub code: u8,
}

/// Environment variables of mcw's own service manager that are not for mcrouter: systemd's
/// notification socket and watchdog (mcw answers them).
const NOT_INHERITED: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

impl Child {
    /// Start `command` with `extra` appended, in a process group of its own (so that what a
    /// terminal or a shell sends to mcw's job reaches mcw alone, which passes on what mcrouter
    /// should get), stdin and stdout inherited, stderr on a pipe whose reading end is returned
    /// (the caller passes its lines on). With `held`, the socket is passed on at its number.
    pub fn spawn(
        command: &[String],
        extra: &[String],
        held: Option<&Held>,
    ) -> Result<(Child, ChildStderr), SpawnError> {
        let program = command.first().cloned().unwrap_or_default();
        let mut cmd = Command::new(&program);
        cmd.args(&command[1..])
            .args(extra)
            .stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .process_group(0);
        for name in NOT_INHERITED {
            cmd.env_remove(name);
        }
        let spawned = match held {
            Some(held) => held.lend(|| cmd.spawn()).and_then(|r| r),
            None => cmd.spawn(),
        };
        match spawned {
            // The std handle is dropped without waiting: `reap` collects the status.
            Ok(mut child) => {
                let pid = child.id() as i32;
                let stderr = child.stderr.take().expect("stderr was piped");
                Ok((Child::Running { pid, sent: 0 }, stderr))
            }
            Err(e) => {
                let (code, reason) = match e.kind() {
                    io::ErrorKind::NotFound => {
                        (127, "not found (check the command after --)".to_string())
                    }
                    io::ErrorKind::PermissionDenied => {
                        (126, "permission denied (is it executable?)".to_string())
                    }
                    _ => (126, format!("{e} (is it an executable for this machine?)")),
                };
                Err(SpawnError {
                    program,
                    reason,
                    code,
                })
            }
        }
    }

    pub fn pid(&self) -> Option<i32> {
        match *self {
            Child::Running { pid, .. }
            | Child::Stopping { pid, .. }
            | Child::Killed { pid, .. } => Some(pid),
            _ => None,
        }
    }

    /// Send `sig` to the child, if it runs, and remember that mcw sent it. Returns whether it
    /// was sent.
    pub fn forward(&mut self, sig: i32) -> bool {
        let Some(pid) = self.pid() else { return false };
        if let Child::Running { sent, .. } = self
            && (1..=64).contains(&sig)
        {
            *sent |= 1 << (sig - 1);
        }
        signals::send(pid, sig).is_ok()
    }

    /// Whether mcw sent the running child `sig`.
    pub fn was_sent(&self, sig: i32) -> bool {
        match *self {
            Child::Running { sent, .. } => (1..=64).contains(&sig) && sent & (1 << (sig - 1)) != 0,
            _ => false,
        }
    }

    /// Forward a stop signal and arm the SIGKILL deadline (the first stop signal arms it);
    /// once it has exited, `then` follows. A stop for mcw to leave overrides a restart under
    /// way. Returns whether the signal was sent.
    pub fn stop(&mut self, sig: i32, timeout: Duration, then: Then) -> bool {
        let sent = self.forward(sig);
        match self {
            Child::Running { pid, .. } => {
                *self = Child::Stopping {
                    pid: *pid,
                    deadline: Instant::now() + timeout,
                    then,
                };
            }
            Child::Stopping { then: t, .. } | Child::Killed { then: t, .. }
                if then == Then::Leave =>
            {
                *t = Then::Leave;
            }
            _ => {}
        }
        sent
    }

    /// The state's name, as `/status` and the `mcw_child_state` metric show it.
    pub fn state(&self) -> &'static str {
        match self {
            Child::Pending => "pending",
            Child::Running { .. } => "running",
            Child::Stopping {
                then: Then::Restart(_),
                ..
            } => "restarting",
            Child::Stopping { .. } => "stopping",
            Child::Killed { .. } => "killed",
            Child::Backoff { .. } => "backoff",
            Child::Exited { .. } => "exited",
        }
    }

    /// When SIGKILL is due, if stopping.
    pub fn kill_deadline(&self) -> Option<Instant> {
        match *self {
            Child::Stopping { deadline, .. } => Some(deadline),
            _ => None,
        }
    }

    /// When it is to be started again, if waiting to be.
    pub fn restart_at(&self) -> Option<Instant> {
        match *self {
            Child::Backoff { at, .. } => Some(at),
            _ => None,
        }
    }

    /// The stop timeout ran out: SIGKILL.
    pub fn kill(&mut self) {
        if let Child::Stopping { pid, then, .. } = *self {
            tracing::warn!(pid, "stop timeout passed; sending SIGKILL");
            let _ = signals::send(pid, Signal::SIGKILL as i32);
            *self = Child::Killed { pid, then };
        }
    }

    /// The child is gone with `status`: what was to follow, if mcw had told it to stop.
    pub fn exited(&mut self, status: Exit) -> Option<Then> {
        let then = match *self {
            Child::Stopping { then, .. } | Child::Killed { then, .. } => Some(then),
            _ => None,
        };
        let code = status.code();
        tracing::info!(pid = self.pid(), exit_code = code, "mcrouter exited");
        *self = Child::Exited { code };
        then
    }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// mcw's exit code for it: the child's code, or 128+N if signal N killed it (the shell's
    /// convention, and tini's).
    pub fn code(self) -> u8 {
        match self {
            Exit::Code(c) => (c & 0xff) as u8,
            Exit::Signal(s) => (128 + s).clamp(0, 255) as u8,
        }
    }
}

/// The only `waitpid` in mcw: collect every exited child (mcrouter, a validator, orphans)
/// without blocking; returns each pid with how it ended.
pub fn reap() -> Vec<(i32, Exit)> {
    use rustix::process::{WaitOptions, wait};
    let mut reaped = Vec::new();
    // Any child, whatever its process group (`waitpid(-1)`): mcrouter and the validator run
    // in groups of their own, and so may orphans.
    while let Ok(Some((pid, status))) = wait(WaitOptions::NOHANG) {
        let exit = match (status.exit_status(), status.terminating_signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(sig)) => Exit::Signal(sig),
            // Stopped or continued: not asked for (no WUNTRACED), so not seen.
            (None, None) => continue,
        };
        reaped.push((pid.as_raw_nonzero().get(), exit));
    }
    reaped
}

/// Start `program args…` for a short-lived helper whose status comes back through [`reap`]
/// (never waited on here): no input, output discarded, stderr to the pipe returned.
pub fn spawn_helper(program: &str, args: &[String]) -> io::Result<(i32, ChildStderr)> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()?;
    let stderr = child.stderr.take().expect("stderr was piped");
    Ok((child.id() as i32, stderr))
}

/// Become a child subreaper, so orphans of mcrouter's own children are re-parented to mcw.
pub fn become_subreaper() -> io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        let cases = [
            (Exit::Code(0), 0),
            (Exit::Code(42), 42),
            (Exit::Code(255), 255),
            (Exit::Signal(Signal::SIGTERM as i32), 143),
            (Exit::Signal(Signal::SIGKILL as i32), 137),
            (Exit::Signal(37), 165),
        ];
        for (exit, want) in cases {
            assert_eq!(exit.code(), want, "{exit:?}");
        }
    }
}
