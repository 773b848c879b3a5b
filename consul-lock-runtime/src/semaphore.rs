//! The semaphore: at most N holders at once, in Consul's own semaphore layout, shared with Go's
//! `api.Semaphore` and `consul lock -n N` (see [`Semaphore`]). The builder, its checks before
//! any request, its entry points, and the guard of a held slot.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use crate::exec;
use crate::guard::LockGuard;
use crate::protocol::acquire::Plan;
use crate::protocol::semaphore::{self as protocol, Slot};
use crate::{entry, Client, Error, Lock, LockHandle, Lost, LostReason, Result};

pub use crate::protocol::semaphore::{MAX_SEMAPHORE_LIMIT, SEMAPHORE_FLAGS, SEMAPHORE_LOCK_KEY};

/// A semaphore on one Consul prefix: at most `limit` holders at once, configured but not yet
/// taken.
///
/// It uses Consul's own semaphore layout, as Go's `api.Semaphore` (and so `consul lock -n N
/// PREFIX cmd`) does, so that services in Rust and Go, and `consul lock` jobs, share the same
/// slots: each contender's session acquires `PREFIX/<session>`, and `PREFIX/.lock` holds
/// `{"Limit":N,"Holders":{"<session>":true,…}}`, updated with check-and-set; both carry the
/// flags [`SEMAPHORE_FLAGS`]. A holder whose session ended is pruned by the next contender.
/// Every holder of one prefix must use the same limit.
///
/// The prefix is the key prefix (default `locks/ephemeral/`) followed by the key. Options left
/// unset fall back to [`defaults`](crate::defaults), as for a [`Lock`](crate::Lock).
///
/// ```
/// use consul_lock_runtime::Semaphore;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// let exports = Semaphore::new("reports/exports", 2).acquire_timeout(Duration::from_millis(200));
/// # let (a, b, c) = (client.clone(), consul_lock_runtime::Client::builder().address(server.url()).build()?, consul_lock_runtime::Client::builder().address(server.url()).build()?);
/// // Three processes (clients a, b and c); a task asking again for a slot it holds gets
/// // `Error::Reentrant`.
/// let first = exports.clone().client(&a).acquire().await?;
/// let second = exports.clone().client(&b).acquire().await?;
/// assert!(exports.clone().client(&c).try_acquire().await?.is_none()); // both slots taken
/// first.release().await?;
/// let third = exports.clone().client(&c).acquire().await?; // a slot was given back
/// # second.release().await?; third.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Semaphore {
    /// The options shared with a lock (client, key and prefix, timeouts, renewal, value,
    /// metrics name); its key is the semaphore's prefix, relative to the key prefix.
    base: Lock,
    limit: u32,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("limit", &self.limit)
            .field("options", &self.base)
            .finish()
    }
}

impl Semaphore {
    /// The `lock` label of this semaphore's [metrics](crate::metrics) (see
    /// [`Lock::metrics_name`](crate::Lock::metrics_name); the attribute sets its template).
    #[must_use]
    pub fn metrics_name(mut self, name: impl Into<String>) -> Semaphore {
        self.base = self.base.metrics_name(name);
        self
    }

    /// A semaphore of `limit` slots (1..=[`MAX_SEMAPHORE_LIMIT`]) on `key`, relative to the
    /// key prefix. The key and the limit are checked when it is acquired. A limit of 1 is a
    /// one-slot semaphore in the semaphore layout (shared with Go's `api.Semaphore` of limit
    /// 1); for plain mutual exclusion use a [`Lock`](crate::Lock).
    ///
    /// ```
    /// use consul_lock_runtime::{Error, Semaphore};
    /// let sem = Semaphore::new("jobs/encode", 4).key_prefix("locks/");
    /// assert_eq!(sem.full_prefix()?, "locks/jobs/encode");
    /// let zero = Semaphore::new("jobs/encode", 0);
    /// assert!(matches!(zero.acquire_blocking(), Err(Error::InvalidOption { option: "limit", .. })));
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    pub fn new(key: impl Into<String>, limit: u32) -> Semaphore {
        Semaphore {
            base: Lock::new(key),
            limit,
        }
    }

    /// The client to use instead of [`defaults::client`](crate::defaults::client).
    #[must_use]
    pub fn client(mut self, client: impl Into<Client>) -> Semaphore {
        self.base = self.base.client(client);
        self
    }

    /// The key prefix to use instead of [`defaults::key_prefix`](crate::defaults::key_prefix).
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Semaphore {
        self.base = self.base.key_prefix(prefix);
        self
    }

    /// How long to wait for a free slot; zero means one try.
    #[must_use]
    pub fn acquire_timeout(mut self, timeout: Duration) -> Semaphore {
        self.base = self.base.acquire_timeout(timeout);
        self
    }

    /// The slot's maximum lifespan without renewal: the session TTL, as
    /// [`Lock::lock_timeout`](crate::Lock::lock_timeout).
    #[must_use]
    pub fn lock_timeout(mut self, timeout: Duration) -> Semaphore {
        self.base = self.base.lock_timeout(timeout);
        self
    }

