//! The session of an acquire in progress: created so that it is never leaked, renewed while
//! its acquire waits, and destroyed when the acquire fails or is cancelled. Or the client's
//! shared session ([`PendingSession::shared`]), which the acquire only uses: it is renewed by
//! its own task, and a failed or cancelled acquire deletes its queue entry instead of ending it.

use std::time::Duration;

use tokio::time::Instant;

use super::shared_session::{Ended, SessionUse};
use super::{teardown, Background};
use crate::api::Join;
use crate::error::DisplayDuration;
use crate::{Client, Error, KvEntry, RequestFailure, Result};

/// A session created by an acquire that has not (yet) taken the key. Dropping it destroys the
/// session in the background, so failed and cancelled acquires leak nothing.
pub(crate) struct PendingSession<B: Background> {
    bg: B,
    client: Client,
    key: String,
    id: String,
    /// Send time of the create or last renew: the TTL counts from at most then.
    renewed: Instant,
    ttl: Duration,
    /// The entry this session holds in a queue of waiters, if any, with its `ModifyIndex`
    /// when the join's read showed it.
    queued: Option<(String, Option<u64>)>,
    armed: bool,
    /// The client's shared session, when the acquire uses it (then dropping this ends no
    /// session: only the queue entry is deleted).
    shared: Option<SessionUse>,
}

/// A session that took its lock ([`PendingSession::into_parts`]).
pub(crate) struct Took {
    pub(crate) id: String,
    /// The send time of its create or last renew.
    pub(crate) renewed: Instant,
    /// The use of the shared session, when the lock was taken with it.
    pub(crate) shared: Option<SessionUse>,
}

