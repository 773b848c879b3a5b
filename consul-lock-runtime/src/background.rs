//! The background worker: one small tokio runtime on its own thread that performs every HTTP
//! call, session renewal and release.
//!
//! Running all I/O there makes the library independent of the caller's executor: sync code
//! (inside or outside tokio), async code on any runtime flavour, and `Drop` (which must not
//! block) all hand work to the same place, and the connection pool never outlives the runtime
//! that drives it. Releases handed over by `Drop` are counted so that
//! [`flush_releases`](crate::flush_releases) can wait for them.

use std::future::Future;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread::ThreadId;

use tokio::runtime::Handle;
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

/// Runs `fut` on the worker and waits for it asynchronously, from any executor.
///
/// Dropping the returned future cancels `fut`: the worker drops it at its next await point,
/// and its own drop guards (a pending session, a guard) clean up. From the moment of the
/// cancellation until the worker has dropped `fut`, the cancellation counts as a pending
/// cleanup, so [`settle`] waits for it.
pub(crate) async fn run<T, F>(fut: F) -> Result<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
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
    PENDING.fetch_add(1, Ordering::SeqCst);
    worker.handle.spawn(async move {
        fut.await;
        finish_one();
    });
}

/// Spawns a long-running task (a renewal or monitor loop) on the worker.
pub(crate) fn spawn_task<F>(fut: F) -> Result<tokio::task::AbortHandle>
where
    F: Future<Output = ()> + Send + 'static,
{
    Ok(worker()?.handle.spawn(fut).abort_handle())
}

/// Waits until no cleanup handed over by `Drop` or a cancelled acquire is in flight.
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

/// Runs `fut` on the worker as a counted cleanup that finishes even if the caller stops
/// waiting (a release must not be cut off half-way), and waits for its result.
pub(crate) async fn run_to_completion<T, F>(fut: F) -> Result<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    worker()?;
    let (tx, rx) = oneshot::channel();
    spawn_cleanup(async move {
        let _ = tx.send(fut.await);
    });
    rx.await.map_err(|_| lost_worker())
}
