//! A held lock: the guard that releases it, and the handle that observes it. The guard decides
//! where its background work runs (renewal, key watch, expiry timer, release on drop); what
//! that work does is the protocol's [`crate::protocol::lease`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tokio::task::AbortHandle;
use tracing::Instrument as _;

use crate::error::DisplayDuration;
use crate::exec;
use crate::protocol::key_state::{Caller, HeldMark};
use crate::protocol::lease::{self, Lease};
use crate::{Fence, LostReason, Result};

/// The guard's and its handles' view of one held lock.
struct Shared {
    lease: Arc<Lease>,
    renew: bool,
    /// Whether the timer that reports the TTL running out and the key watch have been started
    /// (without renewal they are started by the first `lost()`: `is_held()` needs no task).
    expiry_timer: AtomicBool,
    /// The key watch, for a lock without renewal to start at its first `lost()`.
    watch: Mutex<Option<BoxFuture<'static, ()>>>,
    /// The renewal, key watch and expiry timer running for this lock.
    tasks: Mutex<Vec<AbortHandle>>,
}

impl Shared {
    fn add_task(&self, work: impl Future<Output = ()> + Send + 'static) {
        // Spawning fails only if the worker thread cannot start; the lock is then not renewed
        // (or its expiry not reported by `lost()`), and `is_held` still stops at the TTL.
        if let Ok(task) = exec::spawn_task(work) {
            let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
            tasks.push(task);
        }
    }

    fn stop_tasks(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        for task in tasks.drain(..) {
            task.abort();
        }
    }
}

/// A cloneable, `'static` view of a held lock: key, fencing token, whether it is still held,
/// and a future that completes when it is lost. Get one from [`LockGuard::handle`]; it does
/// not keep the lock alive.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// use consul_lock_runtime::{Lock, LockHandle};
/// let guard = Lock::new("lock-handle-example").client(&client).acquire().await?;
/// let handle: LockHandle = guard.handle();
/// let checker = handle.clone();
/// let task = tokio::spawn(async move { checker.is_held() });
/// assert!(task.await?);
/// drop(guard); // releases the lock: the handle does not keep it alive
/// assert!(!handle.is_held());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct LockHandle {
    shared: Arc<Shared>,
}

impl LockHandle {
    /// The full Consul key.
    #[must_use]
    pub fn key(&self) -> &str {
        self.shared.lease.key()
    }

    /// The Consul session that holds the key.
    #[must_use]
    pub fn session_id(&self) -> &str {
        &self.shared.lease.session_id
    }

    /// The fencing token: the `ModifyIndex` of the write that acquired the key. It grows for
    /// every acquisition of any key, so a store that remembers the highest token it has seen
    /// can reject writes from a holder that lost the lock without knowing.
    #[must_use]
    pub fn fencing_token(&self) -> u64 {
        self.shared.lease.fencing_token
    }

