//! A held lock's lease: what the holder knows of its session's life, the renewal that keeps it
//! (with its grace through leader elections), the key watch that notices a loss at once, and
//! the release that goes on until Consul confirms it.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tracing::Instrument as _;

use super::key_state::{LeaseEnd, Records, Turn};
use super::retry::Backoff;
use super::shared_session::{self, Ended, SessionEnded, SessionUse, SharedSession};
use super::teardown;
use crate::api::Blocking;
use crate::{metrics, Client, Result};

/// Why a lock is no longer held.
///
/// ```
/// use consul_lock_runtime::LostReason;
/// assert!(LostReason::Expired.to_string().contains("TTL"));
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LostReason {
    /// The lock timeout (session TTL) ran out without a renewal: Consul may free the key from
    /// now on. Without renewal this is the normal end of a lock that was not released.
    Expired,
    /// Renewals failed (Consul unreachable or without a leader) until the TTL ran out, or
    /// Consul refused one for the ACL token (its rules changed, or it was deleted).
    RenewalFailed {
        /// The last error seen.
        last_error: String,
    },
    /// Consul no longer knows the session: it was destroyed from outside (an operator, another
    /// client), invalidated (a health check it carries went critical), or its node was
    /// deregistered (`consul force-leave`, a graceful leave of the agent, reaping).
    SessionInvalidated,
    /// The key was deleted, or is now held by another session.
    KeyTakenOver {
        /// The session now holding the key, if any.
        by: Option<String>,
    },
    /// The session can be ended by its node's failure (it carries the node's health check:
    /// [`danger_node_health_check`](crate::ClientBuilder::danger_node_health_check)), and
    /// Consul did not confirm it for the client's node lease: Consul's servers may have
    /// declared the node failed and freed the key.
    Unconfirmed {
        /// The last error seen.
        last_error: String,
    },
    /// The guard released the lock.
    Released,
}

impl fmt::Display for LostReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LostReason::Expired => f.write_str(
                "the lock timeout (session TTL) ran out without a renewal; enable renewal or raise the lock timeout",
            ),
            LostReason::RenewalFailed { last_error } => write!(
                f,
                "the session could not be renewed before its TTL ran out (last error: {last_error})"
            ),
            LostReason::SessionInvalidated => f.write_str(
                "Consul no longer knows the session (destroyed from outside, invalidated, or its node deregistered)",
            ),
            LostReason::KeyTakenOver { by: Some(by) } => write!(f, "the key is now held by session {by}"),
            LostReason::KeyTakenOver { by: None } => f.write_str("the key was deleted or released from outside"),
            LostReason::Unconfirmed { last_error } => write!(
                f,
                "Consul did not confirm the session within the node lease, and its node's failure \
                 may have ended it (last error: {last_error})"
            ),
            LostReason::Released => f.write_str("it was released"),
        }
    }
}

/// A held lock, as the protocol knows it: the session that holds its keys, its lease, and
/// whether (and why) it was lost.
pub(crate) struct Lease {
    pub(crate) client: Client,
    /// How errors and logs name the lock: its key, its keys, or its semaphore's prefix.
    pub(crate) label: String,
    /// What the session holds: each key (a lock's key, each key of several, a semaphore's
    /// contender key) with the `ModifyIndex` of the write that took it.
    pub(crate) keys: Vec<(String, u64)>,
    pub(crate) session_id: String,
    /// The highest of the keys' indexes.
    pub(crate) fencing_token: u64,
    pub(crate) ttl: Duration,
    /// When its node's failure can end the session (it carries the node's health check): how
    /// long after the last confirmed contact the lock counts as held.
    node_bound: Option<Duration>,
    life: Mutex<Life>,
    state: watch::Sender<Option<LostReason>>,
    /// The `lock` label of the metrics.
    metrics_name: Arc<str>,
    /// When the lock was taken (for the time-held metric).
    acquired_at: Instant,
    /// The local turns of the acquisition that took the lock: the process's next task for the
    /// key starts on Consul when this lock ends (released, lost, or its lease run out).
    turns: Mutex<Vec<Turn>>,
    /// What this client knows of the lock's keys (the release is remembered there).
    records: Option<Records>,
    /// When the keys are held with the client's shared session.
    shared: Option<SharedHold>,
}

