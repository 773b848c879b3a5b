//! The background worker: one small current-thread tokio runtime on its own thread, started
//! on first use and never stopped, so that work handed to it survives the runtime it came
//! from.

use std::future::Future;
use std::sync::{mpsc, OnceLock};
use std::thread::ThreadId;

use tokio::runtime::{Handle, Id};

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

/// Spawns a long-running task (a renewal, a key watch, an expiry timer) on the worker.
pub(crate) fn spawn_task<F>(fut: F) -> Result<tokio::task::AbortHandle>
where
    F: Future<Output = ()> + Send + 'static,
{
    Ok(spawn(fut)?.abort_handle())
}

/// Spawns `fut` on the worker.
pub(crate) fn spawn<F>(fut: F) -> Result<tokio::task::JoinHandle<()>>
where
    F: Future<Output = ()> + Send + 'static,
{
    Ok(worker()?.handle.spawn(fut))
}

/// Runs `fut` on the worker and blocks the calling thread until it is done. Safe to call from
/// a thread that is inside a tokio runtime (it only blocks that thread).
pub(crate) fn block_on<T, F>(fut: F) -> Result<T>
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

/// The error when the worker stops before answering.
pub(crate) fn lost_worker() -> Error {
    Error::Runtime {
        reason: "the worker stopped before answering (the process may be shutting down)".into(),
    }
}
