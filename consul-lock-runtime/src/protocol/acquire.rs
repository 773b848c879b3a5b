//! Acquiring, top to bottom, for every kind of lock: a lock on one key (`one_key`), a
//! lock on several keys at once (`multi`), a semaphore's slot (`semaphore`). The engine owns
//! the round; a [`Kind`] supplies only what differs: its attempt, and what the first waiter in
//! a queue watches.
//!
//! 1. **Local turns** ([`key_state::take_turns`]): the tasks of this process that use one
//!    client take turns per key before they talk to Consul (a semaphore: as many as its slots).
//! 2. **A session** ([`Round::session`]): the one kept from the last round, renewed at TTL/2,
//!    or the client's shared session ([`Plan::shares_session`]), or a new one of its own
//!    ([`PendingSession`], destroyed if the acquire fails or is cancelled).
//! 3. **The attempt** ([`Kind::attempt`]): one transaction that takes everything or nothing.
//! 4. **Held**: wait in the queue of the key that is held ([`queue::wait_in_queue`]: behind
//!    the waiter queued right before, the first one watching what the kind says), then try
//!    again with the same session.
//! 5. **Lock-delay, a transient failure, a lost race**: retry with jittered backoff, never past
//!    the deadline ([`Round::after_miss`]); `invalid session` starts over with a new session.
//!
//! What the acquire reports when it gives up is the [`Outcome`]'s choice; its metrics and its
//! span are recorded here ([`acquire`]) for every kind.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument as _;

use super::key_state::{self, Records, Turn};
use super::kind::{Attempt, Kind, Try, Undo};
use super::outcome::Outcome;
use super::pending::PendingSession;
use super::queue::{self, Waited};
use super::retry::{Backoff, Deadline};
use super::shared_session::SessionUse;
use super::Background;
use crate::{metrics, Blocker, Client, Error, Result};

/// Everything an acquisition needs, resolved and checked before any request.
pub(crate) struct Plan<K> {
    pub(crate) client: Client,
    pub(crate) kind: K,
    /// How long to wait for a held lock; zero: one try.
    pub(crate) acquire_timeout: Duration,
    /// The session TTL (the lock timeout).
    pub(crate) ttl: Duration,
    /// The `lock` label of the metrics (the key template, or `unnamed`).
    pub(crate) metrics_name: Arc<str>,
    /// The lock asks for a session of its own ([`Lock::own_session`](crate::Lock::own_session)).
    pub(crate) own_session: bool,
}

impl<K: Kind> Plan<K> {
    /// Whether this acquire uses the client's shared session: unless the lock asks for its own,
    /// the kind cannot share one (a semaphore's slot), its lock timeout is shorter than the
    /// shared session's TTL (a frozen process would then hold the key longer than twice its
    /// lock timeout), or its node's failure can end the lease (a node-bound lease is confirmed
    /// per session; also while the client has not learnt yet what kind of agent it talks to).
    pub(crate) fn shares_session(&self) -> bool {
        let client = &self.client;
        !self.own_session
            && self.kind.can_share()
            && self.ttl >= client.shared_session_ttl()
            && client.node_bound().is_none()
    }
}

/// A lock just taken.
pub(crate) struct Taken {
    pub(crate) session_id: String,
    /// Each key held, with the `ModifyIndex` of the write that took it.
    pub(crate) keys: Vec<(String, u64)>,
    /// The send time of the session's create or last renew: the lease counts from then.
    pub(crate) renewed: Instant,
    /// The use of the client's shared session, when the lock was taken with it.
    pub(crate) shared: Option<SessionUse>,
    /// The send time of the attempt that took the lock (a lock on the shared session ends a
    /// lock timeout after it).
    pub(crate) sent: Instant,
    /// This process's turns at the keys, for the lock to keep until it ends.
    pub(crate) turns: Vec<Turn>,
    /// Whether another session held the lock when this acquire first tried (a hand-off).
    handed_off: bool,
}

/// Acquires `plan.kind`, within its span, and records the acquire's metrics. `records` are
/// the client's records of the lock's keys (their local turns and queue memory).
pub(crate) async fn acquire<K: Kind>(
    plan: &Plan<K>,
    records: &Records,
    bg: impl Background,
) -> Result<Taken> {
    let span = plan.kind.span();
    let started = Instant::now();
    let round = Round {
        plan,
        bg,
        out: Outcome::new(plan.kind.label(), Deadline::new(plan.acquire_timeout)),
        backoff: Backoff::new(),
        kept: None,
        undo: Vec::new(),
        shares: plan.shares_session(),
        renewed_shared: false,
        turns: Vec::new(),
    };
    // Boxed: the round's state machine is large, and every public acquire future holds it
    // (clippy's `large_futures` would flag each `acquire().await` in the caller's code).
    let result = Box::pin(round.run(records).instrument(span.clone())).await;
    let name = &plan.metrics_name;
    metrics::acquire_finished(name, metrics::outcome(&result), started.elapsed());
    match &result {
        Ok(taken) => {
            let token = taken.keys.iter().map(|(_, t)| *t).max().unwrap_or_default();
            span.record("fencing_token", token);
            if taken.handed_off {
                metrics::handoff(name);
            }
        }
        Err(e) => span.in_scope(|| tracing::debug!(error = %e, "not acquired")),
    }
    result
}

