//! The Consul client behind [`consul-lock`](https://docs.rs/consul-lock): sessions, KV reads,
//! blocking queries, transactions, and the lock protocol built on them. Use it through the
//! `consul-lock` crate, which re-exports everything here and adds the `#[consul_lock]`
//! attribute.
//!
//! # Taking a lock
//!
//! ```no_run
//! use consul_lock_runtime::{Client, Lock};
//! use std::time::Duration;
//!
//! # async fn f() -> consul_lock_runtime::Result<()> {
//! let client = Client::from_env()?;                 // CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, …
//! let guard = Lock::new("send/user-42/welcome-email")
//!     .client(&client)
//!     .acquire_timeout(Duration::from_millis(500))
//!     .acquire()
//!     .await?;
//! // … work; pass guard.fencing_token() to the systems you write to …
//! guard.release().await?;
//! # Ok(()) }
//! ```
//!
//! # What a lock is here
//!
//! A lock is a Consul session (TTL = the lock timeout, `LockDelay` 0, `Behavior` delete) that
//! holds the key. It is a lease, not a mutex: if the holder stops renewing, Consul frees the
//! key between once and twice the TTL later, whether or not the holder is done. Use the
//! [fencing token](LockGuard::fencing_token) to make the systems you write to reject a holder
//! that lost its lock, and [`LockGuard::lost`] to stop work when it happens.
//!
//! # Sync and async
//!
//! All I/O runs on one small background worker thread, so the blocking API
//! ([`Lock::acquire_blocking`], [`LockGuard::release_blocking`]) works from any thread,
//! including threads inside a tokio runtime, and the async API works on any executor. Dropping
//! a [`LockGuard`] releases the lock in the background without blocking; [`flush_releases`]
//! waits for such releases, for example before the process exits.

#![warn(missing_docs)]

mod background;
mod client;
mod config;
mod consul;
pub mod defaults;
mod error;
mod guard;
mod http;
pub mod key;
mod lock;
mod retry;
mod value;

pub use client::Client;
pub use config::{
    ClientBuilder, Token, DEFAULT_REQUEST_TIMEOUT, DEFAULT_SESSION_TTL_MIN, SESSION_TTL_MAX,
};
pub use consul::{KvEntry, SessionInfo};
pub use error::{Error, Result};
pub use guard::{LockGuard, LockHandle, Lost, LostReason};
pub use lock::{Lock, MAX_VALUE_SIZE};
pub use value::{default_value, ValueGenerator};

/// Waits until every release handed to the background (by a dropped [`LockGuard`]) and every
/// cleanup of a cancelled acquire has finished. Each is bounded by the client's request
/// timeout, so this returns. Call it before the process exits to release what was dropped
/// last, or in tests before checking that nothing is left in Consul.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// consul_lock_runtime::flush_releases().await;
/// # }
/// ```
pub async fn flush_releases() {
    background::settle().await;
}

/// Blocking form of [`flush_releases`], safe inside a tokio runtime.
///
/// # Errors
///
/// [`Error::Runtime`] when the background worker is not available.
///
/// ```
/// consul_lock_runtime::flush_releases_blocking()?;
/// # Ok::<(), consul_lock_runtime::Error>(())
/// ```
pub fn flush_releases_blocking() -> Result<()> {
    background::run_blocking(background::settle())
}

/// How many background releases and cleanups are in flight now.
///
/// ```
/// let _in_flight = consul_lock_runtime::pending_releases();
/// ```
#[must_use]
pub fn pending_releases() -> usize {
    background::pending()
}