/// A lock held with the client's shared session: the session (whose lease bounds this one),
/// this lock's use of it (dropped when the lock ends), and the lock's own end.
struct SharedHold {
    session: Arc<SharedSession>,
    use_: Mutex<Option<SessionUse>>,
    /// A lock timeout after the take, without renewal: the keys are given back then.
    deadline: Option<Instant>,
    /// The give-back has been started (by the release, or at the deadline): once is enough.
    given_back: AtomicBool,
}

/// What the holder knows of its session's life.
///
/// Consul promises to keep a session at least its TTL after the last renewal; its leader ends
/// it 2 × TTL after the last renewal it applied, and a new leader restarts that timer for every
/// session. So the lock counts as held until the send time of the last successful create or
/// renew plus the TTL, and, while renewals fail because Consul has no working leader (it
/// answers 5xx, or holds the request without answering, as it does during an election), until
/// 2 × TTL less a tenth of the TTL: no leader can end the session meanwhile, and a new one
/// restarts its timer. A refused connection (the local agent down) earns no such grace: Consul
/// may end every session of an agent that fails its health check.
///
/// A session that its node's failure can end (one that carries the node's health check) gets
/// no such grace: Consul's servers can declare the node failed within seconds of losing it,
/// whatever the TTL. Such a lock counts as held only the client's node lease after the send
/// time of the last request Consul answered with the session alive (`contact`: a create, a
/// renewal, or a consistent read of the session), and never past the TTL.
#[derive(Clone, Copy, Debug)]
struct Life {
    renewed: Instant,
    consul_leaderless: bool,
    contact: Instant,
}

impl Lease {
    /// The lease of a session that took `keys` (each with the index of the write that took
    /// it); `renewed` is the send time of its create or last renew.
    pub(crate) fn new(
        client: Client,
        label: String,
        keys: Vec<(String, u64)>,
        session_id: String,
        ttl: Duration,
        renewed: Instant,
    ) -> Lease {
        Lease {
            node_bound: client.node_bound(),
            client,
            label,
            fencing_token: keys.iter().map(|(_, t)| *t).max().unwrap_or_default(),
            keys,
            session_id,
            ttl,
            life: Mutex::new(Life {
                renewed,
                consul_leaderless: false,
                contact: renewed,
            }),
            state: watch::channel(None).0,
            metrics_name: Arc::from(metrics::UNNAMED),
            acquired_at: Instant::now(),
            turns: Mutex::new(Vec::new()),
            records: None,
            shared: None,
        }
    }

    /// The keys are held with the client's shared session (`shared`); the lock ends at
    /// `deadline` (its lock timeout after the take, unless it renews). The lease is the earlier
    /// of that deadline and the shared session's own lease.
    pub(crate) fn with_shared(mut self, shared: SessionUse, deadline: Option<Instant>) -> Lease {
        self.shared = Some(SharedHold {
            session: shared.session().clone(),
            use_: Mutex::new(Some(shared)),
            deadline,
            given_back: AtomicBool::new(false),
        });
        self
    }

