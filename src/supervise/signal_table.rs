//! The signal table: what mcw does with each signal, in `run` and in `watch`, written once.
//!
//! `mcw run --help` and `mcw watch --help` print it ([`help`]); the README (`run`) and
//! docs/behaviour.md (`watch`) hold its Markdown ([`markdown`]), which a test compares with
//! this table; and each row names a signal whose disposition a unit test checks against
//! [`disposition`](super::signals::disposition) and [`caught`](super::signals::caught), so the
//! words cannot drift from the code.

use nix::sys::signal::Signal;

use super::signals::{Disposition, Mode, Sender};

/// One row: the signals, what mcw does with them, and the case that proves it.
pub struct Row {
    /// As the table names them.
    pub signals: &'static str,
    /// What `mcw run` does.
    pub run: &'static str,
    /// What `mcw watch` does; `None`: the row is not in the watch table (the last row says
    /// what becomes of such signals there).
    pub watch: Option<&'static str>,
    /// A signal of the row as the code must see it.
    pub proof: Proof,
}

/// What the code must say of a signal of a row.
#[derive(Debug, Clone, Copy)]
pub enum Proof {
    /// Caught in `run`, from this sender, with this disposition; and in `watch` too when the
    /// watch table says it is caught there.
    Caught(Signal, Sender, Disposition),
    /// A real-time signal (SIGRTMIN+3 from a process): forwarded.
    RealTime,
    /// Not caught in `run` (nor in `watch`).
    NotCaught(Signal),
}

/// The table, in the order the documents show it.
pub const TABLE: [Row; 13] = [
    Row {
        signals: "SIGHUP from a process (`kill -HUP`, `systemctl reload mcw`)",
        run: "re-read the template, re-resolve every token and re-render now, writing the file again if it differs from the render on disk; lift every \"do not write these bytes again\" block; **not** forwarded (mcrouter has no handler and would die)",
        watch: Some(
            "re-read the template, re-resolve every token and re-render now, writing the file again if it differs from the render on disk",
        ),
        proof: Proof::Caught(Signal::SIGHUP, Sender::Process, Disposition::Refresh),
    },
    Row {
        signals: "SIGHUP of a closed terminal: the kernel's, or the shell's once mcw's terminal is gone (the window, tmux pane or ssh session was closed)",
        run: "stop, as for SIGTERM: mcrouter is sent **one SIGTERM** (a SIGHUP would kill it), and mcw exits with its status",
        watch: Some("exit 0 at once"),
        proof: Proof::Caught(Signal::SIGHUP, Sender::Kernel, Disposition::HangUp),
    },
    Row {
        signals: "SIGTERM, SIGINT (Ctrl-C at a terminal too)",
        run: "forward (once: Ctrl-C reaches mcw's job only); if mcrouter is still running after `--stop-timeout`, SIGKILL it. Before mcrouter has started, or while it waits to be restarted, exit 0 at once",
        watch: Some("exit 0 at once, even while a lookup is pending"),
        proof: Proof::Caught(Signal::SIGTERM, Sender::Process, Disposition::Stop),
    },
    Row {
        signals: "SIGUSR2",
        run: "restart mcrouter now, on the same port and config (SIGTERM, then start it again): no connection refused",
        watch: None,
        proof: Proof::Caught(Signal::SIGUSR2, Sender::Process, Disposition::Restart),
    },
    Row {
        signals: "SIGUSR1",
        run: "consumed and logged: mcrouter has no handler for it and would die",
        watch: None,
        proof: Proof::Caught(Signal::SIGUSR1, Sender::Process, Disposition::Ignore),
    },
    Row {
        signals: "SIGTSTP (Ctrl-Z)",
        run: "stop mcrouter, then mcw itself, so the shell sees the job stopped; the SIGCONT of `fg`/`bg` is forwarded and resumes mcrouter",
        watch: None,
        proof: Proof::Caught(Signal::SIGTSTP, Sender::Kernel, Disposition::Suspend),
    },
    Row {
        signals: "SIGTTIN, SIGTTOU",
        run: "not caught: their default stops mcw if it uses its terminal from the background (`stty tostop`); mcrouter never writes to the terminal",
        watch: None,
        proof: Proof::NotCaught(Signal::SIGTTOU),
    },
    Row {
        signals: "SIGCHLD",
        run: "reap every exited child, orphans included, whatever their process group; not forwarded",
        watch: Some(
            "reap every exited child: as a sidecar container's PID 1, orphans (of `kubectl exec` sessions, say) land on mcw",
        ),
        proof: Proof::Caught(Signal::SIGCHLD, Sender::Kernel, Disposition::Reap),
    },
    Row {
        signals: "SIGKILL, SIGSTOP",
        run: "cannot be caught",
        watch: Some("cannot be caught"),
        proof: Proof::NotCaught(Signal::SIGKILL),
    },
    Row {
        signals: "SIGILL, SIGFPE, SIGSEGV",
        run: "not caught: they mean a fault in mcw itself",
        watch: Some("not caught: they mean a fault in mcw itself"),
        proof: Proof::NotCaught(Signal::SIGSEGV),
    },
    Row {
        signals: "SIGPIPE raised by the kernel for mcw's own write (its stderr is a pipe whose reader is gone)",
        run: "dropped: the write fails with EPIPE, the log line is lost, mcw carries on; mcrouter is not signalled",
        watch: Some("ignored: the write fails with EPIPE, the log line is lost, mcw carries on"),
        proof: Proof::Caught(Signal::SIGPIPE, Sender::Own, Disposition::Drop),
    },
    Row {
        signals: "SIGPIPE sent by another process (`kill -PIPE`)",
        run: "forwarded, as tini does",
        watch: None,
        proof: Proof::Caught(Signal::SIGPIPE, Sender::Process, Disposition::Forward),
    },
    Row {
        signals: "every other signal 1–31 (SIGQUIT, SIGWINCH, SIGCONT, …) and every real-time signal SIGRTMIN..SIGRTMAX",
        run: "forwarded to mcrouter",
        watch: Some(
            "not caught: the default action, as for any program (SIGUSR1 and SIGUSR2 end mcw, Ctrl-Z stops it, a SIGPIPE is ignored)",
        ),
        proof: Proof::RealTime,
    },
];

