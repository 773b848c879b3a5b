//! A held lock: the guard that releases it, the handle that observes it, and the background
//! tasks that renew its session and notice when it is lost.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::error::DisplayDuration;
use crate::{background, teardown};
use crate::{Client, Error, Result};

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
    /// Renewals failed (Consul unreachable or without a leader) until the TTL ran out.
    RenewalFailed {
        /// The last error seen.
        last_error: String,
    },
    /// Consul no longer knows the session: it was destroyed from outside or invalidated.
    SessionInvalidated,
    /// The key was deleted, or is now held by another session.
    KeyTakenOver {
        /// The session now holding the key, if any.
        by: Option<String>,
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
            LostReason::SessionInvalidated => {
                f.write_str("Consul no longer knows the session (destroyed from outside or invalidated)")
            }
            LostReason::KeyTakenOver { by: Some(by) } => write!(f, "the key is now held by session {by}"),
            LostReason::KeyTakenOver { by: None } => f.write_str("the key was deleted or released from outside"),
            LostReason::Released => f.write_str("it was released"),
        }
    }
}

pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) key: String,
    pub(crate) session_id: String,
    pub(crate) fencing_token: u64,
    pub(crate) ttl: Duration,
    renew: bool,
    /// Whether the timer that reports the TTL running out has been started (without renewal
    /// it is started by the first `lost()`: `is_held()` needs no task).
    expiry_timer: AtomicBool,
    /// What is known of the session's life (see [`Lease`]).
    lease: Mutex<Lease>,
    state: watch::Sender<Option<LostReason>>,
    tasks: Mutex<Vec<AbortHandle>>,
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
#[derive(Clone, Copy, Debug)]
struct Lease {
    renewed: Instant,
    consul_leaderless: bool,
}

