//! The lock `consul lock PREFIX …` takes, as a [`Lock`]: Consul's CLI runs Go's `api.Lock`
//! on `PREFIX/.lock`.

use crate::Lock;

/// The key `consul lock PREFIX` locks under its prefix (Go's `api.DefaultSemaphoreKey`).
const CLI_LOCK_KEY: &str = ".lock";

impl Lock {
    /// The lock `consul lock PREFIX …` takes: the key `PREFIX/.lock`, as a full key (no key
    /// prefix is added, as the CLI adds none). Leading and trailing `/` are dropped from
    /// `prefix`, as the CLI drops them; the rest is checked as a key when the lock is
    /// acquired. The lock key carries Go's lock flag ([`GO_LOCK_FLAG`](crate::GO_LOCK_FLAG)),
    /// so `consul lock` (and Go's `api.Lock` on the same key) waits for this library's holder,
    /// and this library waits for theirs. `consul lock -n N` with N > 1 (a semaphore) is
    /// another protocol: do not use this mapping for its prefix (its `.lock` key holds the
    /// semaphore's state without a session, so a lock would take it and overwrite that).
    ///
    /// ```
    /// use consul_lock_runtime::Lock;
    /// // The same lock as `consul lock jobs/nightly-report ./report.sh`:
    /// let lock = Lock::consul_cli("jobs/nightly-report");
    /// assert_eq!(lock.full_key()?, "jobs/nightly-report/.lock");
    /// assert_eq!(Lock::consul_cli("/jobs/nightly/").full_key()?, "jobs/nightly/.lock");
    /// assert!(Lock::consul_cli("jobs//nightly").full_key().is_err());
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    pub fn consul_cli(prefix: impl AsRef<str>) -> Lock {
        let prefix = prefix.as_ref().trim_matches('/');
        let key = if prefix.is_empty() {
            CLI_LOCK_KEY.to_owned()
        } else {
            format!("{prefix}/{CLI_LOCK_KEY}")
        };
        Lock::new(key).key_prefix("")
    }
}
