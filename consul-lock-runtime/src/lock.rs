//! The lock (Python's `EphemeralLock`) and the acquire protocol.
//!
//! One session per acquisition (`LockDelay: 0s`, `Behavior: delete`, `TTL` = lock timeout);
//! acquire with one `/v1/txn` `lock` (its `ModifyIndex` is the fencing token); wait for a held
//! key with blocking queries, renewing the waiter's session while it waits; retry transient
//! failures and lock-delay refusals with jittered backoff, never past the deadline. A session
//! left over by a failed or cancelled acquire is destroyed.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument as _;

use crate::config::SESSION_TTL_MAX;
use crate::consul::LockAttempt;
use crate::error::DisplayDuration;
use crate::guard::LockGuard;
use crate::retry::{Backoff, Deadline};
use crate::value::ValueGenerator;
use crate::{background, defaults, key, teardown, Blocker, Client, Error, LockHandle, Result};

/// Where waiters queue for a held key: `<key>/.waiters/<session>`, each entry held by its
/// waiter's session, so that Consul deletes it when the session ends (released, given up,
/// expired). When the key is freed, the waiter whose entry is oldest (lowest `CreateIndex`)
/// tries first; the others leave it 25 ms before they try too (the first may have
/// died with its session still alive). Keys ending in this suffix are reserved.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// use consul_lock_runtime::{Lock, WAITERS_SUFFIX};
/// # use std::time::Duration;
/// let lock = Lock::new("waiters-example").client(&client);
/// let guard = lock.acquire().await?;
/// let patient = lock.clone().acquire_timeout(Duration::from_secs(5));
/// let waiter = tokio::spawn(async move { patient.acquire().await });
/// let queue = format!("{}{WAITERS_SUFFIX}", guard.key());
/// # while client.kv_keys(&queue).await?.is_empty() { tokio::time::sleep(Duration::from_millis(5)).await; }
/// let queued = client.kv_keys(&queue).await?; // once the waiter has queued
/// guard.release().await?;
/// let second = waiter.await??; // the waiter's session now holds the key
/// assert_eq!(queued, [format!("{queue}{}", second.session_id())]);
/// # second.release().await?;
/// # Ok(()) }
/// ```
pub const WAITERS_SUFFIX: &str = "/.waiters/";

/// How long a waiter that is not first in the queue leaves a freed key to the first one.
const HEAD_GRACE: Duration = Duration::from_millis(25);

/// Consul's limit for a request body (`kv_max_value_size`, 512 KiB). The lock's value travels
/// base64-encoded inside a `/v1/txn` body, so the largest value is about 3/4 of this.
///
/// ```
/// use consul_lock_runtime::{Client, Error, Lock, MAX_VALUE_SIZE};
/// let client = Client::builder().build()?;
/// let huge = Lock::new("max-value-size-example").client(&client).value_generator(|_| "x".repeat(MAX_VALUE_SIZE));
/// let err = huge.acquire_blocking().unwrap_err();
/// assert!(matches!(err, Error::InvalidOption { option: "value_generator", .. }));
/// assert_eq!(client.requests_sent(), 0); // refused before any request
/// # Ok::<(), consul_lock_runtime::Error>(())
/// ```
pub const MAX_VALUE_SIZE: usize = 512 * 1024;

/// The size of the `/v1/txn` body that locks `key` with a value of `value_len` bytes, as
/// [`Client::txn_lock`] writes it (an upper bound: JSON escapes in the key may add a little
/// less than counted).
fn txn_body_size(key: &str, value_len: usize) -> usize {
    const OVERHEAD: usize = 256; // verbs, field names, the 36-character session ID
                                 // The key appears twice: in the lock and in the queue prefix of the get-tree.
    4 * value_len.div_ceil(3) + 4 * key.len() + OVERHEAD
}

