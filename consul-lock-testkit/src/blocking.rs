//! Blocking queries: the query options of a read (`?index`, `?wait`, `?stale`,
//! `?consistent`) and the wait for the raft index to pass `?index`.

use std::time::{Duration, Instant};

use crate::go;
use crate::request::Req;
use crate::resp::Resp;
use crate::shared::Shared;
use crate::store::Store;

/// `?index`, `?wait`, `?stale`, `?consistent`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QueryOpts {
    pub min_index: u64,
    pub wait: Duration,
    pub stale: bool,
}

const DEFAULT_WAIT: Duration = Duration::from_secs(300);
const MAX_WAIT: Duration = Duration::from_secs(600);

pub(crate) fn query_opts(req: &Req) -> Result<QueryOpts, Resp> {
    // Consul checks the consistency flags before `wait` and `index`.
    let stale = req.has("stale");
    if stale && req.has("consistent") {
        return Err(Resp::text(
            400,
            "Cannot specify ?stale with ?consistent, conflicting semantics.",
        ));
    }
    let mut wait = Duration::ZERO;
    if let Some(w) = req.get("wait").filter(|w| !w.is_empty()) {
        let ns = go::duration::parse(w).map_err(|_| Resp::text(400, "Invalid wait time"))?;
        wait = Duration::from_nanos(u64::try_from(ns).unwrap_or(0));
    }
    let mut min_index = 0;
    if let Some(i) = req.get("index").filter(|i| !i.is_empty()) {
        min_index = i
            .parse::<u64>()
            .map_err(|_| Resp::text(400, "Invalid index"))?;
    }
    if wait > MAX_WAIT {
        wait = MAX_WAIT;
    } else if wait.is_zero() {
        wait = DEFAULT_WAIT;
    }
    Ok(QueryOpts {
        min_index,
        wait,
        stale,
    })
}

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
