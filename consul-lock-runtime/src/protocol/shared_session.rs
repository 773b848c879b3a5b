//! The session a client's locks share (etcd's `concurrency.Session` on Consul): one per
//! [`Client`] (a record of the client, shared by its clones), created when a lock first needs
//! it, renewed at TTL/2 while any lock or waiter uses it (renewals are not Raft writes), and
//! destroyed once nothing has used it for half a TTL or more (checked at each renewal, so
//! between half a TTL and a TTL after the last use; at once when only the renewal still holds
//! the client). A lock on it costs two writes: the lock transaction, and a give-back that
//! deletes the key only while that lock holds it (`api/txn.rs:txn_give_back_taken`).
//!
//! A session lost (destroyed from outside, or not renewed in time) loses every lock on it,
//! each told through its own `lost()` ([`SessionEnded`]); the next acquire makes a new one.
//!
//! Who uses it: [`SessionUse`]s, held by an acquire while it runs and by each lease until it
//! ends; the session is idle when none is left.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::teardown;
use super::Background;
use crate::{Client, Error};

/// How logs and errors name the shared session's own requests (renewal, destroy).
pub(crate) const LABEL: &str = "(the client's shared session)";

/// Why the shared session ended for the locks on it.
#[derive(Clone, Debug)]
pub(crate) enum Ended {
    /// Consul no longer knows it (destroyed from outside, or expired).
    Invalidated,
    /// It could not be renewed before its lease ran out, or Consul refused a renewal.
    RenewalFailed(String),
    /// Nothing used it for a while (no lock is on it).
    Idle,
}

/// What a lock on the shared session is told when the session ends.
pub(crate) trait SessionEnded: Send + Sync {
    fn session_ended(&self, why: &Ended);
}

/// The client's record: its current shared session, if any.
#[derive(Default)]
pub(crate) struct SharedSlot {
    current: Mutex<Option<Arc<SharedSession>>>,
    /// Held while a session is created, so that concurrent acquires make one.
    creating: tokio::sync::Mutex<()>,
}

/// One shared session, as this client knows it.
pub(crate) struct SharedSession {
    pub(crate) id: String,
    pub(crate) ttl: Duration,
    life: Mutex<Life>,
    users: Mutex<Users>,
}

/// The lease of the session itself: the send time of its create or last renewal, and whether
/// renewals show Consul without a leader (see `lease.rs`'s `Life`: the same rules).
#[derive(Clone, Copy)]
struct Life {
    renewed: Instant,
    consul_leaderless: bool,
}

#[derive(Default)]
struct Users {
    count: usize,
    /// Since when nothing uses it.
    idle_since: Option<Instant>,
    /// The locks taken with it, told when it ends.
    locks: Vec<Weak<dyn SessionEnded>>,
    ended: Option<Ended>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SharedSlot {
    /// A use of the current session, when there is one that has not ended.
    pub(crate) fn current_use(&self) -> Option<SessionUse> {
        let current = lock(&self.current);
        let session = current.as_ref()?;
        session.add_user().then(|| SessionUse(session.clone()))
    }

    /// Waits (up to `wait`) for the right to create a session; `None`: out of time.
    pub(crate) async fn creating(&self, wait: Duration) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        tokio::time::timeout(wait, self.creating.lock()).await.ok()
    }

    /// Makes `id` (created at `renewed`, with `ttl`) the client's shared session, its renewal
    /// running on `bg`; returns a use of it.
    pub(crate) fn start(
        &self,
        bg: impl Background,
        client: &Client,
        id: String,
        renewed: Instant,
        ttl: Duration,
    ) -> SessionUse {
        let session = Arc::new(SharedSession {
            id,
            ttl,
            life: Mutex::new(Life {
                renewed,
                consul_leaderless: false,
            }),
            users: Mutex::new(Users::default()),
        });
        session.add_user();
        *lock(&self.current) = Some(session.clone());
        tracing::debug!(session = %session.id, "shared session created");
        bg.spawn(keep(client.clone(), session.clone()));
        SessionUse(session)
    }

    /// Ends `session` for its locks (each is told) and forgets it, so that the next acquire
    /// creates another. Returns whether this call ended it.
    pub(crate) fn end(&self, session: &SharedSession, why: Ended) -> bool {
        {
            let mut current = lock(&self.current);
            if current.as_deref().is_some_and(|s| std::ptr::eq(s, session)) {
                *current = None;
            }
        }
        let locks = {
            let mut users = lock(&session.users);
            if users.ended.is_some() {
                return false;
            }
            users.ended = Some(why.clone());
            std::mem::take(&mut users.locks)
        };
        for held in locks.iter().filter_map(Weak::upgrade) {
            held.session_ended(&why);
        }
        true
    }