/// A lock on one Consul key, configured but not yet taken (Python's `EphemeralLock`).
///
/// Every option left unset falls back to [`defaults`] when the lock is acquired. A `Lock` can
/// be acquired many times, one guard at a time or concurrently (each acquisition is a new
/// Consul session).
///
/// ```
/// use consul_lock_runtime::Lock;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// let lock = Lock::new("send/user-42/welcome-email")
///     .client(&client)
///     .acquire_timeout(Duration::from_millis(500))
///     .lock_timeout(Duration::from_secs(60));
///
/// // Fail hard: an error when another holder keeps the key past the acquire timeout.
/// let guard = lock.acquire().await?;
/// assert!(matches!(lock.acquire().await, Err(consul_lock_runtime::Error::NotAcquired { .. })));
/// guard.release().await?;
///
/// // Fail soft: `None` when not acquired.
/// if let Some(guard) = lock.try_acquire().await? {
///     guard.release().await?;
/// }
///
/// // Run a future under the lock; released afterwards.
/// let sent = lock.hold(|handle| async move { handle.fencing_token() }).await?;
/// assert!(sent > 0);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Lock {
    key: String,
    client: Option<Client>,
    key_prefix: Option<String>,
    acquire_timeout: Option<Duration>,
    lock_timeout: Option<Duration>,
    renew: bool,
    value: Option<ValueGenerator>,
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("key", &self.key)
            .field("client", &self.client)
            .field("key_prefix", &self.key_prefix)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("lock_timeout", &self.lock_timeout)
            .field("renew", &self.renew)
            .finish_non_exhaustive()
    }
}

/// Everything an acquisition needs, resolved and checked before any request.
struct Plan {
    client: Client,
    key: String,
    acquire_timeout: Duration,
    ttl: Duration,
    renew: bool,
    value: Vec<u8>,
}

impl Lock {
    /// A lock on `key`, relative to the key prefix (default `locks/ephemeral/`). The key is
    /// checked when the lock is acquired.
    ///
    /// ```
    /// use consul_lock_runtime::{Error, Lock};
    /// let lock = Lock::new("jobs/nightly").key_prefix("locks/");
    /// assert_eq!(lock.full_key()?, "locks/jobs/nightly");
    /// // The key is checked when the lock is acquired, before any request.
    /// let bad = Lock::new("jobs//nightly");
    /// assert!(matches!(bad.acquire_blocking(), Err(Error::InvalidKey { .. })));
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    pub fn new(key: impl Into<String>) -> Lock {
        Lock {
            key: key.into(),
            client: None,
            key_prefix: None,
            acquire_timeout: None,
            lock_timeout: None,
            renew: false,
            value: None,
        }
    }

    /// The client to use instead of [`defaults::client`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Lock;
    /// let lock = Lock::new("client-example").client(&client); // or .client(client.clone())
    /// let guard = lock.acquire().await?;
    /// guard.release().await?;
    /// assert_eq!(client.requests_sent(), 3); // create a session, lock, release
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn client(mut self, client: impl Into<Client>) -> Lock {
        self.client = Some(client.into());
        self
    }

    /// The key prefix to use instead of [`defaults::key_prefix`].
    ///
    /// ```
    /// use consul_lock_runtime::Lock;
    /// let lock = Lock::new("invoices/42").key_prefix("locks/billing/");
    /// assert_eq!(lock.full_key()?, "locks/billing/invoices/42");
    /// assert_eq!(Lock::new("plain").key_prefix("").full_key()?, "plain");
    /// assert!(Lock::new("x").key_prefix("/locks/").full_key().is_err());
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Lock {
        self.key_prefix = Some(prefix.into());
        self
    }