fn rows(mode: Mode) -> impl Iterator<Item = (&'static str, &'static str)> {
    TABLE.iter().filter_map(move |row| match mode {
        Mode::Run => Some((row.signals, row.run)),
        Mode::Watch => row.watch.map(|what| (row.signals, what)),
    })
}

/// The table for `mode` in Markdown, as the README (`run`) and docs/behaviour.md (`watch`)
/// hold it.
pub fn markdown(mode: Mode) -> String {
    let mut out = String::from("| signal | what mcw does |\n|---|---|\n");
    for (signals, what) in rows(mode) {
        out.push_str(&format!("| {signals} | {what} |\n"));
    }
    out
}

/// The table for `mode` as `--help` prints it: each row's signals, then what mcw does,
/// indented and wrapped at 100 columns, without Markdown.
pub fn help(mode: Mode) -> String {
    let plain = |s: &str| s.replace("**", "").replace('`', "");
    let mut out = String::from("Signals:\n");
    for (signals, what) in rows(mode) {
        out.push_str(&wrap(&plain(signals), "  ", 100));
        out.push_str(&wrap(&plain(what), "      ", 100));
    }
    out
}

/// `text` in lines of at most `width` columns (words longer than that stand alone), each
/// starting with `indent`.
fn wrap(text: &str, indent: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::from(indent);
    for word in text.split_whitespace() {
        let fits = line.chars().count() + 1 + word.chars().count() <= width;
        if line.len() > indent.len() && !fits {
            out.push_str(&line);
            out.push('\n');
            line = String::from(indent);
        }
        if line.len() > indent.len() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::super::signals::{caught, disposition};
    use super::*;

    /// Each row says what the code does: its signal is caught (or not) in each mode and has
    /// the row's disposition.
    #[test]
    fn every_row_is_what_the_code_does() {
        let (run, watch) = (caught(Mode::Run), caught(Mode::Watch));
        for row in &TABLE {
            match row.proof {
                Proof::Caught(sig, sender, want) => {
                    let sig = sig as i32;
                    assert!(run.contains(&sig), "{}: not caught in run", row.signals);
                    assert_eq!(disposition(sig, sender), want, "{}", row.signals);
                    // In watch, the rows it shows are caught there, but for SIGPIPE (which
                    // Rust programs ignore) and those that say "not caught".
                    let says_caught = row.watch.is_some_and(|w| !w.starts_with("not caught"));
                    if says_caught && sig != Signal::SIGPIPE as i32 {
                        assert!(watch.contains(&sig), "{}: not caught in watch", row.signals);
                    }
                    if row.watch.is_none() {
                        assert!(!watch.contains(&sig), "{}: caught in watch", row.signals);
                    }
                }
                Proof::RealTime => {
                    let rt = *run.iter().max().unwrap();
                    assert_eq!(disposition(rt, Sender::Process), Disposition::Forward);
                    assert!(!watch.contains(&rt));
                }
                Proof::NotCaught(sig) => {
                    assert!(!run.contains(&(sig as i32)), "{}", row.signals);
                    assert!(!watch.contains(&(sig as i32)), "{}", row.signals);
                }
            }
        }
    }

    #[test]
    fn help_is_wrapped_plain_text() {
        let text = help(Mode::Run);
        assert!(text.starts_with("Signals:\n  SIGHUP from a process (kill -HUP"));
        assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
        assert!(!text.contains('`') && !text.contains("**"), "{text}");
        let watch = help(Mode::Watch);
        assert!(
            watch.contains("\n  SIGCHLD\n") && !watch.contains("\n  SIGUSR2\n"),
            "{watch}"
        );
    }
}
