//! What the loop's `select!` waits on besides its own fields: the first template that may have
//! changed, the next item of a channel it may not have, the watchdog's next tick. Each is
//! cancellation-safe, and pending for ever when there is nothing to wait for.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use tokio::sync::mpsc;

use super::Served;

/// The index of the first pair whose template may have changed. Cancellation-safe, as each
/// watcher's `changed` is.
pub(super) async fn first_change(pairs: &mut [Served]) -> usize {
    let mut waits: Vec<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = pairs
        .iter_mut()
        .map(|p| Box::pin(p.watcher.changed()) as Pin<Box<dyn Future<Output = ()> + Send>>)
        .collect();
    std::future::poll_fn(|cx| {
        let ready = waits
            .iter_mut()
            .position(|w| w.as_mut().poll(cx).is_ready());
        ready.map_or(Poll::Pending, Poll::Ready)
    })
    .await
}

/// What a channel the loop may have (the HTTP endpoint's questions, what mcrouter's log tells)
/// brings next; never, without one, or once it is closed.
pub(super) async fn next<T, R: Receive<T>>(rx: &mut Option<R>) -> Option<T> {
    let Some(rx) = rx else {
        return std::future::pending().await;
    };
    match rx.receive().await {
        Some(item) => Some(item),
        None => std::future::pending().await,
    }
}

/// tokio's bounded and unbounded receivers alike.
pub(super) trait Receive<T> {
    async fn receive(&mut self) -> Option<T>;
}

impl<T> Receive<T> for mpsc::Receiver<T> {
    async fn receive(&mut self) -> Option<T> {
        self.recv().await
    }
}

impl<T> Receive<T> for mpsc::UnboundedReceiver<T> {
    async fn receive(&mut self) -> Option<T> {
        self.recv().await
    }
}

/// The next tick of the watchdog's interval; never, without one.
pub(super) async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}