    /// Whether the lock is still held, by what the holder knows: not released, no loss seen,
    /// and the lease has not run out. Answered locally, without a request.
    ///
    /// **What it promises.** While it answers `true`, no other session can hold the key,
    /// because Consul ends a session without checks only by its TTL (at the earliest a TTL
    /// after the send time of the last successful create or renew), a destroy, or the
    /// deregistration of its node. The lease runs:
    ///
    /// - the TTL from the send time of the last successful create or renewal (a lock on the
    ///   client's shared session: of that session, and never past the lock's own deadline, a
    ///   lock timeout after the write that took it, unless it renews);
    /// - while renewals fail because Consul has no working leader (5xx, or no answer, as in an
    ///   election or a frozen or cut-off client agent), 2 × TTL less a tenth of it: Consul's
    ///   leader ends a session only 2 × TTL after the last renewal it applied, and a new leader
    ///   restarts that timer;
    /// - for a lease its node's failure can end (sessions with the node's health check, see
    ///   [`danger_node_health_check`](crate::ClientBuilder::danger_node_health_check), or taken
    ///   through a server of a cluster, whose node the leader deregisters when it fails): at
    ///   most the [node lease](crate::ClientBuilder::node_lease), 3 s, after the last request
    ///   Consul answered with the session alive.
    ///
    /// **What it cannot promise.** It cannot see what others do to the lock: an operator's
    /// session destroy, the node deregistered (`consul force-leave`, `PUT
    /// /v1/catalog/deregister`, a client agent's graceful leave, reaping after
    /// `reconnect_timeout`), the key deleted; [`lost`](Self::lost) reports those as soon as the
    /// holder reaches Consul. It relies on this machine's monotonic clock advancing as Consul's
    /// does (a machine suspended to memory, or a VM whose clock does not catch up after a
    /// pause, breaks it). And `true` says nothing about the next moment: a holder paused
    /// between this check and its write (a GC pause, a stopped VM, `SIGSTOP`) writes later,
    /// perhaps after the lease ended. Write to Consul through the lock's [`fence`](Self::fence),
    /// which Consul refuses once the session no longer holds the key, and give other systems
    /// the [fencing token](Self::fencing_token).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use std::time::Duration;
    /// # let server = consul_lock_testkit::TestServer::start_with(consul_lock_testkit::ServerConfig::default().session_ttl_min(Duration::from_secs(1)))?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).session_ttl_min(Duration::from_secs(1)).build()?;
    /// use consul_lock_runtime::{Lock, LostReason};
    /// let lock = Lock::new("handle-is-held-example").client(&client).lock_timeout(Duration::from_secs(1));
    /// let guard = lock.acquire_blocking()?;
    /// let handle = guard.handle();
    /// assert!(handle.is_held());
    /// std::thread::sleep(Duration::from_millis(1100)); // no renewal: the TTL runs out
    /// assert!(!handle.is_held());
    /// assert_eq!(handle.lost_reason(), Some(LostReason::Expired));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn is_held(&self) -> bool {
        self.shared.lease.is_held()
    }

    /// Why the lock is no longer held, or `None` while it is.
    #[must_use]
    pub fn lost_reason(&self) -> Option<LostReason> {
        self.shared.lease.lost_reason()
    }

    /// The moment after which Consul may have freed the key, as the lease stands now (a
    /// renewal moves it on).
    pub(crate) fn valid_until(&self) -> tokio::time::Instant {
        self.shared.lease.valid_until()
    }

    /// The client the lock was taken with.
    pub(crate) fn client(&self) -> &crate::Client {
        &self.shared.lease.client
    }

    /// Writes that Consul applies only while this lock's session still holds the key (see
    /// [`Fence`]): a holder that lost the lock, knowing it or not, is refused.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let guard = consul_lock_runtime::Lock::new("handle-fence-example").client(&client).acquire().await?;
    /// let handle = guard.handle();
    /// let writer = tokio::spawn(async move { handle.fence().put("jobs/progress", "50%").await });
    /// assert!(writer.await?.is_ok());
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn fence(&self) -> Fence {
        let lease = &self.shared.lease;
        let checks = lease
            .keys
            .iter()
            .map(|(key, _)| (key.clone(), lease.session_id.clone()))
            .collect();
        let fence = Fence::new(lease.client.clone(), checks);
        if lease.is_shared() {
            // Another lock of this client may hold the key later with the same session.
            let indexes = lease.keys.iter().map(|(_, index)| *index).collect();
            let weak = Arc::downgrade(lease);
            let current = move || weak.upgrade().is_some_and(|l| l.holds_turn());
            return fence.at_indexes(crate::fence::AtIndexes::new(indexes, current));
        }
        fence
    }

    /// A future that completes when the lock is lost (or released), with the reason. Use it
    /// to stop work that must only run under the lock.
    ///
    /// It completes when the holder learns the lock is gone: at once when its session is
    /// destroyed or invalidated (an operator, the node deregistered), the key deleted or
    /// taken over, or a renewal refused for the ACL token, as soon as the holder can reach
    /// Consul (the key is watched with blocking queries: from the acquisition with `renew`,
    /// from the first call of `lost()` without it; reads, no Raft write); and when the lease
    /// runs out by the holder's own count (see [`is_held`](Self::is_held)), within a moment of
    /// `is_held()` turning false. A holder that cannot reach Consul (its agent frozen or cut
    /// off) learns of a loss only when it can again, or when its lease runs out.
    ///
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use std::time::Duration;
    /// let guard = consul_lock_runtime::Lock::new("jobs/long").client(&client).renew(true).acquire().await?;
    /// let do_the_work = tokio::time::sleep(Duration::from_millis(20));
    /// tokio::select! {
    ///     reason = guard.lost() => eprintln!("stopping: {reason}"),
    ///     () = do_the_work => println!("done under the lock"),
    /// }
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub fn lost(&self) -> Lost {
        let shared = &self.shared;
        if !shared.renew
            && !shared.lease.is_lost()
            && !shared.expiry_timer.swap(true, Ordering::SeqCst)
        {
            // Someone waits for the loss: report the TTL running out, and watch the key (a
            // blocking query a minute, no Raft write) so that a session ended from outside, a
            // node deregistered or the key deleted is reported at once.
            let lease = shared.lease.clone();
            shared.add_task(async move { lease::expire_at_ttl(&lease).await });
            let watch = shared
                .watch
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(watch) = watch {
                shared.add_task(watch);
            }
        }
        Lost {
            inner: Box::pin(shared.lease.lost()),
        }
    }
}