    /// Renew the session at TTL/2 while the slot is held and watch the contender key, so that
    /// [`SemaphoreGuard::lost`] reports a loss at once (as [`Lock::renew`](crate::Lock::renew)).
    #[must_use]
    pub fn renew(mut self, renew: bool) -> Semaphore {
        self.base = self.base.renew(renew);
        self
    }

    /// What to store in this holder's contender key (default: [`defaults::value_generator`](crate::defaults::value_generator):
    /// when and by whom it was taken), given the semaphore's full prefix.
    #[must_use]
    pub fn value_generator(
        mut self,
        generator: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> Semaphore {
        self.base = self.base.value_generator(generator);
        self
    }

    /// The full prefix: the key prefix followed by the key.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] when the key or the prefix is not a valid Consul key.
    pub fn full_prefix(&self) -> Result<String> {
        self.base.full_key()
    }

    fn plan(&self) -> Result<Plan<Slot>> {
        let prefix = self.full_prefix()?;
        if self.limit == 0 || self.limit > MAX_SEMAPHORE_LIMIT {
            return Err(Error::InvalidOption {
                option: "limit",
                reason: format!(
                    "{} for semaphore `{prefix}` is outside 1..={MAX_SEMAPHORE_LIMIT}; choose a limit in that range",
                    self.limit
                ),
            });
        }
        let (client, ttl) = self.base.client_and_ttl("semaphore", &prefix)?;
        let value = self.base.value_for(&prefix);
        if value.len() > crate::MAX_VALUE_SIZE / 2 {
            return Err(Error::InvalidOption {
                option: "value_generator",
                reason: format!(
                    "the value for semaphore `{prefix}` is {} bytes; keep it under {} bytes",
                    value.len(),
                    crate::MAX_VALUE_SIZE / 2
                ),
            });
        }
        Ok(Plan {
            client,
            kind: Slot::new(prefix, self.limit, value),
            acquire_timeout: self.base.acquire_timeout_or_default(),
            ttl,
            metrics_name: self.base.metrics_label(),
            own_session: true,
        })
    }

    fn acquisition(&self) -> Result<impl Future<Output = Result<SemaphoreGuard>> + Send + 'static> {
        let plan = self.plan()?;
        let (prefix, limit) = (plan.kind.prefix.clone(), self.limit);
        entry::acquisition(plan, self.base.renews(), move |inner| SemaphoreGuard {
            inner: Some(inner),
            prefix,
            limit,
        })
    }

    /// Takes a slot, waiting up to the acquire timeout for one to be free (with blocking
    /// queries: a release wakes the waiters at once).
    ///
    /// # Errors
    ///
    /// [`Error::NotAcquired`] when every slot stayed taken for the whole acquire timeout;
    /// [`Error::InvalidOption`] for a limit out of range or one that disagrees with the limit
    /// stored in `PREFIX/.lock` (the message gives both); [`Error::InvalidKey`] for a bad key,
    /// or a `PREFIX/.lock` that is not a semaphore's; [`Error::Unreachable`],
    /// [`Error::ConsulRefused`], [`Error::PermissionDenied`] when Consul fails.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::{Error, Semaphore};
    /// let guard = Semaphore::new("acquire-example", 3).client(&client).acquire().await?;
    /// # let other_process = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let other = Semaphore::new("acquire-example", 5).client(&other_process).acquire().await;
    /// assert!(matches!(other, Err(Error::InvalidOption { option: "limit", .. }))); // 3 ≠ 5
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn acquire(&self) -> Result<SemaphoreGuard> {
        entry::run(self.acquisition()).await
    }

    /// As [`acquire`](Self::acquire), fail-soft: `None` when no slot came free in time.
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire), except [`Error::NotAcquired`].
    pub async fn try_acquire(&self) -> Result<Option<SemaphoreGuard>> {
        entry::not_acquired_as_none(self.acquire().await)
    }

    /// As [`acquire`](Self::acquire), blocking the calling thread (safe inside tokio).
    ///
    /// # Errors
    ///
    /// As [`acquire`](Self::acquire).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let sem = consul_lock_runtime::Semaphore::new("blocking-example", 1).client(&client);
    /// let guard = sem.acquire_blocking()?;
    /// # let other = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// assert!(sem.clone().client(&other).try_acquire_blocking()?.is_none()); // another process
    /// guard.release_blocking()?;
    /// assert!(sem.try_acquire_blocking()?.is_some());
    /// # Ok(()) }
    /// ```
    pub fn acquire_blocking(&self) -> Result<SemaphoreGuard> {
        entry::run_blocking(self.acquisition())
    }

    /// As [`try_acquire`](Self::try_acquire), blocking the calling thread.
    ///
    /// # Errors
    ///
    /// As [`try_acquire`](Self::try_acquire).
    pub fn try_acquire_blocking(&self) -> Result<Option<SemaphoreGuard>> {
        entry::not_acquired_as_none(self.acquire_blocking())
    }
}