impl Shared {
    fn lease(&self) -> Lease {
        *self.lease.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The moment after which Consul may have freed the key.
    fn valid_until(&self) -> Instant {
        let lease = self.lease();
        if lease.consul_leaderless {
            lease.renewed + self.ttl * 2 - self.ttl / 10
        } else {
            lease.renewed + self.ttl
        }
    }

    fn last_renewal(&self) -> Instant {
        self.lease().renewed
    }

    fn renewed_at(&self, sent: Instant) {
        *self.lease.lock().unwrap_or_else(PoisonError::into_inner) = Lease {
            renewed: sent,
            consul_leaderless: false,
        };
    }

    /// A renewal failed in a way that shows Consul without a working leader.
    fn renewal_met_no_leader(&self) {
        self.lease
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .consul_leaderless = true;
    }

    /// Records the loss (the first reason wins). Returns whether this call recorded it.
    fn lose(&self, reason: LostReason) -> bool {
        let recorded = self.state.send_if_modified(|state| {
            if state.is_none() {
                *state = Some(reason.clone());
                true
            } else {
                false
            }
        });
        if recorded && reason != LostReason::Released {
            tracing::warn!(key = %self.key, %reason, "consul lock lost");
        }
        recorded
    }

    fn stop_tasks(&self) {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .drain(..)
        {
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
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Lock;
    /// let lock = Lock::new("jobs/handle-key").key_prefix("locks/docs/").client(&client);
    /// let key = lock.hold(|handle| async move { handle.key().to_owned() }).await?;
    /// assert_eq!(key, "locks/docs/jobs/handle-key");
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn key(&self) -> &str {
        &self.shared.key
    }

    /// The Consul session that holds the key.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Lock;
    /// let guard = Lock::new("handle-session-id-example").client(&client).acquire().await?;
    /// let handle = guard.handle();
    /// let entry = client.kv_get(handle.key()).await?.expect("held");
    /// assert_eq!(entry.session.as_deref(), Some(handle.session_id()));
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn session_id(&self) -> &str {
        &self.shared.session_id
    }

    /// The fencing token: the `ModifyIndex` of the write that acquired the key. It grows for
    /// every acquisition of any key, so a store that remembers the highest token it has seen
    /// can reject writes from a holder that lost the lock without knowing.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Lock;
    /// let lock = Lock::new("handle-fencing-token-example").client(&client);
    /// let first = lock.hold(|handle| async move { handle.fencing_token() }).await?;
    /// let second = lock.hold(|handle| async move { handle.fencing_token() }).await?;
    /// assert!(second > first); // a later holder always has a higher token
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn fencing_token(&self) -> u64 {
        self.shared.fencing_token
    }

    /// Whether the lock is still held: not released, no loss seen, and the lease has not run
    /// out: the TTL since the last successful renewal (or the acquire) or, while renewals fail
    /// because Consul has no leader (an election), 2 × TTL less a tenth, as Consul's leader
    /// ends a session only 2 × TTL after its last renewal and a new leader restarts that timer.
    /// It never answers `true` after the moment Consul may have freed the key.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Lock;
    /// let guard = Lock::new("handle-is-held-example").client(&client).acquire().await?;
    /// let handle = guard.handle();
    /// assert!(handle.is_held());
    /// guard.release().await?;
    /// assert!(!handle.is_held());
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn is_held(&self) -> bool {
        self.shared.state.borrow().is_none() && Instant::now() < self.shared.valid_until()
    }

    /// Why the lock is no longer held, or `None` while it is.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::{Lock, LostReason};
    /// let guard = Lock::new("handle-lost-reason-example").client(&client).acquire().await?;
    /// let handle = guard.handle();
    /// assert_eq!(handle.lost_reason(), None);
    /// guard.release().await?;
    /// assert_eq!(handle.lost_reason(), Some(LostReason::Released));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn lost_reason(&self) -> Option<LostReason> {
        if let Some(reason) = self.shared.state.borrow().clone() {
            return Some(reason);
        }
        (Instant::now() >= self.shared.valid_until()).then_some(LostReason::Expired)
    }

    /// A future that completes when the lock is lost (or released), with the reason. Use it
    /// to stop work that must only run under the lock:
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
            && shared.state.borrow().is_none()
            && !shared.expiry_timer.swap(true, Ordering::SeqCst)
        {
            if let Ok(task) = background::spawn_task(expire_at_ttl(shared.clone())) {
                shared
                    .tasks
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(task);
            }
        }
        let mut rx = self.shared.state.subscribe();
        Lost {
            inner: Box::pin(async move {
                match rx.wait_for(Option::is_some).await {
                    Ok(state) => state.clone().unwrap_or(LostReason::Released),
                    Err(_) => LostReason::Released,
                }
            }),
        }
    }
}

impl fmt::Debug for LockHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockHandle")
            .field("key", &self.shared.key)
            .field("session_id", &self.shared.session_id)
            .field("fencing_token", &self.shared.fencing_token)
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
/// use consul_lock_runtime::Lock;
/// let guard = Lock::new("reports/daily").client(&client).acquire().await?;
/// println!("{} held with token {}", guard.key(), guard.fencing_token());
/// assert!(guard.is_held());
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct LockGuard {
    handle: LockHandle,
    armed: bool,
}

impl LockGuard {
    /// Wraps a freshly acquired lock and, when `renew` is on, starts its renewal and key
    /// monitoring on the worker.
    pub(crate) fn start(
        client: Client,
        key: String,
        session_id: String,
        fencing_token: u64,
        ttl: Duration,
        valid_from: Instant,
        renew: bool,
    ) -> LockGuard {
        let (state, _) = watch::channel(None);
        let shared = Arc::new(Shared {
            client,
            key,
            session_id,
            fencing_token,
            ttl,
            renew,
            expiry_timer: AtomicBool::new(false),
            lease: Mutex::new(Lease {
                renewed: valid_from,
                consul_leaderless: false,
            }),
            state,
            tasks: Mutex::new(Vec::new()),
        });
        if renew {
            let span = tracing::debug_span!("consul_lock.monitor", key = %shared.key);
            let tasks = [
                background::spawn_task(renew_loop(shared.clone()).instrument(span.clone())),
                background::spawn_task(watch_key(shared.clone()).instrument(span)),
            ];
            // Spawning fails only if the worker thread cannot start; the lock is then not
            // renewed, and `is_held` still stops at the TTL.
            *shared.tasks.lock().unwrap_or_else(PoisonError::into_inner) =
                tasks.into_iter().filter_map(Result::ok).collect();
        }
        LockGuard {
            handle: LockHandle { shared },
            armed: true,
        }
    }

    /// The full Consul key.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Lock;
    /// let lock = Lock::new("jobs/guard-key").key_prefix("locks/docs/").client(&client);
    /// let guard = lock.acquire().await?;
    /// assert_eq!(guard.key(), "locks/docs/jobs/guard-key");
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn key(&self) -> &str {
        self.handle.key()
    }

    /// The Consul session that holds the key.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Lock;
    /// let guard = Lock::new("guard-session-id-example").client(&client).acquire().await?;
    /// let sessions = client.sessions().await?;
    /// assert!(sessions.iter().any(|s| s.id == guard.session_id()));
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn session_id(&self) -> &str {
        self.handle.session_id()
    }

