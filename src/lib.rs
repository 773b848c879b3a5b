//! Distributed locks in [HashiCorp Consul](https://developer.hashicorp.com/consul): an
//! attribute over sync and async functions, fencing tokens, lock-loss detection, blocking-query
//! waits, and (in the `consul-lock-testkit` crate) a Consul-compatible test server.
//!
//! ```
//! use consul_lock::{consul_lock, defaults, Client, Lock};
//! # let server = consul_lock_testkit::TestServer::start()?;
//! # defaults::set_client(Client::builder().address(server.url()).build()?);
//!
//! /// At most one caller in the cluster runs this for a given user at a time.
//! #[consul_lock(key = "send/user-<user_id>/welcome-email", acquire_timeout_ms = 500, guard = lock)]
//! async fn send_welcome_email(user_id: u64) -> Result<u64, consul_lock::Error> {
//!     // ... send it, passing the fencing token to the mail log ...
//!     Ok(lock.fencing_token())
//! }
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let token = send_welcome_email(42).await?;
//!
//! // The same without the attribute:
//! let guard = Lock::new("send/user-43/welcome-email").acquire().await?;
//! assert!(guard.fencing_token() > token);
//! guard.release().await?;
//! # Ok::<(), consul_lock::Error>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What is where
//!
//! - [`consul_lock`](macro@consul_lock): the attribute, its options, key templates, return
//!   types and the function shapes it supports.
//! - [`Lock`], [`LockGuard`], [`LockHandle`]: the runtime API (Python's `EphemeralLock`):
//!   `acquire`, `try_acquire` (fail-soft), `hold`, their blocking forms, release, fencing
//!   tokens and lock-loss detection.
//! - [`MultiLock`] (or [`Lock::all`]), [`MultiLockGuard`]: several keys at once, all or
//!   none in one transaction (the attribute's `key` repeated), so no order can deadlock.
//! - [`Election`], [`Leadership`], [`leader`](macro@leader): leader election (one process at a
//!   time runs a job), with fencing tokens, observers that say when nobody leads, and a
//!   bounded hand-over.
//! - [`Client`], [`ClientBuilder`]: the Consul agent, from `CONSUL_HTTP_ADDR` and the other
//!   `CONSUL_*` variables or built by hand.
//! - [`defaults`]: the process-wide client, key prefix, timeouts and value generator.
//! - [`Error`]: every way a lock can fail; each message names the key and the next step.
//!
//! # What a lock is, and is not
//!
//! A lock is a Consul session (TTL = the lock timeout) holding a key: a **lease**, not a
//! mutex. A holder that stalls past its TTL loses the key to the next waiter while it may
//! still be running. Give the systems you write to the [fencing
//! token](LockGuard::fencing_token), stop work when [`LockGuard::lost`] completes, or renew
//! the session (`renew`) for long work. The repository's `docs/consul-semantics.md` covers
//! the Consul semantics that bite (TTL up to 2x, lock-delay, leader elections), and
//! `docs/guide.md` the building of a service with it.

pub use consul_lock_runtime::*;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

/// The attribute: `#[consul_lock(key = "...", ...)]` runs a function while holding a lock.
///
/// ```no_run
/// use consul_lock::consul_lock;
///
/// #[derive(Debug)]
/// enum AppError {
///     Lock(consul_lock::Error),
/// }
///
/// impl From<consul_lock::Error> for AppError {
///     fn from(e: consul_lock::Error) -> Self {
///         AppError::Lock(e)
///     }
/// }
///
/// #[consul_lock(key = "send/user-<user_id>/welcome-email", acquire_timeout_ms = 500)]
/// async fn send_welcome_email(user_id: u64) -> Result<(), AppError> {
///     // At most one caller runs this for a given user at a time.
///     Ok(())
/// }
///
/// // Fail-soft: "someone else holds it" is `Ok(None)`, not an error.
/// #[consul_lock(key = "reports/nightly", fail_soft, guard = lock)]
/// fn nightly_report() -> Result<Option<u64>, AppError> {
///     Ok(Some(lock.fencing_token()))
/// }
/// ```
pub use consul_lock_macros::consul_lock;

/// The attribute for leader election: `#[consul_lock::leader(name = "...")]` on an `async fn`
/// that takes a [`Leadership`] runs its body only while this process leads, stops it within
/// the grace when the leadership ends, and campaigns again ([`Election::run`]).
///
/// ```no_run
/// use consul_lock::Leadership;
///
/// #[consul_lock::leader(name = "scheduler", grace_ms = 2000)]
/// async fn scheduler(leadership: Leadership) -> Result<(), consul_lock::Error> {
///     while leadership.stop_cause().is_none() {
///         // … one round of scheduling, fenced with leadership.fencing_token() …
///         # break;
///     }
///     Ok(())
/// }
/// ```
pub use consul_lock_macros::leader;
