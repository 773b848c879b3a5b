//! A lock on several keys at once ([`MultiLock`], or [`Lock::all`]): every key or none, in one
//! Consul transaction, and the guard of such a lock ([`MultiLockGuard`]).

use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::entry;
use crate::guard::LockGuard;
use crate::protocol::acquire::Plan;
use crate::protocol::multi::{self, AllKeys, MAX_KEYS};
use crate::value::txn_body_size;
use crate::{Error, Lock, Lost, LostReason, Result, MAX_VALUE_SIZE};

/// A lock on several Consul keys, taken all at once or not at all.
///
/// All keys are locked by one session in one `/v1/txn` (one `lock` operation per key), so two
/// callers locking the same keys in any order can never deadlock: nobody ever holds a part
/// of the set. While any key is held by someone else the acquire waits for it with blocking
/// queries and tries the whole set again, up to the acquire timeout. Releasing destroys the
/// session, which deletes every key. Each key gets its own fencing token.
///
/// - At most [`MAX_KEYS`] (64) keys: Consul 1.10 refuses larger transactions.
/// - Keys that are the same after the prefix is added are locked once (a transfer from an
///   account to itself locks that one account).
/// - The options are those of [`Lock`] and fall back to the same [`defaults`](crate::defaults).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// use consul_lock_runtime::{Lock, MultiLock};
/// use std::time::Duration;
///
/// let both = MultiLock::new(["accounts/alice", "accounts/bob"])
///     .client(&client)
///     .acquire_timeout(Duration::from_secs(2));
/// let guard = both.acquire().await?;
/// assert_eq!(guard.keys(), ["locks/ephemeral/accounts/alice", "locks/ephemeral/accounts/bob"]);
/// // For another process, either key alone is held now, and so is the set in the other order.
/// # let other_process = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// assert!(Lock::new("accounts/bob").client(&other_process).try_acquire().await?.is_none());
/// let reversed = Lock::all(["accounts/bob", "accounts/alice"]).client(&other_process);
/// assert!(reversed.try_acquire().await?.is_none());
/// // This task asking for one of its keys again is refused as re-entry.
/// let again = Lock::new("accounts/bob").client(&client).try_acquire().await;
/// assert!(matches!(again, Err(consul_lock_runtime::Error::Reentrant { .. })));
/// guard.release().await?; // both keys are free again
/// assert!(reversed.try_acquire().await?.is_some());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MultiLock {
    keys: Vec<String>,
    /// The options, shared with [`Lock`]; its key is unused.
    base: Lock,
}

impl fmt::Debug for MultiLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiLock")
            .field("keys", &self.keys)
            .field("options", &self.base)
            .finish()
    }
}

impl Lock {
    /// A lock on all of `keys` at once (see [`MultiLock`]); the same as [`MultiLock::new`].
    ///
    /// ```
    /// use consul_lock_runtime::Lock;
    /// let both = Lock::all(["a", "b"]).key_prefix("locks/");
    /// assert_eq!(both.full_keys()?, ["locks/a", "locks/b"]);
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    pub fn all<I>(keys: I) -> MultiLock
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        MultiLock::new(keys)
    }
}

impl MultiLock {
    /// The `lock` label of this lock's [metrics](crate::metrics) (see [`Lock::metrics_name`];
    /// the attribute sets its templates).
    #[must_use]
    pub fn metrics_name(mut self, name: impl Into<String>) -> MultiLock {
        self.base = self.base.metrics_name(name);
        self
    }