    /// The fencing token (see [`LockHandle::fencing_token`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Lock;
    /// let lock = Lock::new("guard-fencing-token-example").client(&client);
    /// let mut highest_seen = 0; // what a fenced store remembers
    /// for _ in 0..2 {
    ///     let guard = lock.acquire().await?;
    ///     assert!(guard.fencing_token() > highest_seen); // newer holder, higher token
    ///     highest_seen = guard.fencing_token();
    ///     guard.release().await?;
    /// }
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn fencing_token(&self) -> u64 {
        self.handle.fencing_token()
    }

    /// Whether the lock is still held (see [`LockHandle::is_held`]).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use std::time::Duration;
    /// # let server = consul_lock_testkit::TestServer::start_with(consul_lock_testkit::ServerConfig::default().session_ttl_min(Duration::from_secs(1)))?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).session_ttl_min(Duration::from_secs(1)).build()?;
    /// use consul_lock_runtime::{Lock, LostReason};
    /// let lock = Lock::new("guard-is-held-example").client(&client).lock_timeout(Duration::from_secs(1));
    /// let guard = lock.acquire_blocking()?;
    /// assert!(guard.is_held());
    /// std::thread::sleep(Duration::from_millis(1100)); // no renewal: the TTL runs out
    /// assert!(!guard.is_held());
    /// assert_eq!(guard.lost_reason(), Some(LostReason::Expired));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn is_held(&self) -> bool {
        self.handle.is_held()
    }

    /// Why the lock is no longer held, or `None` while it is.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::{Lock, LostReason};
    /// let guard = Lock::new("guard-lost-reason-example").client(&client).renew(true).acquire().await?;
    /// assert_eq!(guard.lost_reason(), None);
    /// client.destroy_session(guard.session_id()).await?; // an operator ends the session
    /// guard.lost().await;
    /// assert_eq!(guard.lost_reason(), Some(LostReason::KeyTakenOver { by: None }));
    /// # Ok(()) }
    /// ```
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
    /// assert_eq!(reason, LostReason::KeyTakenOver { by: None });
    /// # Ok(()) }
    /// ```
    pub fn lost(&self) -> Lost {
        self.handle.lost()
    }

    /// A cloneable, `'static` view of this lock, for tasks that need to check it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Lock;
    /// let guard = Lock::new("guard-handle-example").client(&client).acquire().await?;
    /// let handle = guard.handle(); // 'static: it can move into a task
    /// let worker = tokio::spawn(async move { (handle.is_held(), handle.fencing_token()) });
    /// assert_eq!(worker.await?, (true, guard.fencing_token()));
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn handle(&self) -> LockHandle {
        self.handle.clone()
    }

    /// Releases the lock: destroys its session, which deletes the key. The release runs to
    /// completion even if this future is dropped.
    ///
    /// # Errors
    ///
    /// [`Error::Unreachable`](crate::Error::Unreachable), [`Error::ConsulRefused`](crate::Error::ConsulRefused)
    /// or [`Error::PermissionDenied`](crate::Error::PermissionDenied) when the session could
    /// not be destroyed; the key is then freed by the TTL.
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
        let shared = self.disarm();
        background::run_to_completion(release_patiently(shared)).await?
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
    /// let guard = lock.acquire_blocking()?;
    /// assert!(lock.try_acquire_blocking()?.is_none()); // held
    /// guard.release_blocking()?;
    /// assert!(lock.try_acquire_blocking()?.is_some()); // free again
    /// # Ok(()) }
    /// ```
    pub fn release_blocking(mut self) -> Result<()> {
        let shared = self.disarm();
        background::run_blocking(release_patiently(shared))?
    }

