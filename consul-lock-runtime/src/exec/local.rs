//! The blocking API's fast path: outside any tokio runtime, a blocking call runs on the
//! calling thread, on a current-thread runtime of that thread's own (with its own connection
//! pool, through [`pools`](super::pools)), instead of hopping to the worker and back.

use std::cell::RefCell;
use std::future::Future;

use tokio::runtime::Runtime;

use crate::{Error, Result};

thread_local! {
    /// This thread's runtime, built on its first blocking call; it (and its connections) end
    /// with the thread.
    static LOCAL: RefCell<Option<Runtime>> = const { RefCell::new(None) };
}

/// Runs `fut` to its end on this thread's runtime. `None` (and `fut` untouched) when that
/// runtime is busy already (a blocking call made from inside one, which would deadlock): the
/// caller then uses the worker.
pub(crate) fn try_block_on<T, F: Future<Output = T>>(fut: F) -> Option<Result<T>> {
    LOCAL
        .try_with(|cell| {
            let mut slot = cell.try_borrow_mut().ok()?;
            if slot.is_none() {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => *slot = Some(rt),
                    Err(e) => {
                        return Some(Err(Error::Runtime {
                            reason: format!("cannot start this thread's tokio runtime: {e}"),
                        }))
                    }
                }
            }
            let rt = slot.as_ref()?;
            Some(Ok(rt.block_on(fut)))
        })
        .ok()
        .flatten()
}
