//! Supervising mcrouter: starting it, forwarding signals, reaping, and its exit status.
//!
//! Owns the child's lifecycle as a small state machine ([`Child`]), the signal table (what mcw
//! consumes, what it forwards), and the one and only call to `waitpid` in mcw ([`reap`]), which
//! reaps every orphan too, as PID 1 or as a child subreaper. It does not decide when to start
//! the child; the event loop does, once the first config is on disk.

pub mod args;

use std::io;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

/// What mcw does with a signal it receives in `run` mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// SIGHUP: re-resolve and re-render now; never forwarded (it would kill mcrouter).
    Refresh,
    /// SIGCHLD: reap.
    Reap,
    /// SIGTERM, SIGINT: forward, then SIGKILL after `--stop-timeout`.
    Stop,
    /// Everything else catchable: forward to mcrouter.
    Forward,
}

/// Signals mcw cannot catch (KILL, STOP) or must not (ILL, FPE, SEGV: a fault in mcw itself).
const UNCATCHABLE: &[i32] = &[
    libc::SIGKILL,
    libc::SIGSTOP,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGSEGV,
];

/// The signal table of `run`: every standard signal mcw handles, with what it does.
pub fn signal_table() -> Vec<(i32, Disposition)> {
    (1..=31)
        .filter(|s| !UNCATCHABLE.contains(s))
        .map(|s| {
            let d = match s {
                libc::SIGHUP => Disposition::Refresh,
                libc::SIGCHLD => Disposition::Reap,
                libc::SIGTERM | libc::SIGINT => Disposition::Stop,
                _ => Disposition::Forward,
            };
            (s, d)
        })
        .collect()
}

/// The standard signals by number, as their conventional names.
const NAMES: &[(i32, &str)] = &[
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGILL, "SIGILL"),
    (libc::SIGTRAP, "SIGTRAP"),
    (libc::SIGABRT, "SIGABRT"),
    (libc::SIGBUS, "SIGBUS"),
    (libc::SIGFPE, "SIGFPE"),
    (libc::SIGKILL, "SIGKILL"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGSEGV, "SIGSEGV"),
    (libc::SIGUSR2, "SIGUSR2"),
    (libc::SIGPIPE, "SIGPIPE"),
    (libc::SIGALRM, "SIGALRM"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGSTKFLT, "SIGSTKFLT"),
    (libc::SIGCHLD, "SIGCHLD"),
    (libc::SIGCONT, "SIGCONT"),
    (libc::SIGSTOP, "SIGSTOP"),
    (libc::SIGTSTP, "SIGTSTP"),
    (libc::SIGTTIN, "SIGTTIN"),
    (libc::SIGTTOU, "SIGTTOU"),
    (libc::SIGURG, "SIGURG"),
    (libc::SIGXCPU, "SIGXCPU"),
    (libc::SIGXFSZ, "SIGXFSZ"),
    (libc::SIGVTALRM, "SIGVTALRM"),
    (libc::SIGPROF, "SIGPROF"),
    (libc::SIGWINCH, "SIGWINCH"),
    (libc::SIGIO, "SIGIO"),
    (libc::SIGPWR, "SIGPWR"),
    (libc::SIGSYS, "SIGSYS"),
];

/// The conventional name of a signal, for logs.
pub fn signal_name(sig: i32) -> String {
    NAMES
        .iter()
        .find(|(n, _)| *n == sig)
        .map_or_else(|| format!("signal {sig}"), |(_, name)| name.to_string())
}

/// Listen for every signal in `signals`, delivering their numbers on one channel. Must run
/// before the child is spawned, so no SIGCHLD or forwarded signal is lost.
pub fn listen(signals: &[i32]) -> io::Result<mpsc::UnboundedReceiver<i32>> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = mpsc::unbounded_channel();
    for &sig in signals {
        let mut stream = signal(SignalKind::from_raw(sig))?;
        let tx = tx.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if tx.send(sig).is_err() {
                    break;
                }
            }
        });
    }
    Ok(rx)
}

/// The supervised child, as a state machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Child {
    /// Not started yet (waiting for the first config).
    Pending,
    Running {
        pid: i32,
    },
    /// Told to stop; SIGKILL at `deadline`.
    Stopping {
        pid: i32,
        deadline: Instant,
    },
    /// Sent SIGKILL after the stop timeout; its SIGCHLD is on the way.
    Killed {
        pid: i32,
    },
    /// Gone, with mcw's exit code derived from its status.
    Exited {
        code: u8,
    },
}

/// Why the child could not be started, with the conventional exit code.
#[derive(Debug, thiserror::Error)]
#[error("cannot start {program:?}: {reason}")]
pub struct SpawnError {
    pub program: String,
    pub reason: String,
    pub code: u8,
}

