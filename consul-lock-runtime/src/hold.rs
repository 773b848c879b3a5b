//! Running a body under a lock (Python's `with lock.hold():`): acquire, run, release on every
//! way out, including a panic or a dropped future.

use std::future::Future;

use crate::{Lock, LockHandle, Result};

impl Lock {
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
    /// # let other = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let guard = lock.clone().client(&other).acquire().await?; // held by another process
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
    /// # let other = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let guard = lock.clone().client(&other).acquire_blocking()?; // held by another process
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