    /// A lock on all of `keys`, each relative to the key prefix (default `locks/ephemeral/`).
    /// The keys are checked when the lock is acquired.
    ///
    /// ```
    /// use consul_lock_runtime::{Error, MultiLock};
    /// let lock = MultiLock::new(["jobs/a", "jobs/b", "jobs/a"]);
    /// // Duplicates are locked once.
    /// assert_eq!(lock.full_keys()?, ["locks/ephemeral/jobs/a", "locks/ephemeral/jobs/b"]);
    /// let none = MultiLock::new(Vec::<String>::new());
    /// assert!(matches!(none.acquire_blocking(), Err(Error::InvalidOption { option: "keys", .. })));
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    pub fn new<I>(keys: I) -> MultiLock
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        MultiLock {
            keys: keys.into_iter().map(Into::into).collect(),
            base: Lock::new(""),
        }
    }

    /// The client to use instead of [`defaults::client`](crate::defaults::client).
    #[must_use]
    pub fn client(mut self, client: impl Into<crate::Client>) -> MultiLock {
        self.base = self.base.client(client);
        self
    }

    /// The key prefix to use instead of [`defaults::key_prefix`](crate::defaults::key_prefix).
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> MultiLock {
        self.base = self.base.key_prefix(prefix);
        self
    }

    /// How long to wait while any key is held; zero means one try (see
    /// [`Lock::acquire_timeout`]).
    #[must_use]
    pub fn acquire_timeout(mut self, timeout: Duration) -> MultiLock {
        self.base = self.base.acquire_timeout(timeout);
        self
    }

    /// The session TTL, 10..=86400 s (see [`Lock::lock_timeout`]).
    #[must_use]
    pub fn lock_timeout(mut self, timeout: Duration) -> MultiLock {
        self.base = self.base.lock_timeout(timeout);
        self
    }

    /// Renew the session at TTL/2 while held, and watch every key (one blocking query per
    /// key), so that a loss of any key is reported at once (see [`Lock::renew`]).
    #[must_use]
    pub fn renew(mut self, on: bool) -> MultiLock {
        self.base = self.base.renew(on);
        self
    }

    /// The function that makes each key's value from the full key (see
    /// [`Lock::value_generator`]).
    #[must_use]
    pub fn value_generator(
        mut self,
        generator: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> MultiLock {
        self.base = self.base.value_generator(generator);
        self
    }

    /// The full keys this lock would take now (prefix + key), checked, duplicates removed
    /// (the first of each is kept, in the order given).
    ///
    /// # Errors
    ///
    /// - [`Error::InvalidKey`] when a key or the prefix is malformed;
    /// - [`Error::InvalidOption`] (`keys`) when there are no keys, or more than [`MAX_KEYS`]
    ///   different ones.
    ///
    /// ```
    /// use consul_lock_runtime::{Error, MultiLock, MAX_KEYS};
    /// let too_many = MultiLock::new((0..=MAX_KEYS).map(|i| format!("k/{i}")));
    /// let err = too_many.full_keys().unwrap_err();
    /// assert!(matches!(err, Error::InvalidOption { option: "keys", .. }));
    /// assert!(err.to_string().contains("65 keys"));
    /// ```
    pub fn full_keys(&self) -> Result<Vec<String>> {
        if self.keys.is_empty() {
            return Err(Error::InvalidOption {
                option: "keys",
                reason: "a lock on several keys needs at least one key; give the keys to \
                         `MultiLock::new` (or `Lock::all`)"
                    .to_owned(),
            });
        }
        let mut full: Vec<String> = Vec::with_capacity(self.keys.len());
        for key in &self.keys {
            let key = self.base.with_key(key.clone()).full_key()?;
            if !full.contains(&key) {
                full.push(key);
            }
        }
        if full.len() > MAX_KEYS {
            return Err(Error::InvalidOption {
                option: "keys",
                reason: format!(
                    "{} keys ({}, …) are more than the {MAX_KEYS} one Consul transaction may \
                     lock (Consul 1.10 refuses transactions of more than 64 operations); lock \
                     fewer keys, or a coarser key that stands for several",
                    full.len(),
                    full[..3].join(", ")
                ),
            });
        }
        Ok(full)
    }

    fn plan(&self) -> Result<Plan<AllKeys>> {
        let keys = self.full_keys()?;
        let label = multi::label(&keys);
        let mut values = Vec::with_capacity(keys.len());
        let mut first = None;
        for key in &keys {
            // Each key planned as a lock of its own: the same checks of the lock timeout and
            // the value, and the key's own value.
            let plan = self
                .base
                .clone()
                .key_prefix("")
                .with_key(key.clone())
                .plan()?;
            values.push(plan.kind.value);
            first.get_or_insert((
                plan.client,
                plan.acquire_timeout,
                plan.ttl,
                plan.metrics_name,
            ));
        }
        let Some((client, acquire_timeout, ttl, metrics_name)) = first else {
            return Err(Error::InvalidOption {
                option: "keys",
                reason: "a lock on several keys needs at least one key".to_owned(),
            });
        };
        let body = txn_body_size(
            keys.iter()
                .map(String::as_str)
                .zip(values.iter().map(Vec::len)),
        );
        if body > MAX_VALUE_SIZE {
            return Err(Error::InvalidOption {
                option: "value_generator",
                reason: format!(
                    "the values for lock `{label}` make a {body}-byte transaction (values are \
                     base64-encoded) over Consul's limit of {MAX_VALUE_SIZE} bytes (512 KiB); \
                     make the values smaller or lock fewer keys"
                ),
            });
        }
        Ok(Plan {
            client,
            kind: AllKeys {
                keys,
                values,
                label,
            },
            acquire_timeout,
            ttl,
            metrics_name,
            own_session: self.base.wants_own_session(),
        })
    }

    /// The whole acquisition as one piece of work, for the entry points to run where it should.
    fn acquisition(&self) -> Result<impl Future<Output = Result<MultiLockGuard>> + Send + 'static> {
        entry::acquisition(self.plan()?, self.base.renews(), |inner| MultiLockGuard {
            inner,
        })
    }

    /// Acquires every key, waiting up to the acquire timeout while any of them is held.
    /// Dropping the future cancels the acquire; a session it created is destroyed in the
    /// background.
    ///
    /// # Errors
    ///
    /// - [`Error::NotAcquired`]: some key stayed held for the whole timeout (the error names
    ///   all the keys); nothing was taken;
    /// - [`Error::InvalidKey`] / [`Error::InvalidOption`]: before any request (a malformed
    ///   key, no keys, more than [`MAX_KEYS`], a value too large, a lock timeout out of range);
    /// - [`Error::PermissionDenied`]: the ACL token may not create sessions or write a key;
    /// - [`Error::ConsulRefused`] / [`Error::Unreachable`]: Consul failed for the whole
    ///   timeout (or on the one try).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::{Error, Lock};
    /// # let other_process = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let one = Lock::new("acquire-all/b").client(&other_process).acquire().await?;
    /// let both = Lock::all(["acquire-all/a", "acquire-all/b"]).client(&client);
    /// let err = both.acquire().await.unwrap_err(); // b is held: nothing is taken
    /// assert!(matches!(err, Error::NotAcquired { .. }));
    /// assert!(err.to_string().contains("acquire-all/a, locks/ephemeral/acquire-all/b"));
    /// assert!(client.kv_get("locks/ephemeral/acquire-all/a").await?.is_none());
    /// one.release().await?;
    /// both.acquire().await?.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn acquire(&self) -> Result<MultiLockGuard> {
        entry::run(self.acquisition()).await
    }

    /// Like [`acquire`](Self::acquire), but "not acquired in time" is `Ok(None)`.
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
    /// let both = Lock::all(["try-all/a", "try-all/b"]).client(&client);
    /// let guard = both.try_acquire().await?.expect("free");
    /// # let other = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let elsewhere = both.clone().client(&other); // as another process
    /// assert!(elsewhere.try_acquire().await?.is_none()); // held: None, not an error
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn try_acquire(&self) -> Result<Option<MultiLockGuard>> {
        entry::not_acquired_as_none(self.acquire().await)
    }

    /// Acquires every key, blocking the calling thread (safe inside a tokio runtime).
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
    /// let guard = Lock::all(["blocking-all/a", "blocking-all/b"]).client(&client).acquire_blocking()?;
    /// assert!(guard.is_held());
    /// guard.release_blocking()?;
    /// # Ok(()) }
    /// ```
    pub fn acquire_blocking(&self) -> Result<MultiLockGuard> {
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
    /// let both = Lock::all(["try-blocking-all/a", "try-blocking-all/b"]).client(&client);
    /// let guard = both.try_acquire_blocking()?.expect("free");
    /// # let other = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// assert!(both.clone().client(&other).try_acquire_blocking()?.is_none()); // another process
    /// guard.release_blocking()?;
    /// # Ok(()) }
    /// ```
    pub fn try_acquire_blocking(&self) -> Result<Option<MultiLockGuard>> {
        entry::not_acquired_as_none(self.acquire_blocking())
    }
}

