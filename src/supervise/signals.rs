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
    /// SIGUSR1: mcrouter has no handler for it and would die; mcw has no use for it. Logged.
    Ignore,
    /// SIGUSR2: restart mcrouter now (on the port mcw holds, no connection refused).
    Restart,
    /// SIGTSTP (Ctrl-Z at a terminal): stop mcrouter, then stop mcw itself, so the shell sees
    /// the job stopped; the SIGCONT that resumes mcw is forwarded and resumes mcrouter.
    Suspend,
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
    /// A process sent SIGHUP after mcw's controlling terminal hung up: the shell whose job
    /// mcw is passes the hang-up on (bash does, with kill(2)). The user closed the terminal.
    HungUpShell,
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

/// Signals mcw leaves at their default action: the terminal's job-control stops for a
/// process that reads or writes its terminal from the background. They stop mcw, as they
/// would any program (caught, the interrupted terminal write would be retried at once, for
/// ever); mcrouter, in its own process group, is never sent them for mcw's terminal use.
const JOB_CONTROL: [Signal; 2] = [Signal::SIGTTIN, Signal::SIGTTOU];

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
        (Ok(Signal::SIGHUP), Sender::Kernel | Sender::HungUpShell) => Disposition::HangUp,
        (Ok(Signal::SIGHUP), _) => Disposition::Refresh,
        (Ok(Signal::SIGCHLD), _) => Disposition::Reap,
        (Ok(Signal::SIGTERM | Signal::SIGINT), _) => Disposition::Stop,
        (Ok(Signal::SIGUSR1), _) => Disposition::Ignore,
        (Ok(Signal::SIGUSR2), _) => Disposition::Restart,
        (Ok(Signal::SIGTSTP), _) => Disposition::Suspend,
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
            .filter(|s| !FORBIDDEN.contains(s) && !JOB_CONTROL.contains(s))
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
    /// mcw had a controlling terminal when it started.
    had_terminal: bool,
}

impl Signals {
    /// Start listening for `signals`. Must run before any child is spawned, so no SIGCHLD or
    /// forwarded signal is lost.
    pub fn listen(signals: &[i32]) -> io::Result<Signals> {
        Ok(Signals {
            stream: SignalsInfo::<WithOrigin>::new(signals)?,
            me: nix::unistd::getpid().as_raw(),
            had_terminal: has_terminal(),
        })
    }

    /// The next signal (pending forever once the stream is closed).
    pub async fn next(&mut self) -> Arrival {
        let Some(origin) = self.stream.next().await else {
            return std::future::pending().await;
        };
        let mut arrival = Arrival::from_origin(&origin, self.me);
        // When a terminal hangs up, the kernel first takes it from every process of its
        // session and signals the shell; the shell then sends SIGHUP to its jobs. A SIGHUP
        // from a process that finds mcw's terminal gone is that hang-up, not `kill -HUP`.
        if arrival.signal == Signal::SIGHUP as i32
            && arrival.sender == Sender::Process
            && self.had_terminal
            && !has_terminal()
        {
            arrival.sender = Sender::HungUpShell;
        }
        arrival
    }
}

/// Whether mcw has a controlling terminal (`/dev/tty` opens; after a hang-up it does not).
fn has_terminal() -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOCTTY | nix::libc::O_NONBLOCK)
        .open("/dev/tty")
        .is_ok()
}

/// Stop mcw itself (SIGSTOP), as a job stopped at its terminal: it goes on when continued.
pub fn stop_self() -> io::Result<()> {
    nix::sys::signal::raise(Signal::SIGSTOP).map_err(io::Error::from)
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
        use Sender::{HungUpShell, Kernel, Own, Process};
        let cases = [
            (Signal::SIGHUP as i32, Process, Disposition::Refresh),
            (Signal::SIGHUP as i32, Kernel, Disposition::HangUp),
            (Signal::SIGCHLD as i32, Kernel, Disposition::Reap),
            (Signal::SIGTERM as i32, Process, Disposition::Stop),
            (Signal::SIGINT as i32, Process, Disposition::Stop),
            (Signal::SIGINT as i32, Kernel, Disposition::Stop),
            (Signal::SIGUSR1 as i32, Process, Disposition::Ignore),
            (Signal::SIGUSR2 as i32, Process, Disposition::Restart),
            (Signal::SIGTSTP as i32, Kernel, Disposition::Suspend),
            (Signal::SIGHUP as i32, HungUpShell, Disposition::HangUp),
            (Signal::SIGQUIT as i32, Kernel, Disposition::Forward),
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
        for s in JOB_CONTROL {
            assert!(!run.contains(&(s as i32)), "{s}");
        }
        for s in [
            Signal::SIGUSR2,
            Signal::SIGWINCH,
            Signal::SIGPIPE,
            Signal::SIGTSTP,
        ] {
            assert!(run.contains(&(s as i32)), "{s}");
        }
        let rt = realtime();
        assert!(run.contains(rt.start()) && run.contains(rt.end()));
        assert_eq!(
            run.len(),
            31 - FORBIDDEN.len() - JOB_CONTROL.len() + rt.count()
        );
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