/// One acquisition: its outcome so far (with the deadline), its backoff, and the session
/// kept from one round to the next.
struct Round<'a, K, B: Background> {
    plan: &'a Plan<K>,
    bg: B,
    out: Outcome,
    backoff: Backoff,
    kept: Option<PendingSession<B>>,
    /// Per session, the undo of an attempt whose outcome is not known yet: run in the
    /// background when the acquisition ends (taken with another session, failed, cancelled).
    undo: Vec<(String, Undo)>,
    /// Whether the round uses the client's shared session.
    shares: bool,
    /// A shared session found gone has been replaced once already.
    renewed_shared: bool,
    /// This acquisition's local turns: they pass when it gives up (after the undo, if any), or
    /// go to the lock it took.
    turns: Vec<Turn>,
}

impl<K, B: Background> Drop for Round<'_, K, B> {
    fn drop(&mut self) {
        if self.undo.is_empty() {
            return;
        }
        // The turns pass once the undo is done: on the shared session, another lock of this
        // client could otherwise take the key first, and the undo delete it.
        let undo: Vec<Undo> = self.undo.drain(..).map(|(_, work)| work).collect();
        let turns = std::mem::take(&mut self.turns);
        self.bg.detach(async move {
            for work in undo {
                work.await;
            }
            drop(turns);
        });
    }
}