impl fmt::Debug for LockHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockHandle")
            .field("key", &self.key())
            .field("session_id", &self.session_id())
            .field("fencing_token", &self.fencing_token())
            .field("held", &self.is_held())
            .finish()
    }
}

/// The future returned by [`LockGuard::lost`] / [`LockHandle::lost`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// use consul_lock_runtime::{Lock, Lost, LostReason};
/// let guard = Lock::new("lost-example").client(&client).acquire().await?;
/// let lost: Lost = guard.lost();
/// guard.release().await?;
/// assert_eq!(lost.await, LostReason::Released);
/// # Ok(()) }
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct Lost {
    inner: BoxFuture<'static, LostReason>,
}

impl Future for Lost {
    type Output = LostReason;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<LostReason> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Lost")
    }
}

/// A held lock. Dropping it releases the lock in the background without blocking; call
/// [`release`](Self::release) (or [`release_blocking`](Self::release_blocking)) to release it
/// and see the outcome.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// use consul_lock_runtime::{Lock, LostReason};
/// let lock = Lock::new("reports/daily").client(&client);
/// let guard = lock.acquire().await?;
/// println!("{} held with token {}", guard.key(), guard.fencing_token());
/// assert!(guard.is_held());
/// assert_eq!(guard.lost_reason(), None);
/// let handle = guard.handle();
/// guard.release().await?;
/// assert_eq!(handle.lost_reason(), Some(LostReason::Released));
/// // A later holder always has a higher fencing token.
/// let next = lock.acquire().await?;
/// assert!(next.fencing_token() > handle.fencing_token());
/// # next.release().await?;
/// # Ok(()) }
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard {
    handle: LockHandle,
    armed: bool,
    /// This key held by the task (or thread) that acquired it, until release or drop.
    held: Option<HeldMark>,
}