    /// When a lock on the shared session without renewal ends (its keys given back).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.shared.as_ref().and_then(|s| s.deadline)
    }

    /// Whether the keys are held with the client's shared session, which renews itself.
    pub(crate) fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// Has the shared session tell this lock when it ends, so that `lost()` reports it.
    pub(crate) fn watch_shared_session(self: &Arc<Self>) {
        if let Some(shared) = &self.shared {
            let weak: std::sync::Weak<dyn SessionEnded> =
                Arc::downgrade(&(self.clone() as Arc<dyn SessionEnded>));
            shared.session.register(weak);
        }
    }

    /// Consul no longer knows the lease's session: the lock is lost, and so is every other lock
    /// on the client's shared session, when it is that one (the next acquire makes a new one).
    fn session_gone(&self) {
        match &self.shared {
            Some(shared) => {
                self.client
                    .inner
                    .shared
                    .end(&shared.session, Ended::Invalidated);
                // Told by the session already, unless it had ended before this lock took it.
                self.lose(LostReason::SessionInvalidated);
            }
            None => {
                self.lose(LostReason::SessionInvalidated);
            }
        }
    }

    /// The lock no longer uses the shared session (it may be retired once idle).
    fn stop_using_session(&self) {
        if let Some(shared) = &self.shared {
            drop(
                shared
                    .use_
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take(),
            );
        }
    }

    /// The lock keeps `turns` (this process's turns at its keys) until it ends, and notes its
    /// release in `records`; start the turns with [`Lease::start_turn`] once the lease is
    /// shared.
    pub(crate) fn with_turns(mut self, turns: Vec<Turn>, records: Records) -> Lease {
        *self.turns.get_mut().unwrap_or_else(PoisonError::into_inner) = turns;
        self.records = Some(records);
        self
    }

    /// Bounds the kept turns by this lease: should the lock never be released (a forgotten
    /// guard), the local waiters pass them on once the lease has run out.
    pub(crate) fn start_turn(self: &Arc<Self>) {
        let turns = self.turns.lock().unwrap_or_else(PoisonError::into_inner);
        for turn in turns.iter() {
            let weak: std::sync::Weak<Lease> = Arc::downgrade(self);
            turn.attach(weak);
        }
    }

    /// What this client knows of the lock's keys.
    pub(crate) fn records(&self) -> Option<&Records> {
        self.records.as_ref()
    }

    /// Whether the lock still has its local turns (no later lock of this client can hold its
    /// keys).
    pub(crate) fn holds_turn(&self) -> bool {
        !self
            .turns
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// The lock has ended (or, for a semaphore's slot, been given back): this process's next
    /// task for the keys may start on Consul.
    pub(crate) fn pass_turn(&self) {
        let turns = std::mem::take(&mut *self.turns.lock().unwrap_or_else(PoisonError::into_inner));
        drop(turns);
    }

    /// Sets the `lock` label of this lock's metrics.
    pub(crate) fn with_metrics_name(mut self, name: Arc<str>) -> Lease {
        self.metrics_name = name;
        self
    }

    /// The first key the session holds (a lock's key, a semaphore's contender key).
    pub(crate) fn key(&self) -> &str {
        self.keys
            .first()
            .map_or(self.label.as_str(), |(k, _)| k.as_str())
    }

    fn life(&self) -> Life {
        *self.life.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The moment after which Consul may have freed the key.
    pub(crate) fn valid_until(&self) -> Instant {
        if let Some(shared) = &self.shared {
            let session = shared.session.valid_until();
            return shared.deadline.map_or(session, |d| d.min(session));
        }
        let life = self.life();
        match self.node_bound {
            Some(node_lease) => (life.renewed + self.ttl).min(life.contact + node_lease),
            None if life.consul_leaderless => life.renewed + self.ttl * 2 - self.ttl / 10,
            None => life.renewed + self.ttl,
        }
    }

    /// When its node's failure can end the session: how long after the last confirmed
    /// contact the lock counts as held.
    pub(crate) fn node_bound(&self) -> Option<Duration> {
        self.node_bound
    }

    /// Consul answered a request sent at `sent` with the session alive.
    fn confirmed_at(&self, sent: Instant) {
        let mut life = self.life.lock().unwrap_or_else(PoisonError::into_inner);
        life.contact = life.contact.max(sent);
    }

    /// How often the lease is renewed (with `renew`): at TTL/2, and three times per node lease
    /// when its node's failure can end it.
    fn renew_interval(&self) -> Duration {
        let half = self.ttl / 2;
        self.node_bound.map_or(half, |node| half.min(node / 3))
    }

    /// How long before the lease ends a request about it stops waiting: a tenth of the TTL
    /// (or of the node lease, for a node-bound one).
    fn margin(&self) -> Duration {
        let tenth = self.ttl / 10;
        self.node_bound.map_or(tenth, |node| tenth.min(node / 10))
    }

    fn last_renewal(&self) -> Instant {
        match &self.shared {
            Some(shared) => shared.session.last_renewal(),
            None => self.life().renewed,
        }
    }

    fn renewed_at(&self, sent: Instant) {
        let mut life = self.life.lock().unwrap_or_else(PoisonError::into_inner);
        life.renewed = sent;
        life.consul_leaderless = false;
        life.contact = life.contact.max(sent);
    }

    /// A renewal failed in a way that shows Consul without a working leader.
    fn renewal_met_no_leader(&self) {
        self.life
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .consul_leaderless = true;
    }

    /// Whether the lock is still held: no loss seen, and the lease has not run out.
    pub(crate) fn is_held(&self) -> bool {
        self.state.borrow().is_none() && Instant::now() < self.valid_until()
    }

    /// Why the lock is no longer held, or `None` while it is.
    pub(crate) fn lost_reason(&self) -> Option<LostReason> {
        if let Some(reason) = self.state.borrow().clone() {
            return Some(reason);
        }
        (Instant::now() >= self.valid_until()).then(|| self.ran_out())
    }

    /// Why a lease that ran out without a recorded loss is over: its TTL, or (node-bound)
    /// Consul not confirming it in time.
    fn ran_out(&self) -> LostReason {
        if let Some(shared) = &self.shared {
            let session = shared.session.valid_until();
            if shared.deadline.is_none_or(|d| session < d) {
                return LostReason::RenewalFailed {
                    last_error: "the client's shared session was not renewed in time".into(),
                };
            }
            return LostReason::Expired;
        }
        let life = self.life();
        match self.node_bound {
            Some(node_lease) if life.contact + node_lease < life.renewed + self.ttl => {
                LostReason::Unconfirmed {
                    last_error: "no confirmation arrived in time".into(),
                }
            }
            _ => LostReason::Expired,
        }
    }

    /// Whether a loss has been recorded.
    pub(crate) fn is_lost(&self) -> bool {
        self.state.borrow().is_some()
    }

    /// Completes when a loss is recorded, with its reason.
    pub(crate) fn lost(&self) -> impl std::future::Future<Output = LostReason> + Send + 'static {
        let mut rx = self.state.subscribe();
        async move {
            match rx.wait_for(Option::is_some).await {
                Ok(state) => state.clone().unwrap_or(LostReason::Released),
                Err(_) => LostReason::Released,
            }
        }
    }

    /// Records the loss (the first reason wins). Returns whether this call recorded it.
    pub(crate) fn lose(&self, reason: LostReason) -> bool {
        let recorded = self.state.send_if_modified(|state| {
            if state.is_some() {
                return false;
            }
            // Counted before anyone waiting on `lost()` can see the loss.
            metrics::held(&self.metrics_name, self.acquired_at.elapsed());
            if reason != LostReason::Released {
                metrics::lost(&self.metrics_name, &reason);
            }
            *state = Some(reason.clone());
            true
        });
        if recorded && reason != LostReason::Released {
            tracing::warn!(key = %self.label, %reason, "consul lock lost");
            // A released lock passes its turn when the release is over.
            self.pass_turn();
            if reason != LostReason::Expired {
                // Nothing to give back (an expired lock on the shared session gives its keys
                // back, and uses the session until then).
                self.stop_using_session();
            }
        }
        recorded
    }
}

