//! What mcw tells its service manager (systemd's `Type=notify`): `READY=1` once mcrouter serves
//! mcw's config (in `watch`, once every config is written), `RELOADING=1` … `READY=1` around a
//! SIGHUP's re-render, `STATUS=` in a few words when it changes, `STOPPING=1`, and `WATCHDOG=1`
//! from the event loop itself when `WatchdogSec=` is set, so a wedged loop is noticed.
//!
//! Owns when each message is due; the protocol is the sd-notify crate's. Without
//! `NOTIFY_SOCKET` (not under systemd) nothing is sent and nothing is computed.

use std::time::Duration;

use sd_notify::NotifyState;

use crate::supervise::signals::Disposition;

pub(super) struct Notifier {
    /// `NOTIFY_SOCKET` is set.
    on: bool,
    /// `READY=1` was sent for the first time.
    ready: bool,
    /// `RELOADING=1` was sent, and its `READY=1` not yet.
    reloading: bool,
    /// The last `STATUS=` sent.
    status: String,
    /// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, when it is meant for mcw.
    pub(super) watchdog: Option<Duration>,
}

impl Notifier {
    pub(super) fn from_env() -> Notifier {
        let on = std::env::var_os("NOTIFY_SOCKET").is_some();
        Notifier {
            on,
            ready: false,
            reloading: false,
            status: String::new(),
            watchdog: on
                .then(sd_notify::watchdog_enabled)
                .flatten()
                .map(|d| d / 2),
        }
    }

    /// Whether anything is listening (so the caller need not compute what to say).
    pub(super) fn on(&self) -> bool {
        self.on
    }

    /// A signal arrived: a SIGHUP's re-render is a reload, a stop is a stop.
    pub(super) fn signal(&mut self, disposition: Disposition) {
        match disposition {
            Disposition::Refresh if self.ready && !self.reloading => {
                self.reloading = true;
                let mut states = vec![NotifyState::Reloading];
                states.extend(NotifyState::monotonic_usec_now().ok());
                self.send(&states);
            }
            Disposition::Stop | Disposition::HangUp => self.send(&[NotifyState::Stopping]),
            _ => {}
        }
    }

    /// After each step of the loop: `serving` (ready, as `/readyz` would say without asking
    /// mcrouter), `settled` (nothing a reload started is still under way), and the state in a
    /// few words.
    pub(super) fn update(&mut self, serving: bool, settled: bool, status: String) {
        if !self.on {
            return;
        }
        let mut states = Vec::new();
        if status != self.status {
            self.status = status;
            states.push(NotifyState::Status(&self.status));
        }
        if serving && !self.ready {
            self.ready = true;
            states.push(NotifyState::Ready);
        } else if self.reloading && settled {
            self.reloading = false;
            states.push(NotifyState::Ready);
        }
        if !states.is_empty() {
            send(self.on, &states);
        }
    }

    /// The loop is alive.
    pub(super) fn ping(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    fn send(&self, states: &[NotifyState]) {
        send(self.on, states);
    }
}

fn send(on: bool, states: &[NotifyState]) {
    if !on {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(reason = %e, "cannot notify the service manager");
    }
}
