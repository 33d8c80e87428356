//! Signals: which ones mcw listens for, what each one means, their names, and sending one on.
//!
//! Owns the signal table (README, "Signals"), the single signal-hook stream that carries every signal
//! mcw handles together with where it came from, and [`send`], the one way mcw signals a
//! process. nix names and sends the standard signals; its `Signal` enum has no real-time
//! signals (nix-rust/nix#495), so `SIGRTMIN..=SIGRTMAX` go through rustix's checked
//! constructor instead. Nothing here decides *when* to stop or forward; the event loop does.

use std::io;

use futures_util::StreamExt;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use rustix_libc_wrappers::process::SignalExt;
use signal_hook::iterator::exfiltrator::WithOrigin;
use signal_hook::low_level::siginfo::{Cause, Origin, Sent};
use signal_hook_tokio::SignalsInfo;

/// What mcw does with a signal it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// SIGHUP from a process (`kill -HUP`, `systemctl reload`): re-read the template,
    /// re-resolve and re-render now; never forwarded (it would kill mcrouter).
    Refresh,
    /// SIGCHLD: reap.
    Reap,
    /// SIGTERM, SIGINT: forward, then SIGKILL after `--stop-timeout`.
    Stop,
    /// SIGHUP from the kernel: the controlling terminal hung up (it was closed). Stop as for
    /// SIGTERM, which is what mcrouter is sent: the SIGHUP itself would kill it.
    HangUp,
    /// A SIGPIPE the kernel raised for a write of mcw's own: about mcw, not for mcrouter.
    Drop,
    /// Everything else catchable, real-time signals included: forward to mcrouter.
    Forward,
}

/// Who sent a signal, as far as mcw can tell from its `siginfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// The kernel, on mcw's own account: a SIGPIPE for a write of mcw's to a pipe whose reader
    /// is gone. The kernel reports it as sent by the writing process itself (SI_USER).
    Own,
    /// The kernel (`si_code` SI_KERNEL): a terminal's Ctrl-C, Ctrl-\, window resize or hang-up.
    /// Those are the user's, never mcw's own.
    Kernel,
    /// Another process: kill(2), sigqueue(3), systemd, a container runtime, a shell.
    Process,
}

/// Which process mode the table is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `watch`: no child to forward to; only HUP, TERM, INT and CHLD are caught.
    Watch,
    /// `run`: every catchable signal.
    Run,
}

/// Signals no process may catch (KILL, STOP) or that mcw must not (ILL, FPE, SEGV: a fault
/// in mcw itself). signal-hook refuses the same five.
const FORBIDDEN: [Signal; 5] = [
    Signal::SIGKILL,
    Signal::SIGSTOP,
    Signal::SIGILL,
    Signal::SIGFPE,
    Signal::SIGSEGV,
];

/// glibc's real-time range (it keeps the first two kernel ones for itself).
fn realtime() -> std::ops::RangeInclusive<i32> {
    let min = rustix::process::Signal::rt_min().as_raw();
    let max = rustix::process::Signal::rt_max().as_raw();
    min..=max
}

/// What mcw does with `sig` from `sender`.
pub fn disposition(sig: i32, sender: Sender) -> Disposition {
    match (Signal::try_from(sig), sender) {
        (Ok(Signal::SIGPIPE), Sender::Own) => Disposition::Drop,
        (Ok(Signal::SIGHUP), Sender::Kernel) => Disposition::HangUp,
        (Ok(Signal::SIGHUP), _) => Disposition::Refresh,
        (Ok(Signal::SIGCHLD), _) => Disposition::Reap,
        (Ok(Signal::SIGTERM | Signal::SIGINT), _) => Disposition::Stop,
        _ => Disposition::Forward,
    }
}

/// The signals mcw listens for in `mode`.
pub fn caught(mode: Mode) -> Vec<i32> {
    match mode {
        Mode::Watch => [
            Signal::SIGHUP,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGCHLD,
        ]
        .iter()
        .map(|s| *s as i32)
        .collect(),
        Mode::Run => Signal::iterator()
            .filter(|s| !FORBIDDEN.contains(s))
            .map(|s| s as i32)
            .chain(realtime())
            .collect(),
    }
}

/// The conventional name of a signal, for logs: `SIGUSR1`, `SIGRTMIN+3`.
pub fn name(sig: i32) -> String {
    if let Ok(s) = Signal::try_from(sig) {
        return s.as_str().to_string();
    }
    let rt = realtime();
    if rt.contains(&sig) {
        return format!("SIGRTMIN+{}", sig - rt.start());
    }
    format!("signal {sig}")
}

/// Send `sig` to `pid`.
pub fn send(pid: i32, sig: i32) -> io::Result<()> {
    if let Ok(named) = Signal::try_from(sig) {
        return nix::sys::signal::kill(Pid::from_raw(pid), named).map_err(io::Error::from);
    }
    let rt = rustix::process::Signal::from_raw(sig)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a signal number"))?;
    let target = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid must be positive"))?;
    rustix::process::kill_process(target, rt).map_err(io::Error::from)
}

/// One arriving signal and who sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub signal: i32,
    pub sender: Sender,
}

impl Arrival {
    fn from_origin(origin: &Origin, me: i32) -> Arrival {
        Arrival {
            signal: origin.signal,
            sender: sender(
                origin.signal,
                &origin.cause,
                origin.process.map(|p| p.pid),
                me,
            ),
        }
    }

