//! The Consul client behind [`consul-lock`](https://docs.rs/consul-lock): sessions, KV reads,
//! blocking queries, transactions, and the lock protocol built on them. Use it through the
//! `consul-lock` crate, which re-exports everything here and adds the `#[consul_lock]`
//! attribute.
//!
//! # Taking a lock
//!
//! ```
//! use consul_lock_runtime::{Client, Lock};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let server = consul_lock_testkit::TestServer::start()?;
//! // Usually `Client::from_env()?` (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, …); here a test server.
//! let client = Client::builder().address(server.url()).build()?;
//! let guard = Lock::new("send/user-42/welcome-email")
//!     .client(&client)
//!     .acquire_timeout(Duration::from_millis(500))
//!     .acquire()
//!     .await?;
//! // … work; pass guard.fencing_token() to the systems you write to …
//! assert!(guard.is_held());
//! guard.release().await?;
//! # Ok(()) }
//! ```
//!
//! # What a lock is here
//!
//! A lock is a Consul session (TTL = the lock timeout, `LockDelay` 0, `Behavior` delete, no
//! health checks) that holds the key. It is a lease, not a mutex: if the holder stops
//! renewing, Consul frees the key between once and twice the TTL later, whether or not the
//! holder is done. Write to Consul through the lock's [`Fence`] (Consul refuses a holder that
//! lost its lock), use the [fencing token](LockGuard::fencing_token) to make other systems
//! you write to reject such a holder, and [`LockGuard::lost`] to stop work when it happens.
//!
//! # A tour
//!
//! - [`Lock`] configures a lock on one key (prefix, acquire timeout, lock timeout, renewal,
//!   value) and takes it: [`acquire`](Lock::acquire) / [`try_acquire`](Lock::try_acquire),
//!   [`hold`](Lock::hold) / [`try_hold`](Lock::try_hold) to run a body under it, and a
//!   `_blocking` form of each.
//! - [`LockGuard`] is a held lock: its key, [fencing token](LockGuard::fencing_token),
//!   [`is_held`](LockGuard::is_held), [`lost`](LockGuard::lost) (a future that completes when
//!   the lock is lost), [`fence`](LockGuard::fence) (KV writes that Consul applies only while
//!   the lock is held: [`Fence`], [`KvOp`]) and [`release`](LockGuard::release); dropping it
//!   releases in the background. [`LockHandle`] is a cloneable `'static` view of it for other
//!   tasks.
//! - [`MultiLock`] (or [`Lock::all`]) takes several keys at once, all or none, in one
//!   transaction (no deadlock whatever the order); [`MultiLockGuard`] holds them.
//! - [`Semaphore`] lets at most N holders in at once, in Consul's own semaphore layout (shared
//!   with Go's `api.Semaphore` and `consul lock -n N`); [`SemaphoreGuard`] is a held slot.
//! - [`Election`] elects one leader among processes (`service/<name>/leader`, as in Consul's
//!   guide): [`campaign`](Election::campaign) gives a [`Leadership`] (fencing token,
//!   `is_leader`, `stopping`, `proclaim`, `resign`), [`leader`](Election::leader) and
//!   [`observe`](Election::observe) tell anyone who leads, and [`run`](Election::run) runs
//!   work while leading, stopping it within a grace when the leadership ends.
//! - [`Client`] is one Consul agent ([`ClientBuilder`], [`Client::from_env`]); it also reads
//!   keys and sessions for tools and tests: [`kv_get`](Client::kv_get),
//!   [`kv_watch`](Client::kv_watch), [`kv_keys`](Client::kv_keys),
//!   [`kv_list`](Client::kv_list), [`sessions`](Client::sessions),
//!   [`destroy_session`](Client::destroy_session).
//! - [`defaults`] holds the process-wide client, key prefix and timeouts; [`key`] renders
//!   and checks keys; every failure is one [`Error`].
//!
//! # Sync and async
//!
//! Async calls made inside a tokio runtime run right there. The blocking API
//! ([`Lock::acquire_blocking`], [`LockGuard::release_blocking`]) and async calls from other
//! executors run on one small background worker thread, so the blocking API works from any
//! thread, including threads inside a tokio runtime, and the async API works on any executor.
//! Dropping a [`LockGuard`] releases the lock in the background without blocking;
//! [`flush_releases`] waits for such releases, for example before the process exits.
//!
//! # Inside
//!
//! Three layers under the public one: `api` (Consul's HTTP API as plain calls), `protocol`
//! (the lock protocol as plain async functions: acquire, queue, lease, teardown) and `exec`
//! (where code runs: the worker, per-runtime connection pools, work that must finish).

