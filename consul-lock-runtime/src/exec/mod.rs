//! Where the library's code runs: on the caller's tokio runtime when there is one, and
//! otherwise on the background worker, one small tokio runtime on its own thread.
//!
//! - Async calls made inside a tokio runtime run right there (no thread hop), with a
//!   connection pool of that runtime's own ([`pools`]).
//! - Blocking calls, async calls from other executors, `Drop` (which must not block), session
//!   renewals and key watches run on the [`worker`], which never stops, so a release handed
//!   over by `Drop` survives the runtime it was dropped in.
//! - Work that must finish even if its caller goes away (creating a session, a release) runs
//!   in place through [`MustFinish`]; if it is dropped half-way, the rest moves to the worker.
//!   Work handed to the worker is counted until it is done ([`tracked`]).
//!
//! Only the public layer (`Lock`, `LockGuard`, the KV and session helpers) decides where code
//! runs; the protocol sees execution only through [`Background`], which [`Exec`] implements.

pub(crate) mod local;
pub(crate) mod pools;
pub(crate) mod tracked;
pub(crate) mod worker;

use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::protocol::Background;
use crate::Result;
pub(crate) use tracked::{pending, settle, spawn_cleanup, MustFinish};
pub(crate) use worker::spawn_task;

/// Runs an operation where it should run: in place on the caller's tokio runtime, or on the
/// worker when the caller uses another executor. Every public async entry point goes through
/// here.
///
/// Dropping the returned future cancels `work` (in place: at once; on the worker: at its next
/// await point). Its own drop guards (a pending session, a guard) then clean up; from the
/// moment of a cancellation on the worker until the worker has dropped `work`, the
/// cancellation counts as pending, so [`settle`] waits for it.
pub(crate) async fn run<T, F>(work: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    if worker::caller_runtime().is_some() {
        return work.await;
    }
    let (tx, rx) = oneshot::channel();
    let state = Arc::new(AtomicU8::new(RUNNING));
    let caller = CallerSide {
        state: state.clone(),
    };
    worker::spawn(forward(work, tx, state))?;
    let result = rx.await.map_err(|_| worker::lost_worker());
    caller.state.store(DONE, Ordering::SeqCst);
    drop(caller);
    result?
}

/// Runs an operation and blocks the calling thread until it is done: the blocking entry
/// points, safe on any thread. Outside a tokio runtime it runs on the calling thread, on a
/// runtime of that thread's own ([`local`]: no thread hop); inside one (where blocking the
/// runtime's own driver would deadlock) it runs on the worker.
pub(crate) fn run_blocking<T, F>(work: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    // Boxed once: the acquisition's future is large, and it is moved several times on its
    // way to being polled (a copy of a few kilobytes each, otherwise).
    let mut work = Some(Box::pin(work));
    if Handle::try_current().is_err() {
        // Takes `work` only once polled, so that a busy thread runtime leaves it here.
        let on_this_thread = local::try_block_on(async {
            match work.take() {
                Some(w) => Some(w.await),
                None => None,
            }
        });
        match on_this_thread {
            Some(Ok(Some(result))) => return result,
            Some(Err(e)) => return Err(e),
            Some(Ok(None)) | None => {}
        }
    }
    match work {
        Some(work) => worker::block_on(work)?,
        None => Err(worker::lost_worker()),
    }
}

/// Runs `work` to completion even if the caller stops waiting (a release must not be cut off
/// half-way), and waits for its result: in place on a tokio runtime, on the worker otherwise.
pub(crate) async fn run_to_completion<T, F>(work: F) -> Result<T>
where
    F: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    if worker::caller_runtime().is_some() {
        return MustFinish::new(work).await;
    }
    let (tx, rx) = oneshot::channel();
    spawn_cleanup(async move {
        let _ = tx.send(work.await);
    });
    rx.await.map_err(|_| worker::lost_worker())?
}

/// The protocol's view of execution, as this module provides it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Exec;

impl Background for Exec {
    fn finish<T: Send + 'static>(
        self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> impl Future<Output = T> + Send + 'static {
        MustFinish::new(work)
    }

    fn detach(self, work: impl Future<Output = ()> + Send + 'static) {
        spawn_cleanup(work);
    }

    fn spawn(self, work: impl Future<Output = ()> + Send + 'static) {
        // The worker thread could not start: the work is dropped (a shared session then
        // runs out, and its locks' `is_held()` with it).
        let _ = spawn_task(work);
    }
}

/// `run`'s hand-over between the caller and the worker: running, answered, or cancelled by
/// the caller (then counted as pending until the worker has dropped the work).
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
            // Ended by `forward` once the worker has dropped the work.
            tracked::begin_one();
        }
    }
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
        tracked::end_one();
    }
}