    /// What mcw does with it.
    pub fn disposition(&self) -> Disposition {
        disposition(self.signal, self.sender)
    }
}

/// Who sent `signal`, from its cause and sending pid. Only a SIGPIPE can be mcw's own: the
/// kernel reports a broken pipe as SI_USER "sent" by the writing process. Every other
/// kernel-sent signal comes from a terminal (or a limit) and is the user's.
fn sender(signal: i32, cause: &Cause, pid: Option<i32>, me: i32) -> Sender {
    let pipe = signal == Signal::SIGPIPE as i32;
    match cause {
        Cause::Kernel if pipe => Sender::Own,
        Cause::Kernel => Sender::Kernel,
        Cause::Sent(Sent::User | Sent::TKill) if pipe && pid == Some(me) => Sender::Own,
        _ => Sender::Process,
    }
}

/// Every signal mcw handles, on one stream.
pub struct Signals {
    stream: SignalsInfo<WithOrigin>,
    me: i32,
}

impl Signals {
    /// Start listening for `signals`. Must run before any child is spawned, so no SIGCHLD or
    /// forwarded signal is lost.
    pub fn listen(signals: &[i32]) -> io::Result<Signals> {
        Ok(Signals {
            stream: SignalsInfo::<WithOrigin>::new(signals)?,
            me: nix::unistd::getpid().as_raw(),
        })
    }

    /// The next signal (pending forever once the stream is closed).
    pub async fn next(&mut self) -> Arrival {
        match self.stream.next().await {
            Some(origin) => Arrival::from_origin(&origin, self.me),
            None => std::future::pending().await,
        }
    }
}

/// Clear the signal mask mcw inherited, so the child does not inherit blocked signals.
pub fn unblock_all() -> io::Result<()> {
    use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None).map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hup_and_chld_are_consumed_term_and_int_stop_and_the_rest_forward() {
        use Sender::{Kernel, Own, Process};
        let cases = [
            (Signal::SIGHUP as i32, Process, Disposition::Refresh),
            (Signal::SIGHUP as i32, Kernel, Disposition::HangUp),
            (Signal::SIGCHLD as i32, Kernel, Disposition::Reap),
            (Signal::SIGTERM as i32, Process, Disposition::Stop),
            (Signal::SIGINT as i32, Process, Disposition::Stop),
            (Signal::SIGINT as i32, Kernel, Disposition::Stop),
            (Signal::SIGUSR1 as i32, Process, Disposition::Forward),
            (Signal::SIGWINCH as i32, Kernel, Disposition::Forward),
            (Signal::SIGPIPE as i32, Process, Disposition::Forward),
            (Signal::SIGPIPE as i32, Own, Disposition::Drop),
            (*realtime().start() + 3, Process, Disposition::Forward),
        ];
        for (sig, from, want) in cases {
            assert_eq!(disposition(sig, from), want, "{} from {from:?}", name(sig));
        }
    }

    #[test]
    fn run_catches_every_catchable_signal_and_the_real_time_range() {
        let run = caught(Mode::Run);
        for s in FORBIDDEN {
            assert!(!run.contains(&(s as i32)), "{s}");
        }
        for s in [Signal::SIGUSR2, Signal::SIGWINCH, Signal::SIGPIPE] {
            assert!(run.contains(&(s as i32)), "{s}");
        }
        let rt = realtime();
        assert!(run.contains(rt.start()) && run.contains(rt.end()));
        assert_eq!(run.len(), 31 - FORBIDDEN.len() + rt.count());
        assert_eq!(caught(Mode::Watch).len(), 4);
    }

    #[test]
    fn names_come_from_nix_and_real_time_signals_count_from_sigrtmin() {
        assert_eq!(name(Signal::SIGTTIN as i32), "SIGTTIN");
        assert_eq!(name(*realtime().start() + 3), "SIGRTMIN+3");
        assert_eq!(name(0), "signal 0");
    }

    /// Regression: every kernel-sent signal counted as mcw's own, so a terminal's Ctrl-C
    /// (SI_KERNEL) was dropped. Only a SIGPIPE can be mcw's own.
    #[test]
    fn only_a_sigpipe_can_be_mcws_own_and_a_terminals_signals_are_the_users() {
        let me = 100;
        let pipe = Signal::SIGPIPE as i32;
        let int = Signal::SIGINT as i32;
        let user = Cause::Sent(Sent::User);
        assert_eq!(sender(pipe, &user, Some(me), me), Sender::Own);
        assert_eq!(sender(pipe, &Cause::Kernel, None, me), Sender::Own);
        assert_eq!(sender(pipe, &user, Some(7), me), Sender::Process);
        assert_eq!(
            sender(pipe, &Cause::Sent(Sent::Queue), Some(me), me),
            Sender::Process
        );
        assert_eq!(sender(int, &Cause::Kernel, None, me), Sender::Kernel);
        assert_eq!(sender(int, &user, Some(me), me), Sender::Process);
        let hup = Signal::SIGHUP as i32;
        assert_eq!(sender(hup, &Cause::Kernel, None, me), Sender::Kernel);
        assert_eq!(sender(hup, &user, Some(7), me), Sender::Process);
    }
}