#![warn(missing_docs)]

mod agent;
mod api;
mod client;
mod config;
mod consul_cli;
pub mod defaults;
mod election;
mod entry;
mod error;
mod exec;
mod fence;
mod guard;
mod helpers;
mod hold;
pub mod key;
mod lock;
pub mod metrics;
mod multi;
mod protocol;
mod semaphore;
mod session_policy;
mod value;

pub use api::{KvEntry, SessionInfo, GO_LOCK_FLAG};
pub use client::Client;
pub use config::{
    consul_base_url, ClientBuilder, Token, DEFAULT_REQUEST_TIMEOUT, DEFAULT_SESSION_TTL_MIN,
    SESSION_TTL_MAX,
};
pub use election::{
    Candidate, Election, Leader, Leadership, Observation, Observe, RunEvent, Runner, StopCause,
    Stopping, DEFAULT_ELECTION_PREFIX, DEFAULT_ELECTION_TTL, LEADER_SUFFIX, RECORD_SUFFIX,
};
pub use error::{Blocker, Error, RequestFailure, Result};
pub use fence::{Fence, KvOp, MAX_TXN_OPS};
pub use guard::{LockGuard, LockHandle, Lost};
pub use lock::Lock;
pub use multi::{MultiLock, MultiLockGuard};
pub use protocol::lease::LostReason;
pub use protocol::multi::MAX_KEYS;
pub use protocol::queue::WAITERS_SUFFIX;
pub use protocol::teardown::SHARED_SESSION_NAME_PREFIX;
pub use semaphore::{
    Semaphore, SemaphoreGuard, MAX_SEMAPHORE_LIMIT, SEMAPHORE_FLAGS, SEMAPHORE_LOCK_KEY,
};
pub use session_policy::{DEFAULT_NODE_LEASE, DEFAULT_SHARED_SESSION_TTL};
pub use value::{default_value, ValueGenerator, MAX_VALUE_SIZE};

/// Waits until every release handed to the background (by a dropped [`LockGuard`]) and every
/// cleanup of a cancelled acquire has finished. Each retries until Consul confirms it or would
/// have ended the session on its own: 2 × the lock timeout after its last renewal, moved on by
/// leader elections (a new leader restarts the timer) by at most a minute; so this returns.
/// Call it before the process exits to release what was dropped last, or in tests before
/// checking that nothing is left in Consul; bound it with `tokio::time::timeout` when exiting
/// soon matters more.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// let guard = consul_lock_runtime::Lock::new("flush-releases-example").client(&client).acquire().await?;
/// let key = guard.key().to_owned();
/// drop(guard); // released in the background
/// consul_lock_runtime::flush_releases().await;
/// assert!(client.kv_get(&key).await?.is_none());
/// # Ok(()) }
/// ```
pub async fn flush_releases() {
    exec::settle().await;
}

/// Blocking form of [`flush_releases`], safe inside a tokio runtime.
///
/// A release or clean-up interrupted inside async code (a dropped guard, a cancelled
/// acquire) finishes on the runtime it ran on. With a current-thread runtime, that runtime
/// must still be driven for it to finish: after `rt.block_on(...)` has returned, call
/// `rt.block_on(flush_releases())` instead of this function, which would wait for tasks that
/// nobody runs.
///
/// # Errors
///
/// [`Error::Runtime`] when the background worker is not available.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// let lock = consul_lock_runtime::Lock::new("flush-blocking-example").client(&client);
/// drop(lock.acquire_blocking()?); // released in the background
/// consul_lock_runtime::flush_releases_blocking()?;
/// assert!(lock.try_acquire_blocking()?.is_some()); // the key is free again
/// # Ok(()) }
/// ```
pub fn flush_releases_blocking() -> Result<()> {
    exec::run_blocking(async {
        exec::settle().await;
        Ok(())
    })
}

/// How many background releases and cleanups are in flight now.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// let guard = consul_lock_runtime::Lock::new("pending-example").client(&client).acquire_blocking()?;
/// drop(guard); // one release in flight, until it completes
/// consul_lock_runtime::flush_releases_blocking()?;
/// assert_eq!(consul_lock_runtime::pending_releases(), 0);
/// # Ok(()) }
/// ```
#[must_use]
pub fn pending_releases() -> usize {
    exec::pending()
}