impl<B: Background> PendingSession<B> {
    /// Creates the acquire's session so that it is never leaked: the create finishes even if
    /// the acquire stops waiting for it (cancelled, or out of time: see
    /// [`Background::finish`]), and the session comes back as a [`PendingSession`], whose drop
    /// destroys it. The request is bounded by the client's request timeout and the wait for
    /// it by `wait` (the time left), so a session Consul creates after the acquire gave up is
    /// destroyed too.
    pub(crate) async fn create(
        bg: B,
        client: &Client,
        key: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Self> {
        let name = teardown::session_name(key);
        Self::create_named(bg, client, key, name, ttl, wait).await
    }

    /// Uses the client's shared session, creating it (as [`create`](Self::create) does, so
    /// that it is never leaked) when there is none: one create at a time per client, the others
    /// waiting for it within `wait`.
    pub(crate) async fn shared(bg: B, client: &Client, key: &str, wait: Duration) -> Result<Self> {
        let slot = &client.inner.shared;
        let use_ = match slot.current_use() {
            Some(use_) => use_,
            None => {
                let Some(_creating) = slot.creating(wait).await else {
                    return Err(out_of_time(client, key, wait));
                };
                match slot.current_use() {
                    Some(use_) => use_,
                    None => {
                        let ttl = client.shared_session_ttl();
                        let name = teardown::shared_session_name();
                        let created = Self::create_named(bg, client, key, name, ttl, wait).await?;
                        let took = created.into_parts();
                        slot.start(bg, client, took.id, took.renewed, ttl)
                    }
                }
            }
        };
        let session = use_.session();
        Ok(PendingSession {
            bg,
            client: client.clone(),
            key: key.to_owned(),
            id: session.id.clone(),
            renewed: session.last_renewal(),
            ttl: session.ttl,
            queued: None,
            armed: true,
            shared: Some(use_),
        })
    }

    async fn create_named(
        bg: B,
        client: &Client,
        key: &str,
        name: String,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Self> {
        let (task_client, task_key) = (client.clone(), key.to_owned());
        let create = bg.finish(async move {
            let (client, key) = (task_client, task_key);
            let sent = Instant::now();
            let timeout = client.request_timeout();
            // Dropped before the answer (its runtime shut down): Consul may have created the
            // session all the same, so it is looked for by name.
            let unanswered = SweepIfUnanswered {
                bg,
                call: Some((client.clone(), key.clone(), name.clone(), ttl)),
            };
            let created = client.session_create(&key, &name, ttl, timeout).await;
            unanswered.answered();
            let id = match created {
                Ok(id) => id,
                Err(e) => {
                    if teardown::create_may_have_happened(&e) {
                        teardown::sweep_unconfirmed_create(bg, client, key, name, ttl);
                    }
                    return Err(e);
                }
            };
            Ok(PendingSession {
                bg,
                client,
                key,
                id,
                renewed: sent,
                ttl,
                queued: None,
                armed: true,
                shared: None,
            })
        });
        // The request is bounded by the client's request timeout already; a second timer is
        // only needed when the time left is shorter.
        if wait >= client.request_timeout() {
            return create.await;
        }
        match tokio::time::timeout(wait, create).await {
            Ok(created) => created,
            Err(_) => Err(out_of_time(client, key, wait)),
        }
    }

    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// Whether this is the client's shared session.
    pub(crate) fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Renews the session when half its TTL has passed, so that the lock taken with it has at
    /// least half a TTL left. `Ok(false)`: Consul no longer knows the session.
    /// A shared session is renewed by its own task: `Ok(false)` once it has ended.
    pub(crate) async fn refresh(&mut self, timeout: Duration) -> Result<bool> {
        if let Some(shared) = &self.shared {
            return Ok(!shared.session().is_ended());
        }
        if self.renewed.elapsed() < self.ttl / 2 {
            return Ok(true);
        }
        let sent = Instant::now();
        let alive = self
            .client
            .session_renew(&self.key, &self.id, timeout)
            .await?;
        if alive {
            self.renewed = sent;
        }
        Ok(alive)
    }

    /// How long from `now` until the session needs [`refresh`](Self::refresh)ing.
    /// (A shared session: half its TTL, so that a waiter notices its end in time.)
    pub(crate) fn until_refresh(&self, now: Instant) -> Duration {
        if self.shared.is_some() {
            return self.ttl / 2;
        }
        (self.renewed + self.ttl / 2).saturating_duration_since(now)
    }

    /// Puts the session in a queue of waiters as `entry`, once, and reads `tree` (what the
    /// waiter watches, with the queue) in the same transaction: `Some(tree)` when it joined
    /// now, `None` when it had joined already (joining again would rewrite the entry and wake
    /// its successor). An entry in another queue (a lock on several keys moving to the key
    /// that keeps it waiting) is deleted by the same write.
    pub(crate) async fn join_queue(
        &mut self,
        entry: &str,
        tree: &str,
        timeout: Duration,
    ) -> Result<Option<Vec<KvEntry>>> {
        if self.queue_entry() == Some(entry) {
            return Ok(None);
        }
        let join = Join {
            entry,
            session: &self.id,
            tree,
            leave: self.queue_entry(),
        };
        let read = self.client.txn_join(&self.key, join, timeout).await?;
        let index = read.iter().find(|e| e.key == entry).map(|e| e.modify_index);
        self.queued = Some((entry.to_owned(), index));
        Ok(Some(read))
    }

    /// The entry this session holds in a queue of waiters, if any.
    pub(crate) fn queue_entry(&self) -> Option<&str> {
        self.queued.as_ref().map(|(entry, _)| entry.as_str())
    }

    /// Notes that the session's queue entry is missing from a read of the queue (or was
    /// deleted with the write that took the lock), so that the next wait joins again.
    pub(crate) fn left_queue(&mut self) {
        self.queued = None;
    }

    /// The session took the key: its id, the send time of its create or last renew, and the
    /// use of the shared session.
    pub(crate) fn into_parts(mut self) -> Took {
        self.armed = false;
        let renewed = match &self.shared {
            Some(shared) => shared.session().last_renewal(),
            None => self.renewed,
        };
        Took {
            id: std::mem::take(&mut self.id),
            renewed,
            shared: self.shared.take(),
        }
    }

    /// Consul has already dropped the session: nothing to destroy. A shared session ends for
    /// every lock on it (each is told), and the next acquire creates another.
    pub(crate) fn forget(mut self) {
        self.armed = false;
        if let Some(shared) = &self.shared {
            let session = shared.session();
            if self.client.inner.shared.end(session, Ended::Invalidated) {
                tracing::debug!(session = %session.id, "the shared session is gone");
            }
        }
    }
}

/// A session create on its way: dropped before its answer, it has the session looked for by
/// name and destroyed ([`teardown::sweep_unconfirmed_create`]).
struct SweepIfUnanswered<B: Background> {
    bg: B,
    /// The client, key, session name and TTL of the create; `None` once answered.
    call: Option<(Client, String, String, Duration)>,
}

impl<B: Background> SweepIfUnanswered<B> {
    fn answered(mut self) {
        self.call = None;
    }
}

impl<B: Background> Drop for SweepIfUnanswered<B> {
    fn drop(&mut self) {
        if let Some((client, key, name, ttl)) = self.call.take() {
            teardown::sweep_unconfirmed_create(self.bg, client, key, name, ttl);
        }
    }
}

impl<B: Background> Drop for PendingSession<B> {
    fn drop(&mut self) {
        if self.armed && self.shared.is_some() {
            // The shared session lives on: only this acquire's queue entry goes, and only the
            // one it wrote (this client's next waiter for the key may have joined again since).
            if let Some((entry, Some(index))) = self.queued.take() {
                let client = self.client.clone();
                let key = std::mem::take(&mut self.key);
                self.bg.detach(async move {
                    let timeout = client.request_timeout();
                    let entries = [(entry, index)];
                    if let Err(e) = client.txn_give_back_taken(&key, &entries, timeout).await {
                        tracing::warn!(key = %key, error = %e, "could not delete the queue entry of an unfinished acquire; it goes with the shared session");
                    }
                });
            }
            return;
        }
        if self.armed {
            let client = self.client.clone();
            let key = std::mem::take(&mut self.key);
            let id = std::mem::take(&mut self.id);
            let end = teardown::SessionEnd::after(self.renewed, self.ttl);
            self.bg.detach(async move {
                if let Err(e) =
                    teardown::destroy_until_confirmed(&client, &key, &id, end, || {}).await
                {
                    tracing::warn!(key = %key, error = %e, "could not destroy the session of an unfinished acquire; its TTL will end it");
                }
            });
        }
    }
}

/// The time left ran out before the session was made.
fn out_of_time(client: &Client, key: &str, wait: Duration) -> Error {
    Error::Unreachable {
        key: key.to_owned(),
        operation: "create a session",
        address: client.address().to_owned(),
        cause: RequestFailure::DeadlineReached,
        reason: format!(
            "no answer within {}, the time left before the deadline",
            DisplayDuration(wait)
        ),
    }
}