/// A held slot of a [`Semaphore`]. Dropping it gives the slot back in the background without
/// blocking; [`release`](Self::release) gives it back and reports the outcome.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// use consul_lock_runtime::{LostReason, Semaphore};
/// let guard = Semaphore::new("guard-example", 2).client(&client).acquire().await?;
/// assert_eq!(guard.prefix(), "locks/ephemeral/guard-example");
/// assert_eq!(guard.limit(), 2);
/// assert!(guard.is_held());
/// let lost = guard.lost();
/// guard.release().await?;
/// assert_eq!(lost.await, LostReason::Released);
/// # Ok(()) }
/// ```
#[must_use = "the slot is given back as soon as the guard is dropped"]
pub struct SemaphoreGuard {
    /// The contender key's lease: renewal, watch, loss, and the session's release.
    inner: Option<LockGuard>,
    prefix: String,
    limit: u32,
}

impl SemaphoreGuard {
    fn inner(&self) -> &LockGuard {
        // `inner` is taken only by `release`, which consumes the guard.
        self.inner.as_ref().unwrap_or_else(|| unreachable!())
    }

    /// The semaphore's full prefix.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The number of slots.
    #[must_use]
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// This holder's contender key, `PREFIX/<session>`.
    #[must_use]
    pub fn contender_key(&self) -> &str {
        self.inner().key()
    }

    /// The Consul session that holds the slot.
    #[must_use]
    pub fn session_id(&self) -> &str {
        self.inner().session_id()
    }

    /// Whether the slot is still held (see [`LockHandle::is_held`]).
    #[must_use]
    pub fn is_held(&self) -> bool {
        self.inner().is_held()
    }

    /// Why the slot is no longer held, or `None` while it is.
    #[must_use]
    pub fn lost_reason(&self) -> Option<LostReason> {
        self.inner().lost_reason()
    }

    /// A future that completes when the slot is lost: the session ended or the contender key
    /// was deleted (reported at once with [`Semaphore::renew`]), or the TTL ran out.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::{LostReason, Semaphore};
    /// let guard = Semaphore::new("sem-lost-example", 2).client(&client).renew(true).acquire().await?;
    /// client.destroy_session(guard.session_id()).await?; // taken away from outside
    /// let reason = tokio::time::timeout(std::time::Duration::from_secs(5), guard.lost()).await?;
    /// assert_eq!(reason, LostReason::SessionInvalidated);
    /// # Ok(()) }
    /// ```
    pub fn lost(&self) -> Lost {
        self.inner().lost()
    }

    /// Writes that Consul applies only while this holder's session still holds its slot (its
    /// contender key, `PREFIX/<session>`; see [`Fence`](crate::Fence)).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let slot = consul_lock_runtime::Semaphore::new("sem-fence-example", 2).client(&client).acquire().await?;
    /// let fence = slot.fence();
    /// assert_eq!(fence.checks()[0].0, slot.contender_key());
    /// fence.put("exports/17/state", "running").await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn fence(&self) -> crate::Fence {
        self.inner().fence()
    }

    /// A cloneable `'static` view of the slot (its key is the contender key).
    #[must_use]
    pub fn handle(&self) -> LockHandle {
        self.inner().handle()
    }

    /// Gives the slot back: removes this holder from `PREFIX/.lock` and deletes its contender
    /// key in one transaction, then destroys the session, retried until Consul confirms it.
    ///
    /// # Errors
    ///
    /// As [`LockGuard::release`]: Consul refused to destroy the session (a release it does not
    /// confirm in time goes on in the background and is not an error); its TTL then ends it
    /// and the next contender prunes the holder.
    pub async fn release(mut self) -> Result<()> {
        let Some(inner) = self.inner.take() else {
            return Ok(());
        };
        exec::run_to_completion(self.give_back(&inner)).await?;
        inner.release().await
    }

    /// As [`release`](Self::release), blocking the calling thread (safe inside tokio).
    ///
    /// # Errors
    ///
    /// As [`release`](Self::release).
    pub fn release_blocking(mut self) -> Result<()> {
        let Some(inner) = self.inner.take() else {
            return Ok(());
        };
        exec::run_blocking(self.give_back(&inner))?;
        inner.release_blocking()
    }

    /// The first step of a release (the session's end is the second, as in Go's `Release`):
    /// records the release (the contender key's watch must not report it as a loss), then
    /// removes this holder from `PREFIX/.lock` and deletes its contender key; the slot is
    /// free then, so this process's next task for the semaphore may start.
    fn give_back(&self, inner: &LockGuard) -> impl Future<Output = Result<()>> + Send + 'static {
        inner.mark_released();
        let lease = inner.lease();
        let (prefix, limit) = (self.prefix.clone(), self.limit);
        async move {
            protocol::leave(&lease, &prefix, limit).await;
            Ok(())
        }
    }
}

impl Drop for SemaphoreGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            let give_back = self.give_back(&inner);
            exec::spawn_cleanup(async move {
                let _ = give_back.await;
                // Dropping the guard ends the session.
                drop(inner);
            });
        }
    }
}

impl fmt::Debug for SemaphoreGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphoreGuard")
            .field("prefix", &self.prefix)
            .field("limit", &self.limit)
            .field("held", &self.inner.as_ref().is_some_and(LockGuard::is_held))
            .finish()
    }
}