impl SessionEnded for Lease {
    fn session_ended(&self, why: &Ended) {
        self.lose(match why {
            Ended::RenewalFailed(last_error) => LostReason::RenewalFailed {
                last_error: last_error.clone(),
            },
            Ended::Invalidated | Ended::Idle => LostReason::SessionInvalidated,
        });
    }
}

impl LeaseEnd for Lease {
    fn valid_until(&self) -> Instant {
        Lease::valid_until(self)
    }
}

/// Reports the loss when the lease runs out (a lock without renewal): [`LostReason::Expired`]
/// at its TTL, or [`LostReason::Unconfirmed`] when a node-bound lease was not confirmed in
/// time. A node-bound lease's end moves with each confirmation, so it is read again on waking.
pub(crate) async fn expire_at_ttl(lease: &Lease) {
    loop {
        let until = lease.valid_until();
        tokio::time::sleep_until(until).await;
        if Instant::now() >= lease.valid_until() {
            lease.lose(lease.ran_out());
            return;
        }
    }
}

/// Keeps a node-bound lease without renewal confirmed: three times per node lease, a
/// consistent read of the session (which does not extend its TTL), until the TTL runs out or
/// the session is gone. A confirmation that fails is tried again at the next turn; the lease
/// counts as held only the node lease after the last one that succeeded.
pub(crate) async fn confirm(lease: &Lease) {
    let Some(node_lease) = lease.node_bound else {
        return;
    };
    let every = node_lease / 3;
    let ttl_end = lease.last_renewal() + lease.ttl;
    loop {
        tokio::time::sleep(every).await;
        let now = Instant::now();
        if now >= ttl_end {
            return;
        }
        let timeout = node_lease.min(lease.client.request_timeout());
        match lease
            .client
            .session_confirm(&lease.label, &lease.session_id, timeout)
            .await
        {
            Ok(true) => lease.confirmed_at(now),
            Ok(false) => {
                lease.lose(LostReason::SessionInvalidated);
                return;
            }
            Err(e) => tracing::debug!(error = %e, "confirming the session failed; retrying"),
        }
    }
}

