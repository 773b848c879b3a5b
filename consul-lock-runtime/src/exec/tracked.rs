//! Counted background work: cleanups handed to the worker (a release from `Drop`, the
//! destroy of a session left by a cancelled acquire) count as pending until they are done, so
//! that [`flush_releases`](crate::flush_releases) can wait for them; and [`MustFinish`], a
//! future whose rest goes on in the background if it is dropped half-way.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tokio::runtime::Handle;
use tokio::sync::Notify;

use super::worker;

static PENDING: AtomicUsize = AtomicUsize::new(0);
static SETTLED: Notify = Notify::const_new();

/// Counts one unit of pending work; [`end_one`] ends it. For work whose end is seen on
/// another thread than its start (a cancellation handed to the worker); else use [`Pending`].
pub(crate) fn begin_one() {
    PENDING.fetch_add(1, Ordering::SeqCst);
}

/// Ends one unit of pending work counted by [`begin_one`].
pub(crate) fn end_one() {
    if PENDING.fetch_sub(1, Ordering::SeqCst) == 1 {
        SETTLED.notify_waiters();
    }
}

/// One unit of pending work: counted from creation until dropped (the work finished, or its
/// task was dropped with its runtime), so that [`settle`] can never wait forever.
struct Pending(());

impl Pending {
    fn new() -> Pending {
        begin_one();
        Pending(())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        end_one();
    }
}

/// Hands a cleanup to the worker without blocking. It is counted until it finishes.
pub(crate) fn spawn_cleanup<F>(fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let pending = Pending::new();
    let spawned = worker::spawn(async move {
        fut.await;
        drop(pending);
    });
    if spawned.is_err() {
        tracing::warn!(
            "consul-lock worker unavailable: a release was not sent; the TTL will free the key"
        );
    }
}

/// Waits until no counted work is in flight.
pub(crate) async fn settle() {
    loop {
        let notified = SETTLED.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if PENDING.load(Ordering::SeqCst) == 0 {
            return;
        }
        notified.await;
    }
}

/// How many cleanups are in flight.
pub(crate) fn pending() -> usize {
    PENDING.load(Ordering::SeqCst)
}

/// A future that finishes even if it is dropped half-way: polled in place (no task, no thread
/// hop), and if dropped before it completes, the rest of it is spawned, counted, on the runtime
/// it was polled on, which runs it to the end and drops its output there (so an output's drop
/// guard, such as a pending session's, still acts). Used for session creates and releases.
///
/// The rest stays on that runtime because what it is waiting for lives there: the request's
/// timer and the connection (each runtime has its own pool, `pools.rs`). Moved to the worker,
/// it failed once that runtime shut down: its timer panicked there ("A Tokio 1.x context was
/// found, but it is being shutdown"), seen in tests whose runtime ended while an acquire's
/// session create was still on its way. If the runtime shuts down first, the rest is dropped
/// with it (its own drop guards then hand their cleanup to the worker, which starts it
/// afresh). Not polled on any runtime yet: the rest goes to the worker.
pub(crate) struct MustFinish<T: Send + 'static> {
    fut: Option<BoxFuture<'static, T>>,
    /// The runtime it was polled on.
    origin: Option<Handle>,
}

impl<T: Send + 'static> MustFinish<T> {
    pub(crate) fn new(fut: impl Future<Output = T> + Send + 'static) -> Self {
        MustFinish {
            fut: Some(Box::pin(fut)),
            origin: None,
        }
    }
}

impl<T: Send + 'static> Future for MustFinish<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if self.origin.is_none() {
            self.origin = Handle::try_current().ok();
        }
        let Some(fut) = self.fut.as_mut() else {
            // Polled after completion: a bug in the caller, never in this crate.
            return Poll::Pending;
        };
        let out = fut.as_mut().poll(cx);
        if out.is_ready() {
            self.fut = None;
        }
        out
    }
}

impl<T: Send + 'static> Drop for MustFinish<T> {
    fn drop(&mut self) {
        let Some(fut) = self.fut.take() else {
            return;
        };
        let rest = async move {
            drop(fut.await);
        };
        match self.origin.take() {
            Some(origin) => {
                let pending = Pending::new();
                origin.spawn(async move {
                    rest.await;
                    drop(pending);
                });
            }
            None => spawn_cleanup(rest),
        }
    }
}