    /// How long to wait for a held key (Python's `acquire_timeout_ms`); zero means one try.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Lock;
    /// # use std::time::Duration;
    /// let lock = Lock::new("acquire-timeout-example").client(&client);
    /// let first = lock.acquire().await?;
    /// let first_token = first.fencing_token();
    /// let patient = lock.clone().acquire_timeout(Duration::from_secs(5));
    /// let waiter = tokio::spawn(async move { patient.acquire().await });
    /// first.release().await?;
    /// let second = waiter.await??; // took the key once it was free
    /// assert!(second.fencing_token() > first_token);
    /// second.release().await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn acquire_timeout(mut self, timeout: Duration) -> Lock {
        self.acquire_timeout = Some(timeout);
        self
    }

    /// The lock's maximum lifespan without renewal: the session TTL (Python's
    /// `lock_timeout_seconds`), 10..=86400 s. Consul frees the key between once and twice
    /// this long after the last renewal if the holder disappears.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Lock;
    /// use std::time::Duration;
    ///
    /// let lock = Lock::new("lock-timeout-example").client(&client);
    /// let guard = lock.clone().lock_timeout(Duration::from_secs(60)).acquire().await?;
    /// let sessions = client.sessions().await?;
    /// assert!(sessions.iter().any(|s| s.id == guard.session_id() && s.ttl == "60s"));
    /// guard.release().await?;
    /// assert!(lock.lock_timeout(Duration::from_secs(1)).acquire().await.is_err()); // under 10 s
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn lock_timeout(mut self, timeout: Duration) -> Lock {
        self.lock_timeout = Some(timeout);
        self
    }

    /// Renew the session at TTL/2 while the lock is held, and watch the key, so that a lock
    /// can be held longer than its lock timeout and a loss is reported at once (default off).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use std::time::Duration;
    /// # let server = consul_lock_testkit::TestServer::start_with(consul_lock_testkit::ServerConfig::default().session_ttl_min(Duration::from_secs(1)))?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).session_ttl_min(Duration::from_secs(1)).build()?;
    /// use consul_lock_runtime::Lock;
    /// let lock = Lock::new("renew-example").client(&client).lock_timeout(Duration::from_secs(1));
    /// let guard = lock.renew(true).acquire_blocking()?;
    /// std::thread::sleep(Duration::from_millis(1500)); // longer than the lock timeout
    /// assert!(guard.is_held()); // renewed every half TTL
    /// guard.release_blocking()?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn renew(mut self, on: bool) -> Lock {
        self.renew = on;
        self
    }

    /// The function that makes the value stored in the key, instead of
    /// [`defaults::value_generator`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Lock;
    /// let lock = Lock::new("value-example").client(&client);
    /// let guard = lock.value_generator(|key| format!("worker-7 holds {key}")).acquire().await?;
    /// let entry = client.kv_get(guard.key()).await?.expect("held");
    /// assert_eq!(entry.value, format!("worker-7 holds {}", guard.key()).into_bytes());
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn value_generator(
        mut self,
        generator: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> Lock {
        self.value = Some(Arc::new(generator));
        self
    }

    /// The full key this lock would take now (prefix + key), checked.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] when the key or prefix is malformed.
    ///
    /// ```
    /// let lock = consul_lock_runtime::Lock::new("jobs/nightly");
    /// assert_eq!(lock.full_key()?, "locks/ephemeral/jobs/nightly");
    /// assert!(consul_lock_runtime::Lock::new("jobs//nightly").full_key().is_err());
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    pub fn full_key(&self) -> Result<String> {
        let prefix = self.key_prefix.clone().unwrap_or_else(defaults::key_prefix);
        key::validate(&prefix, "key prefix")?;
        key::validate(&self.key, "key")?;
        let full = format!("{prefix}{}", self.key);
        key::validate(&full, "key")?;
        Ok(full)
    }

    fn plan(&self) -> Result<Plan> {
        let key = self.full_key()?;
        let client = match &self.client {
            Some(c) => c.clone(),
            None => defaults::client()?,
        };
        let ttl = self.lock_timeout.unwrap_or_else(defaults::lock_timeout);
        let min = client.session_ttl_min();
        if ttl < min || ttl > SESSION_TTL_MAX {
            return Err(Error::InvalidOption {
                option: "lock_timeout",
                reason: format!(
                    "{} for lock `{key}` is outside the allowed {}..={} s; choose a value in that range \
                     (the lower bound is the agent's session_ttl_min, settable on the client for agents \
                     configured lower)",
                    DisplayDuration(ttl),
                    min.as_secs_f64(),
                    SESSION_TTL_MAX.as_secs()
                ),
            });
        }
        let generator = self.value.clone().unwrap_or_else(defaults::value_generator);
        let value = generator(&key).into_bytes();
        let body = txn_body_size(&key, value.len());
        if body > MAX_VALUE_SIZE {
            return Err(Error::InvalidOption {
                option: "value_generator",
                reason: format!(
                    "the value for lock `{key}` is {} bytes, which makes a {body}-byte transaction \
                     (the value is base64-encoded) over Consul's limit of {MAX_VALUE_SIZE} bytes (512 KiB); \
                     keep the value under about 380 KiB",
                    value.len()
                ),
            });
        }
        Ok(Plan {
            client,
            key,
            acquire_timeout: self
                .acquire_timeout
                .unwrap_or_else(defaults::acquire_timeout),
            ttl,
            renew: self.renew,
            value,
        })
    }

    /// Acquires the lock, waiting up to the acquire timeout for a held key (Python's
    /// `acquire(fail_hard=True)`).
    ///
    /// Dropping the future cancels the acquire; a session it created is destroyed in the
    /// background (see [`flush_releases`](crate::flush_releases)).
    ///
    /// # Errors
    ///
    /// - [`Error::NotAcquired`]: another session held the key for the whole timeout;
    /// - [`Error::InvalidKey`] / [`Error::InvalidOption`]: before any request;
    /// - [`Error::PermissionDenied`]: the ACL token may not create sessions or write the key;
    /// - [`Error::ConsulRefused`] / [`Error::Unreachable`]: Consul failed for the whole timeout
    ///   (or on the one try).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::{Error, Lock};
    /// let lock = Lock::new("acquire-example").client(&client);
    /// let guard = lock.acquire().await?;
    /// assert!(guard.is_held());
    /// // Held: with the default acquire timeout (one try) the next acquire fails at once.
    /// assert!(matches!(lock.acquire().await, Err(Error::NotAcquired { .. })));
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn acquire(&self) -> Result<LockGuard> {
        let plan = self.plan()?;
        background::run(acquire(plan)).await?
    }

    /// Like [`acquire`](Self::acquire), but "not acquired in time" is `Ok(None)` (Python's
    /// `acquire(fail_hard=False)`).
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire), except [`Error::NotAcquired`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Lock;
    /// let lock = Lock::new("try-acquire-example").client(&client);
    /// let guard = lock.try_acquire().await?.expect("the key is free");
    /// assert!(lock.try_acquire().await?.is_none()); // held: None, not an error
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn try_acquire(&self) -> Result<Option<LockGuard>> {
        not_acquired_as_none(self.acquire().await)
    }

    /// Acquires the lock, blocking the calling thread. Works from plain threads and from
    /// threads inside a tokio runtime alike.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Lock;
    /// let guard = Lock::new("acquire-blocking-example").client(&client).acquire_blocking()?;
    /// assert!(guard.is_held());
    /// guard.release_blocking()?;
    /// # Ok(()) }
    /// ```
    pub fn acquire_blocking(&self) -> Result<LockGuard> {
        let plan = self.plan()?;
        background::run_blocking(acquire(plan))?
    }

    /// Like [`acquire_blocking`](Self::acquire_blocking), with "not acquired" as `Ok(None)`.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire), except [`Error::NotAcquired`].
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Lock;
    /// let lock = Lock::new("try-acquire-blocking-example").client(&client);
    /// let guard = lock.try_acquire_blocking()?.expect("the key is free");
    /// assert!(lock.try_acquire_blocking()?.is_none()); // held: None, not an error
    /// guard.release_blocking()?;
    /// # Ok(()) }
    /// ```
    pub fn try_acquire_blocking(&self) -> Result<Option<LockGuard>> {
        not_acquired_as_none(self.acquire_blocking())
    }

    /// Runs `body` under the lock (Python's `with lock.hold():`) and releases it afterwards,
    /// also when the body panics or the future is dropped. The body gets a [`LockHandle`] to
    /// read the fencing token or check that the lock is still held.
    ///
    /// A failed release after the body is logged (tracing) and not returned, so the body's
    /// result is never lost; the TTL frees the key.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire); the body does not run then.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Lock;
    /// let lock = Lock::new("hold-example").client(&client);
    /// let token = lock.hold(|handle| async move {
    ///     assert!(handle.is_held()); // … work under the lock …
    ///     handle.fencing_token()
    /// }).await?;
    /// assert!(token > 0);
    /// assert!(client.kv_get(&lock.full_key()?).await?.is_none()); // released
    /// # Ok(()) }
    /// ```
    pub async fn hold<F, Fut, T>(&self, body: F) -> Result<T>
    where
        F: FnOnce(LockHandle) -> Fut,
        Fut: Future<Output = T>,
    {
        let guard = self.acquire().await?;
        let out = body(guard.handle()).await;
        let _ = guard.release().await;
        Ok(out)
    }

    /// Like [`hold`](Self::hold), with "not acquired" as `Ok(None)` (the body does not run).
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Lock;
    /// let lock = Lock::new("try-hold-example").client(&client);
    /// let guard = lock.acquire().await?;
    /// assert_eq!(lock.try_hold(|_| async { "ran" }).await?, None); // held: the body did not run
    /// guard.release().await?;
    /// assert_eq!(lock.try_hold(|_| async { "ran" }).await?, Some("ran"));
    /// # Ok(()) }
    /// ```
    pub async fn try_hold<F, Fut, T>(&self, body: F) -> Result<Option<T>>
    where
        F: FnOnce(LockHandle) -> Fut,
        Fut: Future<Output = T>,
    {
        let Some(guard) = self.try_acquire().await? else {
            return Ok(None);
        };
        let out = body(guard.handle()).await;
        let _ = guard.release().await;
        Ok(Some(out))
    }

    /// Runs `body` under the lock on the calling thread, blocking; released afterwards, also
    /// on panic.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire); the body does not run then.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Lock;
    /// let lock = Lock::new("hold-blocking-example").client(&client);
    /// let token = lock.hold_blocking(|handle| handle.fencing_token())?;
    /// assert!(token > 0);
    /// assert!(lock.try_acquire_blocking()?.is_some()); // released afterwards
    /// # Ok(()) }
    /// ```
    pub fn hold_blocking<F, T>(&self, body: F) -> Result<T>
    where
        F: FnOnce(LockHandle) -> T,
    {
        let guard = self.acquire_blocking()?;
        let out = body(guard.handle());
        let _ = guard.release_blocking();
        Ok(out)
    }

    /// Like [`hold_blocking`](Self::hold_blocking), with "not acquired" as `Ok(None)`.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Lock;
    /// let lock = Lock::new("try-hold-blocking-example").client(&client);
    /// let guard = lock.acquire_blocking()?;
    /// assert_eq!(lock.try_hold_blocking(|_| "ran")?, None); // held: the body did not run
    /// guard.release_blocking()?;
    /// assert_eq!(lock.try_hold_blocking(|_| "ran")?, Some("ran"));
    /// # Ok(()) }
    /// ```
    pub fn try_hold_blocking<F, T>(&self, body: F) -> Result<Option<T>>
    where
        F: FnOnce(LockHandle) -> T,
    {
        let Some(guard) = self.try_acquire_blocking()? else {
            return Ok(None);
        };
        let out = body(guard.handle());
        let _ = guard.release_blocking();
        Ok(Some(out))
    }
}