impl<K: Kind, B: Background> Round<'_, K, B> {
    async fn run(mut self, records: &Records) -> Result<Taken> {
        let (plan, client) = (self.plan, &self.plan.client);
        // 1. Local turns; they pass on when this acquisition gives up, or when its lock ends.
        let Some(turns) = key_state::take_turns(records, &self.out.deadline).await? else {
            self.out.blocked_by = Some(Blocker::LocalHolder);
            return Err(self.out.not_acquired());
        };
        self.turns = turns;
        // A client that released the lock a moment ago gives it back when it took it ahead of
        // older waiters, and never once it has queued; when the lock had waiters, it queues
        // at once. Other newcomers may take a free lock: waiting out stale queue entries would
        // cost them more than the order is worth.
        let memory = records.as_slice().first();
        let mut yield_to_older = memory.is_some_and(|r| r.released_recently());
        let mut join_first = (yield_to_older
            && !plan.acquire_timeout.is_zero()
            && memory.is_some_and(|r| r.had_waiters()))
        .then(|| plan.kind.first_queue())
        .flatten();
        let mut seen = None;
        let mut sent = Instant::now();
        loop {
            // 2. A session.
            let Some(mut session) = self.session().await? else {
                continue;
            };
            // 3. The attempt.
            let Some(timeout) = self.out.deadline.request_timeout(client.request_timeout()) else {
                return Err(self.out.not_acquired());
            };
            let attempt = match join_first.take() {
                Some(queue_of) => Ok(Attempt::Held {
                    queue_of: queue_of.to_owned(),
                }),
                None => {
                    self.out.attempts += 1;
                    // Armed until the attempt's outcome is known.
                    self.undo.retain(|(s, _)| s != session.id());
                    if let Some(work) = plan.kind.undo(client, session.id(), records) {
                        self.undo.push((session.id().to_owned(), work));
                    } else if session.is_shared() {
                        // A take whose outcome stays unknown (its answer lost, the acquire
                        // cancelled during it) would leave the keys on a session that lives on.
                        self.undo.push((
                            session.id().to_owned(),
                            give_back(plan, client, session.id()),
                        ));
                    }
                    let attempt = Try {
                        session: session.id(),
                        records,
                        entry: session.queue_entry(),
                        seen: seen.take(),
                        yield_to_older: yield_to_older && self.out.deadline.can_retry(),
                        timeout,
                    };
                    sent = Instant::now();
                    plan.kind.attempt(client, attempt).await
                }
            };
            if attempt.is_ok() {
                self.undo.retain(|(s, _)| s != session.id());
            }
            // 4. Taken: done. Held: wait in the queue. Otherwise retry within the deadline.
            let miss = match attempt {
                Ok(Attempt::Taken { keys, waiters }) => {
                    records.note_waiters(waiters);
                    self.out.record();
                    let took = session.into_parts();
                    return Ok(Taken {
                        session_id: took.id,
                        keys,
                        renewed: took.renewed,
                        shared: took.shared,
                        sent,
                        turns: std::mem::take(&mut self.turns),
                        handed_off: self.out.blocked_by == Some(Blocker::Holder),
                    });
                }
                Ok(Attempt::Held { queue_of }) => {
                    self.out.blocked_by = Some(Blocker::Holder);
                    if !self.out.deadline.can_retry() {
                        return Err(self.out.not_acquired());
                    }
                    let deadline = &self.out.deadline;
                    let wait =
                        queue::wait_in_queue(&plan.kind, client, &queue_of, &mut session, deadline);
                    match wait.await? {
                        Waited::Free(read) => {
                            // First in the queue now: nobody older to yield to.
                            yield_to_older = false;
                            seen = read;
                            self.kept = Some(session);
                        }
                        Waited::SessionGone => session.forget(),
                        Waited::TimedOut => return Err(self.out.not_acquired()),
                    }
                    continue;
                }
                Ok(Attempt::Raced) => {
                    self.kept = Some(session);
                    if !self.out.deadline.can_retry() {
                        return Err(self.out.not_acquired());
                    }
                    continue;
                }
                Ok(Attempt::LockDelay) => Miss::LockDelay,
                Err(e) => Miss::Failed(e),
            };
            self.after_miss(miss, session).await?;
        }
    }

    /// Step 2: the session kept from the last round, renewed when half its TTL has passed, or
    /// a new one. `Ok(None)`: start the round again (the kept session was gone, or a
    /// transient failure was waited out). `Err`: give up with this error.
    async fn session(&mut self) -> Result<Option<PendingSession<B>>> {
        let plan = self.plan;
        let Some(timeout) = self
            .out
            .deadline
            .request_timeout(plan.client.request_timeout())
        else {
            return Err(self.out.not_acquired());
        };
        let result = match self.kept.take() {
            Some(mut kept) => match kept.refresh(timeout).await {
                Ok(true) => return Ok(Some(kept)),
                Ok(false) => {
                    kept.forget();
                    return Ok(None);
                }
                Err(e) => {
                    self.kept = Some(kept);
                    Err(e)
                }
            },
            None if self.shares => {
                let (client, label) = (&plan.client, plan.kind.label());
                PendingSession::shared(self.bg, client, label, timeout).await
            }
            None => {
                let (client, label) = (&plan.client, plan.kind.label());
                PendingSession::create(self.bg, client, label, plan.ttl, timeout).await
            }
        };
        match result {
            Ok(created) => Ok(Some(created)),
            Err(e) if e.is_transient() && self.out.retry_after(&e, &mut self.backoff).await => {
                Ok(None)
            }
            Err(e) => Err(self.out.give_up(e)),
        }
    }

    /// Step 5, after an attempt that neither took the lock nor waited for it: keeps the
    /// session for the next round when it is still good, and waits out a lock-delay or a
    /// transient failure. `Err`: give up (the deadline allows no retry, or the failure is not
    /// one to retry).
    async fn after_miss(&mut self, miss: Miss, session: PendingSession<B>) -> Result<()> {
        let out = &mut self.out;
        match miss {
            Miss::LockDelay => {
                out.blocked_by = Some(Blocker::LockDelay);
                self.kept = Some(session);
                if self.backoff.wait(&out.deadline).await {
                    Ok(())
                } else {
                    Err(out.not_acquired())
                }
            }
            Miss::Failed(e) if e.is_invalid_session() => {
                // Consul ended the session (its TTL ran out, or it was destroyed): start over.
                // A shared session may have ended before this client noticed (an operator's
                // destroy is seen at its next renewal): a one-try acquire, too, tries once more
                // with a new one, as it would have made its own.
                let shared = session.is_shared();
                session.forget();
                if out.deadline.can_retry()
                    || (shared && !std::mem::replace(&mut self.renewed_shared, true))
                {
                    Ok(())
                } else {
                    Err(out.give_up(e))
                }
            }
            Miss::Failed(e) if e.is_transient() => {
                self.kept = Some(session);
                if out.retry_after(&e, &mut self.backoff).await {
                    Ok(())
                } else {
                    Err(out.give_up(e))
                }
            }
            Miss::Failed(e) => Err(out.give_up(e)),
        }
    }
}

/// The undo of a take on the shared session whose outcome is unknown: each of the lock's keys
/// given back while `session` holds it (this acquisition still has the turns, so no other lock
/// of this client holds them with it).
fn give_back<K: Kind>(plan: &Plan<K>, client: &Client, session: &str) -> Undo {
    let keys: Vec<String> = plan
        .kind
        .records()
        .0
        .into_iter()
        .map(str::to_owned)
        .collect();
    let (client, session) = (client.clone(), session.to_owned());
    Box::pin(async move {
        let timeout = client.request_timeout();
        for key in &keys {
            if let Err(e) = client.txn_give_back(key, &session, timeout).await {
                tracing::warn!(key = %key, error = %e, "could not give back a key whose take was not confirmed; it goes with the shared session");
            }
        }
    })
}

/// What an attempt ended with when it neither took the lock nor waited for it.
enum Miss {
    /// The lock is free but a lock-delay runs.
    LockDelay,
    /// The attempt failed.
    Failed(Error),
}