/// Renews the session at TTL/2; retries failed renewals until the lease runs out (see
/// [`Life`]: longer while Consul has no leader), then reports the loss. Each attempt stops
/// waiting a tenth of the TTL before the lease ends, so that a request Consul holds during an
/// election ends as "no answer" (which extends the lease) before the lease is over.
pub(crate) async fn renew(lease: &Lease) {
    let half = lease.renew_interval();
    // A failed renewal is retried after a tenth of the TTL: several tries fit in the half TTL
    // left, bounded to 50 ms..1 s so that short test TTLs and long TTLs both retry sensibly.
    let retry = lease
        .margin()
        .clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut next = lease.last_renewal() + half;
    let mut last_error = String::new();
    loop {
        tokio::time::sleep_until(next).await;
        let valid_until = lease.valid_until();
        let now = Instant::now();
        if now >= valid_until {
            let last_error = std::mem::take(&mut last_error);
            lease.lose(match lease.ran_out() {
                LostReason::Unconfirmed { .. } => LostReason::Unconfirmed { last_error },
                _ => LostReason::RenewalFailed { last_error },
            });
            return;
        }
        let timeout = (valid_until - now)
            .saturating_sub(lease.margin())
            .max(Duration::from_millis(50))
            .min(lease.client.request_timeout());
        let client = &lease.client;
        match client
            .session_renew(&lease.label, &lease.session_id, timeout)
            .await
        {
            Ok(true) => {
                lease.renewed_at(now);
                metrics::session_renewed(&lease.metrics_name);
                next = now + half;
                tracing::trace!("session renewed");
            }
            Ok(false) => {
                lease.lose(LostReason::SessionInvalidated);
                return;
            }
            Err(e @ crate::Error::PermissionDenied { .. }) => {
                // The token may no longer renew (its ACLs changed, or it was deleted): the
                // lock cannot be kept, so the holder hears it now rather than at the TTL.
                lease.lose(LostReason::RenewalFailed {
                    last_error: e.to_string(),
                });
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "renewal failed; retrying");
                if e.shows_no_leader() {
                    lease.renewal_met_no_leader();
                }
                last_error = e.to_string();
                next = Instant::now() + retry;
            }
        }
    }
}

/// Watches every key the lease holds with blocking queries (one each) and reports the loss
/// when any of them is deleted or held by another session.
pub(crate) async fn watch(lease: &Lease) {
    // Each watch returns only once it has recorded a loss: the first one is enough.
    match lease.keys.as_slice() {
        [] => {}
        [(key, index)] => watch_entry(lease, key, *index).await,
        keys => {
            let watches = keys
                .iter()
                .map(|(key, index)| Box::pin(watch_entry(lease, key, *index)));
            futures::future::select_all(watches).await;
        }
    }
}

