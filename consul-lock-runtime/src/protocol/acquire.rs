//! Acquiring a lock, top to bottom: create a session → lock transaction → on held, wait for
//! the key in the queue → retry; transient failures and lock-delay refusals are retried with
//! jittered backoff, never past the deadline. A session left over by a failed or cancelled
//! acquire is destroyed ([`PendingSession`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument as _;

use super::local_turn::{self, LocalTurn};
use super::outcome::Outcome;
use super::pending::PendingSession;
use super::queue::{self, Wait};
use super::retry::{Backoff, Deadline};
use super::round::{self, Miss, RoundSession};
use super::Background;
use crate::api::LockAttempt;
use crate::{metrics, Blocker, Client, Result};

/// Everything an acquisition needs, resolved and checked before any request.
pub(crate) struct Plan {
    pub(crate) client: Client,
    /// The full key.
    pub(crate) key: String,
    /// How long to wait for a held key; zero: one try.
    pub(crate) acquire_timeout: Duration,
    /// The session TTL (the lock timeout).
    pub(crate) ttl: Duration,
    /// The value stored in the key.
    pub(crate) value: Vec<u8>,
    /// The `lock` label of the metrics (the key template, or `unnamed`).
    pub(crate) metrics_name: Arc<str>,
}

/// A lock just taken.
pub(crate) struct Acquired {
    pub(crate) session_id: String,
    /// The `ModifyIndex` of the acquiring write.
    pub(crate) fencing_token: u64,
    /// The send time of the session's create or last renew: the lease counts from then.
    pub(crate) renewed: Instant,
    /// Whether the key was held by another session when this acquire first tried it (a
    /// hand-off, for the metrics).
    pub(crate) handed_off: bool,
    /// This process's turn at the key, for the lock to keep until it ends.
    pub(crate) turn: LocalTurn,
}

/// Acquires `plan.key`, within a `consul_lock.acquire` span.
pub(crate) async fn acquire(plan: &Plan, bg: impl Background) -> Result<Acquired> {
    let span = tracing::info_span!(
        "consul_lock.acquire",
        key = %plan.key,
        waited_ms = tracing::field::Empty,
        attempts = tracing::field::Empty,
        fencing_token = tracing::field::Empty,
    );
    let started = Instant::now();
    let result = acquire_loop(plan, bg).instrument(span.clone()).await;
    metrics::acquire_finished(
        &plan.metrics_name,
        metrics::outcome(&result),
        started.elapsed(),
    );
    match &result {
        Ok(acquired) => {
            span.record("fencing_token", acquired.fencing_token);
            if acquired.handed_off {
                metrics::handoff(&plan.metrics_name);
            }
        }
        Err(e) => span.in_scope(|| tracing::debug!(error = %e, "not acquired")),
    }
    result
}

async fn acquire_loop(plan: &Plan, bg: impl Background) -> Result<Acquired> {
    let client = &plan.client;
    let mut out = Outcome::new(&plan.key, Deadline::new(plan.acquire_timeout));
    // Tasks of this process locking the same key go through Consul one at a time; the turn
    // passes on when this acquisition gives up, or when the lock it takes ends.
    let Some(turn) = local_turn::take(client, &plan.key, &out.deadline).await else {
        out.blocked_by = Some(Blocker::LocalHolder);
        return Err(out.not_acquired());
    };
    let mut backoff = Backoff::new();
    let mut session: Option<PendingSession<_>> = None;
    let queue = queue::prefix(&plan.key);
    // Whether to give the key back when it was taken ahead of older waiters: only when this
    // client released the key a moment ago (so that a releaser taking it again at once does
    // not overtake the queue), and never once this acquire has queued. Other newcomers may take a free key: waiting out stale
    // queue entries would cost them more than the order is worth.
    let mut yield_to_older = queue::released_recently(client, &plan.key);
    // A releaser coming back at once to a key that had waiters when it took it joins the
    // queue without trying the lock first (one request fewer, and no taking and giving back).
    let mut join_first =
        yield_to_older && !plan.acquire_timeout.is_zero() && queue::had_waiters(client, &plan.key);
    loop {
        // 1. A session: the one kept from the last round (renewed at TTL/2), or a new one.
        let round = round::session(
            &mut session,
            bg,
            client,
            &plan.key,
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

        // 2. The lock transaction, which reads the queue in the same round trip.
        let Some(timeout) = out.deadline.request_timeout(client.request_timeout()) else {
            return Err(out.not_acquired());
        };
        let attempt = if std::mem::take(&mut join_first) {
            Ok(LockAttempt::Held)
        } else {
            out.attempts += 1;
            client
                .txn_lock(&plan.key, &plan.value, pending.id(), &queue, timeout)
                .await
        };
        if let Ok(LockAttempt::Acquired { queue: waiters, .. }) = &attempt {
            let waiting = waiters.iter().any(|e| e.session.is_some());
            queue::note_waiters(client, &plan.key, waiting);
        }
        let attempt = match attempt {
            Ok(LockAttempt::Acquired {
                modify_index,
                queue: waiters,
            }) if yield_to_older
                && out.deadline.can_retry()
                && queue::older_waiter(&waiters, &queue, pending.id()) =>
            {
                // Taken ahead of older waiters (a releaser overtaking the queue): give it back
                // (delete it, as a release does, so that no key stays without a session) and
                // queue up, so that waiters are served in order. Should that fail, dropping
                // `pending` destroys the session, which deletes the key.
                tracing::trace!(
                    fencing_token = modify_index,
                    "yielding the key to an older waiter"
                );
                client
                    .txn_give_back(&plan.key, pending.id(), timeout)
                    .await
                    .map(|()| LockAttempt::Held)
            }
            other => other,
        };

        // 3. Taken: done. Held: wait for a turn. Otherwise retry within the deadline.
        let miss = match attempt {
            Ok(LockAttempt::Acquired { modify_index, .. }) => {
                out.record();
                let (session_id, renewed) = pending.into_parts();
                return Ok(Acquired {
                    session_id,
                    fencing_token: modify_index,
                    renewed,
                    handed_off: out.blocked_by == Some(Blocker::Holder),
                    turn,
                });
            }
            Ok(LockAttempt::Held) => {
                out.blocked_by = Some(Blocker::Holder);
                if !out.deadline.can_retry() {
                    return Err(out.not_acquired());
                }
                match queue::wait_turn(client, &plan.key, &mut pending, &out.deadline).await? {
                    Wait::Free => {
                        // First in the queue now: nobody older to yield to.
                        yield_to_older = false;
                        session = Some(pending);
                    }
                    Wait::SessionGone => pending.forget(),
                    Wait::TimedOut => return Err(out.not_acquired()),
                }
                continue;
            }
            Ok(LockAttempt::LockDelay) => Miss::LockDelay,
            Err(e) => Miss::Failed(e),
        };
        round::after_miss(miss, pending, &mut session, &mut out, &mut backoff).await?;
    }
}
