//! Blocking queries: the wait for the raft index to pass `?index` (the query options are
//! read in `req`).

use std::time::{Duration, Instant};

use crate::req::QueryOpts;
use crate::shared::Shared;
use crate::store::Store;

/// Runs a read, blocking while its index is not above `?index` (up to `?wait` plus
/// Consul's jitter of up to wait/16). Wakes on every write, never polls.
pub(crate) async fn query<T>(
    shared: &Shared,
    qo: &QueryOpts,
    f: impl Fn(&Store) -> (u64, T),
) -> (u64, T) {
    let mut rx = shared.index_tx.subscribe();
    let jitter_ns = (qo.wait.as_nanos() / 16) as u64;
    let jitter = Duration::from_nanos(if jitter_ns > 0 {
        fastrand::u64(0..jitter_ns)
    } else {
        0
    });
    let deadline = Instant::now() + qo.wait + jitter;
    loop {
        rx.borrow_and_update();
        let (idx, out) = {
            let st = shared.store();
            f(&st)
        };
        if qo.min_index == 0 || idx > qo.min_index || Instant::now() >= deadline {
            return (idx, out);
        }
        tokio::select! {
            r = rx.changed() => { if r.is_err() { return (idx, out); } }
            _ = tokio::time::sleep_until(deadline.into()) => {}
        }
    }
}