/// Watches `key`, taken by the lease's session with the write at `index`, with blocking
/// queries; reports when it is deleted or held by another session.
async fn watch_entry(lease: &Lease, key: &str, index: u64) {
    // Consul's own default wait for a blocking query; a watch costs one request per minute.
    const WAIT: Duration = Duration::from_secs(60);
    let mut index = index;
    // A failed watch is retried from 100 ms up to 5 s: no deadline, so no hurry.
    let mut backoff = Backoff::between(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        let blocking = Blocking {
            index,
            wait: WAIT,
            until: None,
        };
        match lease.client.kv_block(key, key, false, blocking).await {
            Ok((entries, next)) => {
                backoff.reset();
                match entries.into_iter().next() {
                    Some(e) if e.session.as_deref() == Some(lease.session_id.as_str()) => {}
                    Some(e) => {
                        lease.lose(LostReason::KeyTakenOver { by: e.session });
                        return;
                    }
                    None => {
                        // With Behavior=delete a session that ended (destroyed, invalidated, its
                        // node deregistered) deletes the key; a key deleted from outside leaves
                        // the session. One read tells them apart, for `lost()` to say which.
                        let timeout = lease.client.request_timeout();
                        let session = &lease.session_id;
                        let alive = lease.client.session_confirm(key, session, timeout).await;
                        match alive {
                            Ok(false) => lease.session_gone(),
                            _ => {
                                lease.lose(LostReason::KeyTakenOver { by: None });
                            }
                        }
                        return;
                    }
                }
                index = next;
            }
            Err(e) => {
                tracing::debug!(error = %e, "watching the key failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

/// Releases: destroys the session (a lock on the shared session gives its keys back instead,
/// [`Client::txn_give_back_taken`]), retrying transient failures (a leader election, a reset
/// connection) until Consul confirms it or would have ended the session on its own (see
/// [`teardown`]). A lost release would keep the key until its TTL and stall every waiter.
/// A confirmed release is remembered by the [`queue`], so that this client does not take the
/// key again at once ahead of older waiters.
pub(crate) async fn release(lease: &Lease) -> Result<()> {
    let span = tracing::info_span!("consul_lock.release", key = %lease.label);
    async move {
        let client = &lease.client;
        let on_retry = || {
            metrics::release_retry(&lease.metrics_name);
            // Consul did not confirm at once (an election, a lost answer): the retries go
            // on, and this process's next task for the key need not wait for them; it
            // meets the key in Consul, held or free (a give-back deletes a key only at the
            // index its lock took it with, so it never deletes a later lock's).
            lease.pass_turn();
        };
        let result = match &lease.shared {
            Some(shared) => {
                if shared.given_back.swap(true, Ordering::SeqCst) {
                    // Given back already (at its deadline): nothing more to send.
                    lease.pass_turn();
                    return Ok(());
                }
                // The key is held until the give-back or the shared session's end.
                let session = &shared.session;
                let end = teardown::SessionEnd::after(session.last_renewal(), session.ttl)
                    .not_before(Instant::now() + client.request_timeout());
                let all = AtomicBool::new(true);
                let mut result = teardown::until_confirmed(client, end, on_retry, |timeout| {
                    let give_back = client.txn_give_back_taken(&lease.label, &lease.keys, timeout);
                    let all = &all;
                    async move {
                        give_back
                            .await
                            .map(|given| all.store(given, Ordering::SeqCst))
                    }
                })
                .await;
                if result.is_ok() && !all.load(Ordering::SeqCst) && lease.holds_turn() {
                    // A key not at the index this lock took it with, while no later lock of
                    // this client can hold it (this one still has the turn): rewritten while
                    // held (a fenced write to the lock's own key, an operator's write), so
                    // whatever this session holds of it is this lock's.
                    for (key, _) in &lease.keys {
                        let timeout = client.request_timeout();
                        result = client.txn_give_back(key, &lease.session_id, timeout).await;
                        if result.is_err() {
                            break;
                        }
                    }
                }
                if let Err(e) = &result {
                    // Unconfirmed for good: end the shared session, so that no key of this
                    // client stays held by a session it goes on renewing.
                    if client.inner.shared.end(session, Ended::RenewalFailed(e.to_string())) {
                        shared_session::destroy(client, session).await;
                    }
                }
                lease.stop_using_session();
                result
            }
            None => {
                // Never give up sooner than one request timeout, even on a lease that looks over.
                let end = teardown::SessionEnd::after(lease.last_renewal(), lease.ttl)
                    .not_before(Instant::now() + client.request_timeout());
                teardown::destroy_until_confirmed(
                    client,
                    &lease.label,
                    &lease.session_id,
                    end,
                    on_retry,
                )
                .await
            }
        };
        match &result {
            Ok(()) => {
                if let Some(records) = &lease.records {
                    records.note_release();
                }
                tracing::debug!("released");
            }
            Err(e) => {
                metrics::release_failed(&lease.metrics_name);
                tracing::warn!(error = %e, "release failed; the lock timeout (TTL) will free the key")
            }
        }
        lease.pass_turn();
        result
    }
    .instrument(span)
    .await
}