/// Every key of a [`MultiLock`], held by one session. Dropping it releases all of them in the
/// background; [`release`](Self::release) releases and reports the outcome.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// use consul_lock_runtime::{Lock, LostReason};
/// let guard = Lock::all(["guard-all/a", "guard-all/b"]).client(&client).acquire().await?;
/// for (key, token) in guard.fencing_tokens() {
///     let entry = client.kv_get(key).await?.expect("held");
///     assert_eq!(entry.modify_index, *token);
///     assert_eq!(entry.session.as_deref(), Some(guard.session_id()));
/// }
/// assert_eq!(guard.fencing_token("locks/ephemeral/guard-all/b"), guard.fencing_tokens().get(1).map(|t| t.1));
/// let lost = guard.lost();
/// guard.release().await?;
/// assert_eq!(lost.await, LostReason::Released);
/// # Ok(()) }
/// ```
#[must_use = "the keys are released as soon as the guard is dropped"]
pub struct MultiLockGuard {
    inner: LockGuard,
}

impl MultiLockGuard {
    /// The full keys held, in the order given (duplicates removed).
    #[must_use]
    pub fn keys(&self) -> Vec<&str> {
        self.inner.held().iter().map(|(k, _)| k.as_str()).collect()
    }

    /// Each key with its fencing token: the `ModifyIndex` of the write that took it (all keys
    /// are written by one transaction, so Consul gives them the same index today).
    #[must_use]
    pub fn fencing_tokens(&self) -> &[(String, u64)] {
        self.inner.held()
    }

