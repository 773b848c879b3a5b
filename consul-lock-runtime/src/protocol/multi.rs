//! Locking several keys at once: one session, one `/v1/txn` with a `lock` per key, so that
//! Consul writes all of them or none. Two callers locking the same keys in opposite order can
//! never deadlock, as neither ever holds a part of the set. While a key is held by another
//! session the acquire waits for it with blocking queries (renewing its session), then tries
//! the whole set again, until the acquire deadline.

use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument as _;

use super::lease::{self, Lease};
use super::outcome::Outcome;
use super::pending::PendingSession;
use super::retry::{Backoff, Deadline, MIN_LEFT};
use super::round::{self, Miss, RoundSession};
use super::Background;
use crate::api::{Blocking, MultiAttempt};
use crate::{Blocker, Client, Result};

/// The most keys one lock may take: Consul 1.10 refuses transactions of more than 64
/// operations, and the lock transaction has exactly one operation per key.
pub const MAX_KEYS: usize = consul_lock_syntax::MAX_LOCK_KEYS;

/// Everything an acquisition of several keys needs, resolved and checked before any request.
pub(crate) struct MultiPlan {
    pub(crate) client: Client,
    /// The full keys, without duplicates, in the order given.
    pub(crate) keys: Vec<String>,
    /// The value of each key.
    pub(crate) values: Vec<Vec<u8>>,
    /// The keys as errors and logs name them.
    pub(crate) label: String,
    /// How long to wait for held keys; zero: one try.
    pub(crate) acquire_timeout: Duration,
    /// The session TTL (the lock timeout).
    pub(crate) ttl: Duration,
}

/// Keys just taken.
pub(crate) struct MultiAcquired {
    pub(crate) session_id: String,
    /// The `ModifyIndex` of each key's write, in the order of the keys.
    pub(crate) tokens: Vec<u64>,
    /// The send time of the session's create or last renew: the lease counts from then.
    pub(crate) renewed: Instant,
}

/// How errors and logs name a set of keys: `a, b, c`.
pub(crate) fn label(keys: &[String]) -> String {
    keys.join(", ")
}

/// Acquires every key of `plan` or none, within a `consul_lock.acquire_all` span.
pub(crate) async fn acquire_all(plan: &MultiPlan, bg: impl Background) -> Result<MultiAcquired> {
    let span = tracing::info_span!(
        "consul_lock.acquire_all",
        keys = %plan.label,
        waited_ms = tracing::field::Empty,
        attempts = tracing::field::Empty,
    );
    let result = acquire_loop(plan, bg).instrument(span.clone()).await;
    if let Err(e) = &result {
        span.in_scope(|| tracing::debug!(error = %e, "not acquired"));
    }
    result
}

async fn acquire_loop(plan: &MultiPlan, bg: impl Background) -> Result<MultiAcquired> {
    let client = &plan.client;
    let mut out = Outcome::new(&plan.label, Deadline::new(plan.acquire_timeout));
    let mut backoff = Backoff::new();
    let mut session: Option<PendingSession<_>> = None;
    loop {
        // 1. A session: the one kept from the last round (renewed at TTL/2), or a new one.
        let round = round::session(
            &mut session,
            bg,
            client,
            &plan.label,
            plan.ttl,
            &mut out,
            &mut backoff,
        );
        let Some(RoundSession {
            session: mut pending,
            ..
        }) = round.await?
        else {
            continue;
        };

        // 2. One transaction locking every key.
        let Some(timeout) = out.deadline.request_timeout(client.request_timeout()) else {
            return Err(out.not_acquired());
        };
        out.attempts += 1;
        let attempt = client
            .txn_lock_all(&plan.label, &plan.keys, &plan.values, pending.id(), timeout)
            .await;

        // 3. Taken: done. A key held: wait until it is free, then try all again.
        let miss = match attempt {
            Ok(MultiAttempt::Acquired { modify_indexes }) => {
                out.record();
                let (session_id, renewed) = pending.into_parts();
                return Ok(MultiAcquired {
                    session_id,
                    tokens: modify_indexes,
                    renewed,
                });
            }
            Ok(MultiAttempt::Held { index }) => {
                out.blocked_by = Some(Blocker::Holder);
                if !out.deadline.can_retry() {
                    return Err(out.not_acquired());
                }
                let key = &plan.keys[index.min(plan.keys.len() - 1)];
                tracing::trace!(key = %key, "a key is held; waiting for it");
                match wait_free(client, key, &mut pending, &out.deadline).await? {
                    Wait::Free => session = Some(pending),
                    Wait::SessionGone => pending.forget(),
                    Wait::TimedOut => return Err(out.not_acquired()),
                }
                continue;
            }
            Ok(MultiAttempt::LockDelay { .. }) => Miss::LockDelay,
            Err(e) => Miss::Failed(e),
        };
        round::after_miss(miss, pending, &mut session, &mut out, &mut backoff).await?;
    }
}

/// What waiting for a held key ended with.
enum Wait {
    /// The key is free (or held by nobody): try the whole set again.
    Free,
    /// The session is gone (invalidated while waiting): make a new one.
    SessionGone,
    /// The deadline passed.
    TimedOut,
}

/// Waits with blocking queries on `key` until no session holds it or the deadline passes,
/// renewing the waiting session at TTL/2 so that it survives a wait longer than its TTL.
async fn wait_free<B: Background>(
    client: &Client,
    key: &str,
    session: &mut PendingSession<B>,
    deadline: &Deadline,
) -> Result<Wait> {
    let mut index = 0u64;
    let mut backoff = Backoff::new();
    loop {
        let Some(remaining) = deadline.remaining().filter(|r| *r >= MIN_LEFT) else {
            return Ok(Wait::TimedOut);
        };
        let request_timeout = remaining.min(client.request_timeout());
        match session.refresh(request_timeout).await {
            Ok(true) => {}
            Ok(false) => return Ok(Wait::SessionGone),
            Err(e) if e.is_invalid_session() => return Ok(Wait::SessionGone),
            Err(e) if e.is_transient() => {
                if !backoff.wait(deadline).await {
                    return Ok(Wait::TimedOut);
                }
                continue;
            }
            Err(e) => return Err(e),
        }
        // Within the deadline, and never past the point where the session needs renewing.
        let blocking = Blocking {
            index,
            wait: session.until_refresh(Instant::now()),
            until: deadline.until(),
        };
        match client.kv_block(key, key, false, blocking).await {
            Ok((entries, next)) => {
                if entries.first().is_none_or(|e| e.session.is_none()) {
                    return Ok(Wait::Free);
                }
                index = next;
            }
            Err(e) if e.is_transient() => {
                if !backoff.wait(deadline).await {
                    return Ok(Wait::TimedOut);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Watches every key of a lock on several keys (one blocking query each) and reports the
/// loss when any of them is deleted or held by another session.
pub(crate) async fn watch_keys(lease: &Lease, keys: &[(String, u64)]) {
    if keys.is_empty() {
        return;
    }
    let watches = keys
        .iter()
        .map(|(key, token)| lease::watch_entry(lease, key, *token));
    // Each watch returns only once it has recorded a loss: the first one is enough.
    futures::future::select_all(watches.map(Box::pin)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_label_names_every_key() {
        let keys = vec!["locks/a".to_owned(), "locks/b".to_owned()];
        assert_eq!(label(&keys), "locks/a, locks/b");
    }
}