    fn disarm(&mut self) -> Arc<Shared> {
        self.armed = false;
        let shared = self.handle.shared.clone();
        shared.stop_tasks();
        shared.lose(LostReason::Released);
        shared
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if self.armed {
            let shared = self.disarm();
            background::spawn_cleanup(async move {
                // `release` logs a failure; the TTL frees the key.
                let _ = release(shared).await;
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

/// Releases: destroys the session, retrying transient failures (a leader election, a reset
/// connection) until Consul confirms it or would have ended the session on its own (see
/// [`teardown`]). A lost release would keep the key until its TTL and stall every waiter.
async fn release(shared: Arc<Shared>) -> Result<()> {
    let span = tracing::info_span!("consul_lock.release", key = %shared.key);
    async move {
        let client = &shared.client;
        // Never give up sooner than one request timeout, even on a lease that looks over.
        let give_up_at = teardown::session_end_bound(shared.last_renewal(), shared.ttl)
            .max(Instant::now() + client.request_timeout());
        let result =
            teardown::destroy_until_confirmed(client, &shared.key, &shared.session_id, give_up_at)
                .await;
        match &result {
            Ok(()) => {
                client.note_release(&shared.key);
                tracing::debug!("released");
            }
            Err(e) => tracing::warn!(error = %e, "release failed; the lock timeout (TTL) will free the key"),
        }
        result
    }
    .instrument(span)
    .await
}

/// An explicit release: waits for Consul's confirmation up to the client's request timeout;
/// past that the release goes on in the background (counted by
/// [`flush_releases`](crate::flush_releases)) and the caller hears so.
async fn release_patiently(shared: Arc<Shared>) -> Result<()> {
    let patience = shared.client.request_timeout();
    let key = shared.key.clone();
    let address = shared.client.address().to_owned();
    let mut work = background::MustFinish::new(release(shared));
    match tokio::time::timeout(patience, &mut work).await {
        Ok(result) => result,
        // Dropping the unfinished release hands the rest of it to the worker.
        Err(_) => Err(Error::Unreachable {
            key,
            operation: "destroy the session (release)",
            address,
            reason: format!(
                "Consul did not confirm the release within {}; it goes on in the background \
                 until Consul confirms it (flush_releases() waits for it), and the TTL frees \
                 the key at the latest",
                DisplayDuration(patience)
            ),
        }),
    }
}

async fn expire_at_ttl(shared: Arc<Shared>) {
    tokio::time::sleep_until(shared.valid_until()).await;
    shared.lose(LostReason::Expired);
}

/// Renews the session at TTL/2; retries failed renewals until the lease runs out (see
/// [`Lease`]: longer while Consul has no leader), then reports the loss. Each attempt stops
/// waiting a tenth of the TTL before the lease ends, so that a request Consul holds during an
/// election ends as "no answer" (which extends the lease) before the lease is over.
async fn renew_loop(shared: Arc<Shared>) {
    let half = shared.ttl / 2;
    let retry = (shared.ttl / 10).clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut next = shared.last_renewal() + half;
    let mut last_error = String::new();
    loop {
        tokio::time::sleep_until(next).await;
        let valid_until = shared.valid_until();
        let now = Instant::now();
        if now >= valid_until {
            shared.lose(LostReason::RenewalFailed { last_error });
            return;
        }
        let timeout = (valid_until - now)
            .saturating_sub(shared.ttl / 10)
            .max(Duration::from_millis(50))
            .min(shared.client.request_timeout());
        match shared
            .client
            .session_renew(&shared.key, &shared.session_id, timeout)
            .await
        {
            Ok(true) => {
                shared.renewed_at(now);
                next = now + half;
                tracing::trace!("session renewed");
            }
            Ok(false) => {
                shared.lose(LostReason::SessionInvalidated);
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "renewal failed; retrying");
                if e.shows_no_leader() {
                    shared.renewal_met_no_leader();
                }
                last_error = e.to_string();
                next = Instant::now() + retry;
            }
        }
    }
}

/// Watches the key with blocking queries and reports when it is deleted or held by another
/// session.
async fn watch_key(shared: Arc<Shared>) {
    const WAIT: Duration = Duration::from_secs(60);
    let mut index = shared.fencing_token;
    let mut backoff =
        crate::retry::Backoff::between(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        let timeout = shared.client.request_timeout() + WAIT + WAIT / 16;
        match shared
            .client
            .kv_read(&shared.key, Some((index, WAIT)), timeout)
            .await
        {
            Ok((entry, new_index)) => {
                backoff.reset();
                match entry {
                    Some(e) if e.session.as_deref() == Some(shared.session_id.as_str()) => {}
                    Some(e) => {
                        shared.lose(LostReason::KeyTakenOver { by: e.session });
                        return;
                    }
                    None => {
                        // With Behavior=delete a destroyed or expired session deletes the key.
                        shared.lose(LostReason::KeyTakenOver { by: None });
                        return;
                    }
                }
                // Consul's rule: an index that goes backwards resets the watch.
                index = if new_index < index { 0 } else { new_index };
            }
            Err(e) => {
                tracing::debug!(error = %e, "watching the key failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}
