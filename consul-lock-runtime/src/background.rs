//! Where the library's I/O runs: on the caller's tokio runtime when there is one, and
//! otherwise on the background worker, one small tokio runtime on its own thread.
//!
//! - Async calls made inside a tokio runtime run right there (no thread hop), with a
//!   connection pool of that runtime's own (see [`Client`](crate::Client)).
//! - Blocking calls, async calls from other executors, `Drop` (which must not block), session
//!   renewals and key watches run on the worker, which never stops, so a release handed over
//!   by `Drop` survives the runtime it was dropped in.
//! - Work that must finish even if its caller goes away (creating a session, a release) runs
//!   in place through [`MustFinish`]; if it is dropped half-way, the rest moves to the worker.
//!   Work handed to the worker is counted until it is done, so that
//!   [`flush_releases`](crate::flush_releases) can wait for it.

use std::future::Future;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread::ThreadId;

use tokio::runtime::{Handle, Id};
use tokio::sync::{oneshot, Notify};

use crate::{Error, Result};

struct Worker {
    handle: Handle,
    thread: ThreadId,
}

static WORKER: OnceLock<std::result::Result<Worker, String>> = OnceLock::new();

fn start() -> std::result::Result<Worker, String> {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("consul-lock-worker".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(format!("cannot build the tokio runtime: {e}")));
                    return;
                }
            };
            let worker = Worker {
                handle: rt.handle().clone(),
                thread: std::thread::current().id(),
            };
            if tx.send(Ok(worker)).is_ok() {
                rt.block_on(std::future::pending::<()>());
            }
        });
    if let Err(e) = spawned {
        return Err(format!("cannot start the worker thread: {e}"));
    }
    rx.recv()
        .unwrap_or_else(|_| Err("the worker thread exited while starting".to_owned()))
}

fn worker() -> Result<&'static Worker> {
    WORKER
        .get_or_init(start)
        .as_ref()
        .map_err(|reason| Error::Runtime {
            reason: reason.clone(),
        })
}

/// The caller's tokio runtime, unless there is none or it is the worker's.
pub(crate) fn caller_runtime() -> Option<Handle> {
    let handle = Handle::try_current().ok()?;
    match WORKER.get() {
        Some(Ok(w)) if w.handle.id() == handle.id() => None,
        _ => Some(handle),
    }
}

/// The id of the runtime the current code runs on, if it is not the worker's.
pub(crate) fn caller_runtime_id() -> Option<Id> {
    caller_runtime().map(|h| h.id())
}

/// Runs `fut` where async work runs: inline on the caller's tokio runtime, or on the worker
/// when the caller uses another executor.
///
/// Dropping the returned future cancels `fut` (inline: at once; on the worker: at its next
/// await point). Its own drop guards (a pending session, a guard) then clean up; from the
/// moment of a cancellation on the worker until the worker has dropped `fut`, the cancellation
/// counts as pending, so [`settle`] waits for it.
pub(crate) async fn run<T, F>(fut: F) -> Result<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    if caller_runtime().is_some() {
        return Ok(fut.await);
    }
    let worker = worker()?;
    let (tx, rx) = oneshot::channel();
    let state = Arc::new(AtomicU8::new(RUNNING));
    let caller = CallerSide {
        state: state.clone(),
    };
    worker.handle.spawn(forward(fut, tx, state));
    let result = rx.await.map_err(|_| lost_worker());
    caller.state.store(DONE, Ordering::SeqCst);
    drop(caller);
    result
}

const RUNNING: u8 = 0;
const DONE: u8 = 1;
const CANCELLED: u8 = 2;

/// Marks a cancellation (the caller's future dropped before the worker finished) as a
/// pending cleanup at once.
struct CallerSide {
    state: Arc<AtomicU8>,
}