    /// Ends `session` when nothing uses it (checked with the slot held, so that no acquire
    /// takes a use meanwhile). Returns whether it ended.
    fn retire_if_idle(&self, session: &SharedSession, idle_for: Duration, alone: bool) -> bool {
        let mut current = lock(&self.current);
        {
            let mut users = lock(&session.users);
            let idle = users.count == 0
                && users
                    .idle_since
                    .is_some_and(|t| alone || t.elapsed() >= idle_for);
            if !idle || users.ended.is_some() {
                return false;
            }
            users.ended = Some(Ended::Idle);
        }
        if current.as_deref().is_some_and(|s| std::ptr::eq(s, session)) {
            *current = None;
        }
        true
    }
}

impl SharedSession {
    fn add_user(&self) -> bool {
        let mut users = lock(&self.users);
        if users.ended.is_some() {
            return false;
        }
        users.count += 1;
        users.idle_since = None;
        true
    }

    /// The moment after which Consul may have ended the session (as a lease counts it).
    pub(crate) fn valid_until(&self) -> Instant {
        let life = *lock(&self.life);
        if life.consul_leaderless {
            life.renewed + self.ttl * 2 - self.ttl / 10
        } else {
            life.renewed + self.ttl
        }
    }

    /// The send time of the create or the last successful renewal.
    pub(crate) fn last_renewal(&self) -> Instant {
        lock(&self.life).renewed
    }

    /// Whether the session has ended for this client (its locks were told).
    pub(crate) fn is_ended(&self) -> bool {
        lock(&self.users).ended.is_some()
    }

    /// `held` is taken with this session: it is told when the session ends (at once, if it
    /// has already).
    pub(crate) fn register(&self, held: Weak<dyn SessionEnded>) {
        let ended = {
            let mut users = lock(&self.users);
            match &users.ended {
                Some(why) => Some(why.clone()),
                None => {
                    users.locks.retain(|l| l.strong_count() > 0);
                    users.locks.push(held.clone());
                    None
                }
            }
        };
        if let (Some(why), Some(held)) = (ended, held.upgrade()) {
            held.session_ended(&why);
        }
    }
}

/// A use of the shared session (an acquire running, or a lock held): while any is alive, the
/// session is renewed and not retired.
pub(crate) struct SessionUse(Arc<SharedSession>);

impl SessionUse {
    pub(crate) fn session(&self) -> &Arc<SharedSession> {
        &self.0
    }
}

impl Drop for SessionUse {
    fn drop(&mut self) {
        let mut users = lock(&self.0.users);
        users.count = users.count.saturating_sub(1);
        if users.count == 0 {
            users.idle_since = Some(Instant::now());
        }
    }
}

/// Keeps `session` alive: renews it at TTL/2 (retrying failures, with the same election grace
/// as a lease's renewal) until it is lost, or retires it once idle. Runs in the background.
async fn keep(client: Client, session: Arc<SharedSession>) {
    let ttl = session.ttl;
    let half = ttl / 2;
    let retry = (ttl / 10).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let slot = &client.inner.shared;
    let mut next = session.last_renewal() + half;
    let mut last_error = String::new();
    loop {
        tokio::time::sleep_until(next).await;
        if session.is_ended() {
            return;
        }
        // Only this task still holds the client: nobody can use the session again.
        let alone = Arc::strong_count(&client.inner) == 1;
        if slot.retire_if_idle(&session, half, alone) {
            tracing::debug!(session = %session.id, "shared session idle; destroying it");
            destroy(&client, &session).await;
            return;
        }
        let now = Instant::now();
        let valid_until = session.valid_until();
        if now >= valid_until {
            slot.end(&session, Ended::RenewalFailed(last_error));
            destroy(&client, &session).await;
            return;
        }
        let timeout = (valid_until - now)
            .saturating_sub(ttl / 10)
            .max(Duration::from_millis(50))
            .min(client.request_timeout());
        match client.session_renew(LABEL, &session.id, timeout).await {
            Ok(true) => {
                let mut life = lock(&session.life);
                life.renewed = now;
                life.consul_leaderless = false;
                next = now + half;
            }
            Ok(false) => {
                slot.end(&session, Ended::Invalidated);
                return;
            }
            Err(e @ Error::PermissionDenied { .. }) => {
                slot.end(&session, Ended::RenewalFailed(e.to_string()));
                destroy(&client, &session).await;
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "renewing the shared session failed; retrying");
                if e.shows_no_leader() {
                    lock(&session.life).consul_leaderless = true;
                }
                last_error = e.to_string();
                next = Instant::now() + retry;
            }
        }
    }
}

/// Destroys a session that has ended for this client, until Consul confirms it or would have
/// ended it on its own.
pub(crate) async fn destroy(client: &Client, session: &SharedSession) {
    let end = teardown::SessionEnd::after(session.last_renewal(), session.ttl)
        .not_before(Instant::now() + client.request_timeout());
    if let Err(e) = teardown::destroy_until_confirmed(client, LABEL, &session.id, end, || {}).await
    {
        tracing::warn!(session = %session.id, error = %e, "could not destroy the shared session; its TTL will end it");
    }
}