fn not_acquired_as_none(result: Result<LockGuard>) -> Result<Option<LockGuard>> {
    match result {
        Ok(guard) => Ok(Some(guard)),
        Err(Error::NotAcquired { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A session created by an acquire that has not (yet) become a guard. Dropping it destroys
/// the session in the background, so failed and cancelled acquires leak nothing.
struct PendingSession {
    client: Client,
    key: String,
    id: String,
    /// Send time of the create or last renew: the TTL counts from at most then.
    renewed: Instant,
    ttl: Duration,
    /// Whether this session holds its entry in the key's queue of waiters.
    queued: bool,
    armed: bool,
}

impl PendingSession {
    fn into_parts(mut self) -> (String, Instant) {
        self.armed = false;
        (std::mem::take(&mut self.id), self.renewed)
    }

    /// Consul has already dropped the session: nothing to destroy.
    fn forget(mut self) {
        self.armed = false;
    }
}

impl Drop for PendingSession {
    fn drop(&mut self) {
        if self.armed {
            let client = self.client.clone();
            let key = std::mem::take(&mut self.key);
            let id = std::mem::take(&mut self.id);
            let give_up_at = teardown::session_end_bound(self.renewed, self.ttl);
            background::spawn_cleanup(async move {
                if let Err(e) =
                    teardown::destroy_until_confirmed(&client, &key, &id, give_up_at).await
                {
                    tracing::warn!(key = %key, error = %e, "could not destroy the session of an unfinished acquire; its TTL will end it");
                }
            });
        }
    }
}

/// Creates the acquire's session so that it is never leaked: the create finishes even if the
/// acquire stops waiting for it (cancelled, or out of time: see [`background::MustFinish`]),
/// and the session comes back as a [`PendingSession`], whose drop destroys it. The request is
/// bounded by the client's request timeout and the wait for it by `wait` (the time left), so
/// a session Consul creates after the acquire gave up is destroyed too.
async fn create_session(
    client: &Client,
    key: &str,
    ttl: Duration,
    wait: Duration,
) -> Result<PendingSession> {
    let task_client = client.clone();
    let task_key = key.to_owned();
    let create = background::MustFinish::new(async move {
        let (client, key) = (task_client, task_key);
        let name = teardown::session_name(&key);
        let sent = Instant::now();
        let id = match client
            .session_create(&key, &name, ttl, client.request_timeout())
            .await
        {
            Ok(id) => id,
            Err(e) => {
                if teardown::create_may_have_happened(&e) {
                    teardown::sweep_unconfirmed_create(client, key, name, ttl);
                }
                return Err(e);
            }
        };
        Ok(PendingSession {
            client,
            key,
            id,
            renewed: sent,
            ttl,
            queued: false,
            armed: true,
        })
    });
    // The request is bounded by the client's request timeout already; a second timer is only
    // needed when the time left is shorter.
    if wait >= client.request_timeout() {
        return create.await;
    }
    match tokio::time::timeout(wait, create).await {
        Ok(created) => created,
        Err(_) => Err(Error::Unreachable {
            key: key.to_owned(),
            operation: "create a session",
            address: client.address().to_owned(),
            reason: format!("{} {}", crate::error::NO_ANSWER, DisplayDuration(wait)),
        }),
    }
}

/// Renews a waiting session when half its TTL has passed, so that the lock taken with it has
/// at least half a TTL left. `Ok(false)`: Consul no longer knows the session.
async fn refresh(plan: &Plan, session: &mut PendingSession, timeout: Duration) -> Result<bool> {
    if session.renewed.elapsed() < plan.ttl / 2 {
        return Ok(true);
    }
    let sent = Instant::now();
    let alive = plan
        .client
        .session_renew(&plan.key, &session.id, timeout)
        .await?;
    if alive {
        session.renewed = sent;
    }
    Ok(alive)
}

/// What waiting for a held key ended with.
enum Wait {
    /// The key looks free: try to lock it again. `head`: this waiter is first in the queue
    /// (false when the first one let the grace pass, so that this waiter takes the key).
    Free { head: bool },
    /// The session is gone (invalidated while waiting): make a new one.
    SessionGone,
    /// The deadline passed.
    TimedOut,
}

async fn acquire(plan: Plan) -> Result<LockGuard> {
    let span = tracing::info_span!(
        "consul_lock.acquire",
        key = %plan.key,
        waited_ms = tracing::field::Empty,
        attempts = tracing::field::Empty,
        fencing_token = tracing::field::Empty,
    );
    let result = acquire_loop(&plan).instrument(span.clone()).await;
    match &result {
        Ok(guard) => {
            span.record("fencing_token", guard.fencing_token());
        }
        Err(e) => span.in_scope(|| tracing::debug!(error = %e, "not acquired")),
    }
    result
}

/// How an acquire that gives up explains itself.
struct Outcome<'a> {
    plan: &'a Plan,
    deadline: Deadline,
    attempts: u32,
    /// What kept the key from the last attempt (another holder, or a lock-delay), if anything.
    blocked_by: Option<Blocker>,
    /// The last error Consul itself answered (a 5xx), more telling than a timeout.
    last_answer: Option<Error>,
}

impl Outcome<'_> {
    fn record(&self) {
        let span = tracing::Span::current();
        span.record("waited_ms", self.deadline.waited().as_millis() as u64);
        span.record("attempts", self.attempts);
    }

    fn not_acquired(&self) -> Error {
        self.record();
        Error::NotAcquired {
            key: self.plan.key.clone(),
            waited: self.deadline.waited(),
            attempts: self.attempts,
            blocked_by: self.blocked_by.unwrap_or(Blocker::Holder),
        }
    }

    /// The error to return for `e` when no retry is possible: a request cut off by the
    /// deadline is reported as what was last known (held by another session, or Consul's
    /// own last answer), not as "unreachable".
    fn give_up(&mut self, e: Error) -> Error {
        let cut_by_deadline =
            matches!(e, Error::Unreachable { .. }) && self.deadline.remaining().is_some();
        if cut_by_deadline && self.blocked_by.is_some() {
            return self.not_acquired();
        }
        if cut_by_deadline {
            if let Some(answer) = self.last_answer.take() {
                self.record();
                return answer;
            }
        }
        self.record();
        e
    }

    /// Remembers a transient error; whether a retry may follow (after the backoff).
    async fn retry_after(&mut self, e: &Error, backoff: &mut Backoff) -> bool {
        if matches!(e, Error::ConsulRefused { .. }) {
            self.last_answer = Some(e.clone());
        }
        backoff.wait(&self.deadline).await
    }
}

async fn acquire_loop(plan: &Plan) -> Result<LockGuard> {
    let client = &plan.client;
    let mut out = Outcome {
        plan,
        deadline: Deadline::new(plan.acquire_timeout),
        attempts: 0,
        blocked_by: None,
        last_answer: None,
    };
    let mut backoff = Backoff::new();
    let mut session: Option<PendingSession> = None;
    let queue = format!("{}{WAITERS_SUFFIX}", plan.key);
    // Whether to give the key back when it was taken ahead of older waiters: only when this
    // client released the key a moment ago (so that a releaser taking it again at once does
    // not overtake the queue), and never after the first waiter let its grace pass (it may be
    // gone with its session alive). Other newcomers may take a free key: waiting out stale
    // queue entries would cost them more than the order is worth.
    let mut yield_to_older = client.released_recently(&plan.key);
    loop {
        let Some(timeout) = out.deadline.request_timeout(client.request_timeout()) else {
            return Err(out.not_acquired());
        };
        let mut pending = match session.take() {
            Some(mut s) => match refresh(plan, &mut s, timeout).await {
                Ok(true) => s,
                Ok(false) => {
                    s.forget();
                    continue;
                }
                Err(e) if e.is_transient() && out.retry_after(&e, &mut backoff).await => {
                    session = Some(s);
                    continue;
                }
                Err(e) => return Err(out.give_up(e)),
            },
            None => match create_session(client, &plan.key, plan.ttl, timeout).await {
                Ok(created) => created,
                Err(e) if e.is_transient() && out.retry_after(&e, &mut backoff).await => continue,
                Err(e) => return Err(out.give_up(e)),
            },
        };
        let Some(timeout) = out.deadline.request_timeout(client.request_timeout()) else {
            return Err(out.not_acquired());
        };
        out.attempts += 1;
        let attempt = client
            .txn_lock(&plan.key, &plan.value, &pending.id, &queue, timeout)
            .await;
        let attempt = match attempt {
            Ok(LockAttempt::Acquired {
                modify_index,
                queue: waiters,
            }) if yield_to_older
                && out.deadline.can_retry()
                && older_waiter(&waiters, &queue, &pending.id) =>
            {
                // Taken ahead of older waiters (a newcomer overtaking the queue): give it back
                // and queue up, so that waiters are served in order. Should the unlock fail,
                // dropping `pending` destroys the session, which frees the key.
                tracing::trace!(
                    fencing_token = modify_index,
                    "yielding the key to an older waiter"
                );
                client
                    .txn_unlock(&plan.key, &pending.id, timeout)
                    .await
                    .map(|()| LockAttempt::Held)
            }
            other => other,
        };
        match attempt {
            Ok(LockAttempt::Acquired { modify_index, .. }) => {
                out.record();
                let (id, renewed) = pending.into_parts();
                return Ok(LockGuard::start(
                    client.clone(),
                    plan.key.clone(),
                    id,
                    modify_index,
                    plan.ttl,
                    renewed,
                    plan.renew,
                ));
            }
            Ok(LockAttempt::Held) => {
                out.blocked_by = Some(Blocker::Holder);
                if !out.deadline.can_retry() {
                    return Err(out.not_acquired());
                }
                match wait_for_release(plan, &mut pending, &out.deadline).await? {
                    Wait::Free { head } => {
                        yield_to_older = yield_to_older && head;
                        session = Some(pending);
                    }
                    Wait::SessionGone => pending.forget(),
                    Wait::TimedOut => return Err(out.not_acquired()),
                }
            }
            Ok(LockAttempt::LockDelay) => {
                out.blocked_by = Some(Blocker::LockDelay);
                session = Some(pending);
                if !backoff.wait(&out.deadline).await {
                    return Err(out.not_acquired());
                }
            }
            Err(e) if e.is_invalid_session() => {
                // Consul ended the session (its TTL ran out, or it was destroyed): start over.
                pending.forget();
                if !out.deadline.can_retry() {
                    return Err(out.give_up(e));
                }
            }
            Err(e) if e.is_transient() => {
                session = Some(pending);
                if !out.retry_after(&e, &mut backoff).await {
                    return Err(out.give_up(e));
                }
            }
            Err(e) => return Err(out.give_up(e)),
        }
    }
}

/// Whether the queue read with a lock holds a live waiter that queued before this session (or
/// any live waiter, when this session has not queued).
fn older_waiter(waiters: &[crate::KvEntry], queue: &str, session: &str) -> bool {
    let mine = format!("{queue}{session}");
    let my_index = waiters
        .iter()
        .find(|e| e.key == mine)
        .map(|e| e.create_index);
    waiters.iter().any(|e| {
        e.key != mine && e.session.is_some() && my_index.is_none_or(|m| e.create_index < m)
    })
}

/// Waits with blocking queries until the key is free and it is this waiter's turn, or the
/// deadline passes. The waiter joins the key's queue (see [`WAITERS_SUFFIX`]) and watches the
/// key and the queue with one blocking query on the key as a prefix; it renews its session at
/// TTL/2 so that it survives a wait longer than its TTL.
async fn wait_for_release(
    plan: &Plan,
    session: &mut PendingSession,
    deadline: &Deadline,
) -> Result<Wait> {
    let client = &plan.client;
    let queue = format!("{}{WAITERS_SUFFIX}", plan.key);
    let mine = format!("{queue}{}", session.id);
    let mut index = 0u64;
    let mut grace_until: Option<Instant> = None;
    let mut backoff = Backoff::new();
    loop {
        let Some(remaining) = deadline
            .remaining()
            .filter(|r| *r >= Duration::from_millis(1))
        else {
            return Ok(Wait::TimedOut);
        };
        let request_timeout = remaining.min(client.request_timeout());
        let step = match refresh(plan, session, request_timeout).await {
            Ok(false) => return Ok(Wait::SessionGone),
            Ok(true) if !session.queued => client
                .kv_acquire(&plan.key, &mine, &session.id, request_timeout)
                .await
                .map(|_| session.queued = true),
            Ok(true) => Ok(()),
            Err(e) => Err(e),
        };
        match step {
            Ok(()) => {}
            Err(e) if e.is_invalid_session() => return Ok(Wait::SessionGone),
            Err(e) if e.is_transient() => {
                tracing::debug!(error = %e, "renewing or queueing the waiting session failed; retrying");
                if !backoff.wait(deadline).await {
                    return Ok(Wait::TimedOut);
                }
                continue;
            }
            Err(e) => return Err(e),
        }
        // Consul may answer a blocking query up to wait/16 late: ask for a bit less than the
        // time left, and never past the point where the session needs renewing or the grace
        // left to the first waiter ends.
        let now = Instant::now();
        let until_renew = (session.renewed + plan.ttl / 2).saturating_duration_since(now);
        let mut wait = (remaining * 15 / 16).min(until_renew);
        if let Some(grace) = grace_until {
            wait = wait.min(grace.saturating_duration_since(now));
        }
        let blocking = (index > 0).then_some((index, wait.max(Duration::from_millis(1))));
        match client
            .kv_read_tree(&plan.key, &plan.key, blocking, remaining)
            .await
        {
            Ok((entries, new_index)) => {
                index = if new_index < index {
                    0
                } else {
                    new_index.max(1)
                };
                let held = entries
                    .iter()
                    .any(|e| e.key == plan.key && e.session.is_some());
                if held {
                    grace_until = None;
                    continue;
                }
                let first = entries
                    .iter()
                    .filter(|e| e.key.starts_with(&queue) && e.session.is_some())
                    .min_by_key(|e| e.create_index);
                if first.is_none_or(|e| e.key == mine) {
                    return Ok(Wait::Free { head: true });
                }
                match grace_until {
                    None => grace_until = Some(Instant::now() + HEAD_GRACE),
                    Some(grace) if Instant::now() >= grace => {
                        return Ok(Wait::Free { head: false })
                    }
                    Some(_) => {}
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, create_index: u64, session: Option<&str>) -> crate::KvEntry {
        crate::KvEntry {
            key: key.to_owned(),
            value: Vec::new(),
            session: session.map(str::to_owned),
            lock_index: 1,
            create_index,
            modify_index: create_index,
            flags: 0,
        }
    }

    #[test]
    fn who_counts_as_an_older_waiter() {
        let q = "locks/k/.waiters/";
        let waiters = vec![
            entry("locks/k/.waiters/a", 10, Some("a")),
            entry("locks/k/.waiters/b", 20, Some("b")),
            entry("locks/k/.waiters/dead", 5, None),
        ];
        // A newcomer (not queued) sees live waiters.
        assert!(older_waiter(&waiters, q, "new"));
        // The oldest live waiter has nobody ahead (an entry without a session does not count).
        assert!(!older_waiter(&waiters, q, "a"));
        // A later waiter has someone ahead.
        assert!(older_waiter(&waiters, q, "b"));
        // An empty queue: nobody to yield to.
        assert!(!older_waiter(&[], q, "new"));
    }

    #[test]
    fn the_transaction_size_counts_the_base64_value() {
        assert!(txn_body_size("k", 380 * 1024) <= MAX_VALUE_SIZE);
        assert!(txn_body_size("k", 400 * 1024) > MAX_VALUE_SIZE);
    }
}