impl Drop for CallerSide {
    fn drop(&mut self) {
        if self
            .state
            .compare_exchange(RUNNING, CANCELLED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            PENDING.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Runs `fut` on the worker and blocks the calling thread until it is done. Safe to call from
/// a thread that is inside a tokio runtime (it only blocks that thread).
pub(crate) fn run_blocking<T, F>(fut: F) -> Result<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let worker = worker()?;
    if std::thread::current().id() == worker.thread {
        return Err(Error::Runtime {
            reason: "a blocking call was made on the worker thread itself, which would deadlock"
                .into(),
        });
    }
    let (tx, rx) = mpsc::sync_channel(1);
    worker.handle.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv().map_err(|_| lost_worker())
}

async fn forward<T, F: Future<Output = T>>(
    fut: F,
    mut tx: oneshot::Sender<T>,
    state: Arc<AtomicU8>,
) {
    tokio::select! {
        biased;
        () = tx.closed() => {}
        value = fut => {
            // If the caller went away just now, `value` is dropped here, and its drop
            // guards (a lock guard, a pending session) clean up.
            if state.compare_exchange(RUNNING, DONE, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                let _ = tx.send(value);
                return;
            }
        }
    }
    // Cancelled: `fut` has been dropped (its cleanups are counted on their own).
    if state.swap(DONE, Ordering::SeqCst) == CANCELLED {
        finish_one();
    }
}

fn finish_one() {
    if PENDING.fetch_sub(1, Ordering::SeqCst) == 1 {
        SETTLED.notify_waiters();
    }
}

fn lost_worker() -> Error {
    Error::Runtime {
        reason: "the worker stopped before answering (the process may be shutting down)".into(),
    }
}

static PENDING: AtomicUsize = AtomicUsize::new(0);
static SETTLED: Notify = Notify::const_new();

/// One unit of pending work: counted from creation until dropped (the work finished, or its
/// task was dropped with its runtime), so that [`settle`] can never wait forever.
struct Pending;

impl Pending {
    fn new() -> Pending {
        PENDING.fetch_add(1, Ordering::SeqCst);
        Pending
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        finish_one();
    }
}

/// Hands a cleanup (a release from `Drop`, a session destroy after a cancelled acquire) to the
/// worker without blocking. It is counted until it finishes.
pub(crate) fn spawn_cleanup<F>(fut: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let Ok(worker) = worker() else {
        tracing::warn!(
            "consul-lock worker unavailable: a release was not sent; the TTL will free the key"
        );
        return;
    };
    let pending = Pending::new();
    worker.handle.spawn(async move {
        fut.await;
        drop(pending);
    });
}

/// Spawns a long-running task (a renewal or monitor loop) on the worker.
pub(crate) fn spawn_task<F>(fut: F) -> Result<tokio::task::AbortHandle>
where
    F: Future<Output = ()> + Send + 'static,
{
    Ok(worker()?.handle.spawn(fut).abort_handle())
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

/// Runs `fut` to completion even if the caller stops waiting (a release must not be cut off
/// half-way), and waits for its result: in place on a tokio runtime, on the worker otherwise.
pub(crate) async fn run_to_completion<T, F>(fut: F) -> Result<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    if caller_runtime().is_some() {
        return Ok(MustFinish::new(fut).await);
    }
    let (tx, rx) = oneshot::channel();
    spawn_cleanup(async move {
        let _ = tx.send(fut.await);
    });
    rx.await.map_err(|_| lost_worker())
}

/// A future that finishes even if it is dropped half-way: polled in place (no task, no thread
/// hop), and if dropped before it completes, the rest of it is handed to the worker, which
/// runs it to the end and drops its output there (so an output's drop guard, such as a
/// pending session's, still acts). Used for session creates and releases.
pub(crate) struct MustFinish<T: Send + 'static> {
    fut: Option<futures::future::BoxFuture<'static, T>>,
}

impl<T: Send + 'static> MustFinish<T> {
    pub(crate) fn new(fut: impl Future<Output = T> + Send + 'static) -> Self {
        MustFinish {
            fut: Some(Box::pin(fut)),
        }
    }
}

impl<T: Send + 'static> Future for MustFinish<T> {
    type Output = T;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<T> {
        let Some(fut) = self.fut.as_mut() else {
            // Polled after completion: a bug in the caller, never in this crate.
            return std::task::Poll::Pending;
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
        if let Some(fut) = self.fut.take() {
            spawn_cleanup(async move {
                drop(fut.await);
            });
        }
    }
}