impl LockGuard {
    /// Wraps a freshly acquired lock (of any kind) and, when `renew` is on, starts its
    /// renewal and the watch of every key it holds on the worker. `caller` (the task or thread
    /// that acquired it) holds the keys until the guard is released or dropped, or the lock is
    /// lost.
    pub(crate) fn start(lease: Lease, renew: bool, caller: Caller) -> LockGuard {
        let lease = Arc::new(lease);
        lease.start_turn();
        lease.watch_shared_session();
        let span = tracing::debug_span!("consul_lock.monitor", key = %lease.label);
        let watched = lease.clone();
        let watch: BoxFuture<'static, ()> =
            Box::pin(async move { lease::watch(&watched).await }.instrument(span.clone()));
        // With renewal the keys are watched from the start; without, from the first `lost()`.
        let (watch_now, watch_later) = if renew {
            (Some(watch), None)
        } else {
            (None, Some(watch))
        };
        let shared = Arc::new(Shared {
            lease,
            renew,
            expiry_timer: AtomicBool::new(false),
            watch: Mutex::new(watch_later),
            tasks: Mutex::new(Vec::new()),
        });
        if let Some(deadline) = shared.lease.deadline() {
            // A lock on the shared session ends at its deadline: the key is given back then
            // (as a counted clean-up, which the guard's tasks stopping does not cut short), and
            // `lost()` says the lock timeout ran out.
            let ending = shared.lease.clone();
            shared.add_task(async move {
                tokio::time::sleep_until(deadline).await;
                ending.lose(LostReason::Expired);
                exec::spawn_cleanup(async move {
                    // `release` logs a failure (and then ends the shared session).
                    let _ = lease::release(&ending).await;
                });
            });
        }
        if let Some(watch) = watch_now {
            if !shared.lease.is_shared() {
                // The shared session renews itself.
                let renewed = shared.lease.clone();
                shared.add_task(async move { lease::renew(&renewed).await }.instrument(span));
            }
            shared.add_task(watch);
        } else if shared.lease.node_bound().is_some() {
            // Its node's failure can end the session at any moment: keep confirming it.
            let span = tracing::debug_span!("consul_lock.confirm", key = %shared.lease.label);
            let confirmed = shared.lease.clone();
            shared.add_task(async move { lease::confirm(&confirmed).await }.instrument(span));
        }
        let handle = LockHandle { shared };
        let watched = handle.clone();
        LockGuard {
            held: Some(caller.register(move || watched.is_held())),
            handle,
            armed: true,
        }
    }

    /// The full Consul key.
    #[must_use]
    pub fn key(&self) -> &str {
        self.handle.key()
    }

    /// The Consul session that holds the key.
    #[must_use]
    pub fn session_id(&self) -> &str {
        self.handle.session_id()
    }

    /// The lock's lease.
    pub(crate) fn lease(&self) -> Arc<Lease> {
        self.handle.shared.lease.clone()
    }

    /// Each key the lock holds, with the index of the write that took it.
    pub(crate) fn held(&self) -> &[(String, u64)] {
        &self.handle.shared.lease.keys
    }

    /// The fencing token (see [`LockHandle::fencing_token`]).
    #[must_use]
    pub fn fencing_token(&self) -> u64 {
        self.handle.fencing_token()
    }

    /// Whether the lock is still held (see [`LockHandle::is_held`]).
    #[must_use]
    pub fn is_held(&self) -> bool {
        self.handle.is_held()
    }

    /// Why the lock is no longer held, or `None` while it is.
    #[must_use]
    pub fn lost_reason(&self) -> Option<LostReason> {
        self.handle.lost_reason()
    }

    /// A future that completes when the lock is lost (see [`LockHandle::lost`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::{Lock, LostReason};
    /// use std::time::Duration;
    ///
    /// let guard = Lock::new("guard-lost-example").client(&client).renew(true).acquire().await?;
    /// client.destroy_session(guard.session_id()).await?; // the lock is taken away
    /// let reason = tokio::time::timeout(Duration::from_secs(5), guard.lost()).await?;
    /// assert_eq!(reason, LostReason::SessionInvalidated);
    /// assert_eq!(guard.lost_reason(), Some(reason));
    /// # Ok(()) }
    /// ```
    pub fn lost(&self) -> Lost {
        self.handle.lost()
    }

