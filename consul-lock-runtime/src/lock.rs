//! The lock (Python's `EphemeralLock`): the builder, its checks before any request, and the
//! entry points (async, blocking, fail-soft, and `hold` forms). Each entry point resolves a
//! [`Plan`] of a [`LockKey`] and hands it to the one entry path of every kind ([`entry`]).

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::config::SESSION_TTL_MAX;
use crate::entry;
use crate::error::DisplayDuration;
use crate::guard::LockGuard;
use crate::protocol::acquire::Plan;
use crate::protocol::one_key::LockKey;
use crate::value::{txn_body_size, ValueGenerator, MAX_VALUE_SIZE};
use crate::{defaults, key, Client, Error, Result};

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
/// // Fail hard: an error when another holder (here another client) keeps the key too long.
/// # let other = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// let guard = lock.clone().client(&other).acquire().await?;
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
    own_session: bool,
    value: Option<ValueGenerator>,
    metrics_name: Option<Arc<str>>,
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
            .field("own_session", &self.own_session)
            .field("metrics_name", &self.metrics_name)
            .finish_non_exhaustive()
    }
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
            own_session: false,
            value: None,
            metrics_name: None,
        }
    }

    /// The `lock` label of this lock's [metrics](crate::metrics): a name that stays the same
    /// for every key of one kind (the key *template*, such as `send/user-<user_id>/welcome`),
    /// never the rendered key, so the number of series stays bounded. The attribute sets its
    /// template; without a name the label is `unnamed`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Lock;
    /// let user_id = 42;
    /// let guard = Lock::new(format!("send/user-{user_id}/welcome"))
    ///     .metrics_name("send/user-<user_id>/welcome")
    ///     .client(&client)
    ///     .acquire()
    ///     .await?;
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn metrics_name(mut self, name: impl Into<String>) -> Lock {
        self.metrics_name = Some(Arc::from(name.into()));
        self
    }

    /// The `lock` label of this lock's metrics.
    pub(crate) fn metrics_label(&self) -> Arc<str> {
        self.metrics_name
            .clone()
            .unwrap_or_else(|| Arc::from(crate::metrics::UNNAMED))
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
    /// // Create a session, lock, release; and, on a client's first lock, two requests asking
    /// // what kind of agent this is (a server's failure can end its node's sessions).
    /// assert_eq!(client.requests_sent(), 3 + 2);
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
    /// **Without renewal nothing is sent while the lock is held**, so a holder learns of a
    /// release forced from outside (`consul-lock release --force`, a destroyed session, a
    /// deleted key) only where it asks: the first [`LockGuard::lost`](crate::LockGuard::lost)
    /// starts a watch of the key and completes at once on such a release; without a `lost()`,
    /// [`is_held`](crate::LockGuard::is_held) stays true until the lock timeout runs out,
    /// because it makes no request. Protect writes with the
    /// [fencing token](crate::LockGuard::fencing_token) when a stale holder must not win.
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

    /// Take the key with a session of the lock's own (default off): created for this lock,
    /// with the lock timeout as its TTL, and destroyed by the release (three Raft writes per
    /// lock: create, take, destroy).
    ///
    /// By default a lock whose lock timeout is at least the client's
    /// [`shared_session_ttl`](crate::ClientBuilder::shared_session_ttl) (15 s by default; the
    /// default lock timeout is 180 s) takes its key with the client's shared session: two Raft
    /// writes per lock (take, give back). Its lock timeout still bounds its life: the key is
    /// given back at the lock timeout (without renewal; `lost()` says
    /// [`Expired`](crate::LostReason::Expired)), and if the process dies Consul frees the key
    /// within twice the shared session's TTL. A lock with a shorter lock timeout, a lease its
    /// node's failure can end ([`danger_node_health_check`](crate::ClientBuilder::danger_node_health_check),
    /// a server of a cluster), a semaphore's slot and a lock on 64 keys always have a session
    /// of their own.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).agent_is_server(false).build()?;
    /// use consul_lock_runtime::Lock;
    /// let a = Lock::new("own-session-a").client(&client).acquire().await?;
    /// let b = Lock::new("own-session-b").client(&client).acquire().await?;
    /// assert_eq!(a.session_id(), b.session_id()); // the client's shared session
    /// let c = Lock::new("own-session-c").client(&client).own_session(true).acquire().await?;
    /// assert_ne!(c.session_id(), a.session_id());
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn own_session(mut self, on: bool) -> Lock {
        self.own_session = on;
        self
    }

    /// Whether the lock asks for a session of its own.
    pub(crate) fn wants_own_session(&self) -> bool {
        self.own_session
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
        key::validate_prefix(&prefix)?;
        key::validate(&self.key)?;
        let full = format!("{prefix}{}", self.key);
        key::validate(&full)?;
        Ok(full)
    }

    /// This lock's options on another key (a lock on several keys plans each key so).
    pub(crate) fn with_key(&self, key: String) -> Lock {
        Lock {
            key,
            ..self.clone()
        }
    }

    /// Whether the lock renews its session while held.
    pub(crate) fn renews(&self) -> bool {
        self.renew
    }

    /// The client (this lock's, or [`defaults::client`]) and the checked session TTL, for
    /// the `what` named `name` (`lock`, `semaphore`) in errors.
    pub(crate) fn client_and_ttl(&self, what: &str, name: &str) -> Result<(Client, Duration)> {
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
                    "{} for {what} `{name}` is outside the allowed {}..={} s; choose a value in that range \
                     (the lower bound is the agent's session_ttl_min, settable on the client for agents \
                     configured lower)",
                    DisplayDuration(ttl),
                    min.as_secs_f64(),
                    SESSION_TTL_MAX.as_secs()
                ),
            });
        }
        Ok((client, ttl))
    }

    /// The value to store for `key`: this lock's generator's, or the default one's.
    pub(crate) fn value_for(&self, key: &str) -> Vec<u8> {
        let generator = self.value.clone().unwrap_or_else(defaults::value_generator);
        generator(key).into_bytes()
    }

    /// The acquire timeout: this lock's, or [`defaults::acquire_timeout`].
    pub(crate) fn acquire_timeout_or_default(&self) -> Duration {
        self.acquire_timeout
            .unwrap_or_else(defaults::acquire_timeout)
    }

    pub(crate) fn plan(&self) -> Result<Plan<LockKey>> {
        let key = self.full_key()?;
        let (client, ttl) = self.client_and_ttl("lock", &key)?;
        let value = self.value_for(&key);
        // The key appears twice in the lock transaction: in the lock and in the queue prefix.
        let body = txn_body_size([(key.as_str(), value.len()), (key.as_str(), 0)]);
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
            kind: LockKey { key, value },
            acquire_timeout: self.acquire_timeout_or_default(),
            ttl,
            metrics_name: self.metrics_label(),
            own_session: self.own_session,
        })
    }

    /// The whole acquisition as one piece of work, for the entry points to run where it should
    /// run ([`entry::run`] or [`entry::run_blocking`]).
    fn acquisition(&self) -> Result<impl Future<Output = Result<LockGuard>> + Send + 'static> {
        entry::acquisition(self.plan()?, self.renew, |guard| guard)
    }

    /// Acquires the lock, waiting up to the acquire timeout for a held key (Python's
    /// `acquire(fail_hard=True)`).
    ///
    /// Dropping the future cancels the acquire; a session it created is destroyed in the
    /// background (see [`flush_releases`](crate::flush_releases)).
    ///
    /// # Errors
    ///
    /// - [`Error::NotAcquired`]: another session held the key for the whole timeout, or the
    ///   timeout ran out while Consul's answer to a request was on its way (each request gets
    ///   only the time left; see [`Blocker`](crate::Blocker));
    /// - [`Error::InvalidKey`] / [`Error::InvalidOption`]: before any request;
    /// - [`Error::PermissionDenied`]: the ACL token may not create sessions or write the key;
    /// - [`Error::ConsulRefused`] / [`Error::Unreachable`]: Consul failed for the whole timeout
    ///   (or on the one try): it answered with an error status, gave no answer within the
    ///   client's request timeout, or could not be connected to.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::{Error, Lock};
    /// let lock = Lock::new("acquire-example").client(&client);
    /// let guard = lock.acquire().await?;
    /// assert!(guard.is_held());
    /// // Held: with the default acquire timeout (one try) another process's acquire fails at
    /// // once; this task asking again is refused as re-entry.
    /// # let other = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let elsewhere = lock.clone().client(&other);
    /// assert!(matches!(elsewhere.acquire().await, Err(Error::NotAcquired { .. })));
    /// assert!(matches!(lock.acquire().await, Err(Error::Reentrant { .. })));
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn acquire(&self) -> Result<LockGuard> {
        entry::run(self.acquisition()).await
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
    /// # let other = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let guard = lock.try_acquire().await?.expect("the key is free");
    /// // Held: another process (here another client) gets None, not an error.
    /// assert!(lock.clone().client(&other).try_acquire().await?.is_none());
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn try_acquire(&self) -> Result<Option<LockGuard>> {
        entry::not_acquired_as_none(self.acquire().await)
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
        entry::run_blocking(self.acquisition())
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
    /// # let other = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let guard = lock.try_acquire_blocking()?.expect("the key is free");
    /// // Held: another process (here another client) gets None, not an error.
    /// assert!(lock.clone().client(&other).try_acquire_blocking()?.is_none());
    /// guard.release_blocking()?;
    /// # Ok(()) }
    /// ```
    pub fn try_acquire_blocking(&self) -> Result<Option<LockGuard>> {
        entry::not_acquired_as_none(self.acquire_blocking())
    }
}