impl Child {
    /// Start `command` with `extra` appended, stdio inherited.
    pub fn spawn(command: &[String], extra: &[String]) -> Result<Child, SpawnError> {
        let program = command.first().cloned().unwrap_or_default();
        let spawned = Command::new(&program)
            .args(&command[1..])
            .args(extra)
            .stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .spawn();
        match spawned {
            // The std handle is dropped without waiting: `reap` collects the status.
            Ok(child) => Ok(Child::Running {
                pid: child.id() as i32,
            }),
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
            Child::Running { pid } | Child::Stopping { pid, .. } | Child::Killed { pid } => {
                Some(pid)
            }
            _ => None,
        }
    }

    /// Send `sig` to the child, if it runs. Returns whether it was sent.
    pub fn forward(&self, sig: i32) -> bool {
        let Some(pid) = self.pid() else { return false };
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(pid, sig) == 0 }
    }

    /// Forward a stop signal and arm the SIGKILL deadline (the first stop signal arms it).
    pub fn stop(&mut self, sig: i32, timeout: Duration) {
        self.forward(sig);
        if let Child::Running { pid } = *self {
            *self = Child::Stopping {
                pid,
                deadline: Instant::now() + timeout,
            };
        }
    }

    /// When SIGKILL is due, if stopping.
    pub fn kill_deadline(&self) -> Option<Instant> {
        match *self {
            Child::Stopping { deadline, .. } => Some(deadline),
            _ => None,
        }
    }

    /// The stop timeout ran out: SIGKILL.
    pub fn kill(&mut self) {
        if let Some(pid) = self.pid() {
            tracing::warn!(pid, "stop timeout passed; sending SIGKILL");
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            *self = Child::Killed { pid };
        }
    }

    /// The child is gone with raw wait status `status`.
    pub fn exited(&mut self, status: i32) {
        let code = exit_code(status);
        tracing::info!(pid = self.pid(), exit_code = code, "mcrouter exited");
        *self = Child::Exited { code };
    }
}

/// The only `waitpid` in mcw: collect every exited child (mcrouter, a validator, orphans)
/// without blocking; returns each pid with its raw wait status.
pub fn reap() -> Vec<(i32, i32)> {
    let mut reaped = Vec::new();
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes only to `status`.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return reaped;
        }
        reaped.push((pid, status));
    }
}

/// Start `program args…` with stdio closed, for a short-lived helper whose status comes back
/// through [`reap`] (never waited on here).
pub fn spawn_quiet(program: &str, args: &[String]) -> io::Result<i32> {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(child.id() as i32)
}

/// mcw's exit code for a child's raw wait status: its code, or 128+N if signal N killed it.
pub fn exit_code(status: i32) -> u8 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status) as u8
    } else if libc::WIFSIGNALED(status) {
        (128 + libc::WTERMSIG(status)) as u8
    } else {
        1
    }
}

/// Become a child subreaper, so orphans of mcrouter's own children are re-parented to mcw.
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer argument only.
    match unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// Clear the signal mask mcw inherited, so the child does not inherit blocked signals.
pub fn unblock_all_signals() {
    // SAFETY: an empty, initialised sigset is passed; the old mask is not needed.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        // Raw statuses as waitpid reports them.
        assert_eq!(exit_code(0), 0);
        assert_eq!(exit_code(42 << 8), 42);
        assert_eq!(exit_code(255 << 8), 255);
        assert_eq!(exit_code(libc::SIGTERM), 143);
        assert_eq!(exit_code(libc::SIGKILL), 137);
    }

    #[test]
    fn the_signal_table_consumes_hup_and_chld_and_forwards_the_rest() {
        let table = signal_table();
        let get = |s| table.iter().find(|(n, _)| *n == s).map(|(_, d)| *d);
        assert_eq!(get(libc::SIGHUP), Some(Disposition::Refresh));
        assert_eq!(get(libc::SIGCHLD), Some(Disposition::Reap));
        assert_eq!(get(libc::SIGTERM), Some(Disposition::Stop));
        assert_eq!(get(libc::SIGUSR1), Some(Disposition::Forward));
        assert_eq!(get(libc::SIGKILL), None);
        assert_eq!(table.len(), 31 - UNCATCHABLE.len());
    }

    #[test]
    fn every_standard_signal_has_its_name() {
        for sig in 1..=31 {
            assert!(signal_name(sig).starts_with("SIG"), "{sig}");
        }
        assert_eq!(signal_name(libc::SIGTTIN), "SIGTTIN");
        assert_eq!(signal_name(64), "signal 64");
    }
}