    /// Writes that Consul applies only while this lock's session still holds the key (see
    /// [`Fence`]).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let guard = consul_lock_runtime::Lock::new("guard-fence-example").client(&client).acquire_blocking()?;
    /// guard.fence().put_blocking("reports/daily/state", "done")?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn fence(&self) -> Fence {
        self.handle.fence()
    }

    /// A cloneable, `'static` view of this lock, for tasks that need to check it.
    #[must_use]
    pub fn handle(&self) -> LockHandle {
        self.handle.clone()
    }

    /// Releases the lock: gives the key back (on the client's shared session, one transaction
    /// that deletes the key while this lock holds it; with a session of its own, destroys the
    /// session, which deletes the key). The release runs to
    /// completion even if this future is dropped.
    ///
    /// A release that Consul does not confirm within the client's request timeout (a leader
    /// election, the agent unreachable) is not an error: it goes on in the background until
    /// Consul confirms it ([`pending_releases`](crate::pending_releases) counts it,
    /// [`flush_releases`](crate::flush_releases) waits for it), and the TTL frees the key at
    /// the latest.
    ///
    /// # Errors
    ///
    /// [`Error::PermissionDenied`](crate::Error::PermissionDenied) or
    /// [`Error::ConsulRefused`](crate::Error::ConsulRefused) (4xx) when Consul refused to
    /// destroy the session (no retry mends that); the key is then freed by the TTL.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Lock;
    /// let guard = Lock::new("release-example").client(&client).acquire().await?;
    /// let key = guard.key().to_owned();
    /// guard.release().await?;
    /// assert!(client.kv_get(&key).await?.is_none()); // the session and the key are gone
    /// # Ok(()) }
    /// ```
    pub async fn release(mut self) -> Result<()> {
        let lease = self.disarm();
        exec::run_to_completion(release_patiently(lease)).await
    }

    /// Releases the lock, blocking the calling thread (safe inside a tokio runtime).
    ///
    /// # Errors
    ///
    /// As [`release`](Self::release).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Lock;
    /// let lock = Lock::new("release-blocking-example").client(&client);
    /// # let other = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let guard = lock.acquire_blocking()?;
    /// let elsewhere = lock.clone().client(&other); // as another process
    /// assert!(elsewhere.try_acquire_blocking()?.is_none()); // held
    /// guard.release_blocking()?;
    /// assert!(lock.try_acquire_blocking()?.is_some()); // free again
    /// # Ok(()) }
    /// ```
    pub fn release_blocking(mut self) -> Result<()> {
        let lease = self.disarm();
        exec::run_blocking(release_patiently(lease))
    }

    /// Records the release and stops the renewal and key watch, without releasing yet: a
    /// semaphore's slot deletes its contender key before the session ends, which the key watch
    /// must not report as a loss.
    pub(crate) fn mark_released(&self) {
        let shared = &self.handle.shared;
        shared.stop_tasks();
        shared.lease.lose(LostReason::Released);
    }

    fn disarm(&mut self) -> Arc<Lease> {
        self.armed = false;
        self.held = None;
        let shared = &self.handle.shared;
        shared.stop_tasks();
        shared.lease.lose(LostReason::Released);
        shared.lease.clone()
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.armed {
            let lease = self.disarm();
            exec::spawn_cleanup(async move {
                // `release` logs a failure; the TTL frees the key.
                let _ = lease::release(&lease).await;
            });
        }
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard")
            .field("key", &self.key())
            .field("session_id", &self.session_id())
            .field("fencing_token", &self.fencing_token())
            .field("held", &self.is_held())
            .finish()
    }
}

/// An explicit release: waits for Consul's confirmation up to the client's request timeout;
/// past that the release goes on in the background (counted by
/// [`flush_releases`](crate::flush_releases)) and the caller is not held up by it. Only a
/// refusal no retry mends is an error: a release given up on transient failures ends when
/// Consul would have ended the session on its own.
async fn release_patiently(lease: Arc<Lease>) -> Result<()> {
    let patience = lease.client.request_timeout();
    let key = lease.label.clone();
    let mut work = exec::MustFinish::new(async move { lease::release(&lease).await });
    match tokio::time::timeout(patience, &mut work).await {
        Ok(Err(e)) if !e.is_transient() => Err(e),
        Ok(_) => Ok(()),
        // Dropping the unfinished release hands the rest of it to the worker.
        Err(_) => {
            tracing::info!(
                key = %key,
                "Consul did not confirm the release within {}; it goes on in the background \
                 until Consul confirms it (flush_releases() waits for it), and the TTL frees \
                 the key at the latest",
                DisplayDuration(patience)
            );
            Ok(())
        }
    }
}