    /// The fencing token of `key` (a full key, as [`keys`](Self::keys) gives it), or `None`
    /// when this guard does not hold it.
    #[must_use]
    pub fn fencing_token(&self, key: &str) -> Option<u64> {
        self.inner
            .held()
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, t)| *t)
    }

    /// The Consul session that holds every key.
    #[must_use]
    pub fn session_id(&self) -> &str {
        self.inner.session_id()
    }

    /// Writes that Consul applies only while this guard's session still holds **every** key
    /// (one `check-session` per key, counted against [`MAX_TXN_OPS`](crate::MAX_TXN_OPS); see
    /// [`Fence`](crate::Fence)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::{KvOp, Lock};
    /// let guard = Lock::all(["accounts/17", "accounts/42"]).client(&client).acquire().await?;
    /// let fence = guard.fence();
    /// assert_eq!(fence.checks().len(), 2);
    /// fence.txn([KvOp::set("balances/17", "90"), KvOp::set("balances/42", "110")]).await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn fence(&self) -> crate::Fence {
        self.inner.fence()
    }

    /// Whether every key is still held (see [`LockGuard::is_held`]).
    #[must_use]
    pub fn is_held(&self) -> bool {
        self.inner.is_held()
    }

    /// Why the keys are no longer held, or `None` while they are.
    #[must_use]
    pub fn lost_reason(&self) -> Option<LostReason> {
        self.inner.lost_reason()
    }

    /// A future that completes when any key is lost, or the keys are released (with `renew`,
    /// every key is watched; without it, when the TTL runs out).
    pub fn lost(&self) -> Lost {
        self.inner.lost()
    }

    /// Releases every key: destroys the session, which deletes them all, retrying until
    /// Consul confirms it. The release runs to completion even if this future is dropped.
    ///
    /// A release Consul does not confirm in time goes on in the background (as
    /// [`LockGuard::release`]'s), which is not an error.
    ///
    /// # Errors
    ///
    /// [`Error::PermissionDenied`] or [`Error::ConsulRefused`] (4xx) when Consul refused to
    /// destroy the session; the keys are then freed by the TTL.
    pub async fn release(self) -> Result<()> {
        self.inner.release().await
    }

    /// Releases every key, blocking the calling thread (safe inside a tokio runtime).
    ///
    /// # Errors
    ///
    /// As [`release`](Self::release).
    pub fn release_blocking(self) -> Result<()> {
        self.inner.release_blocking()
    }
}

impl fmt::Debug for MultiLockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MultiLockGuard")
            .field("fencing_tokens", &self.fencing_tokens())
            .field("session_id", &self.session_id())
            .field("held", &self.is_held())
            .finish()
    }
}
