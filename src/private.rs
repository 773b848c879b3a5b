//! Support for the code that `#[consul_lock]` generates. Not a public API: nothing here is
//! covered by semver, and the names may change in any release.

use core::fmt::Display;

pub use consul_lock_runtime::key::{render, KeyPart};
pub use consul_lock_runtime::{
    Client, Error, Lock, LockGuard, MultiLock, MultiLockGuard, Semaphore, SemaphoreGuard,
};
pub use core::time::Duration;

#[path = "private_leader.rs"]
mod leader;
pub use leader::{election, leader_result, leader_value, run_leader, Conversions, LeaderResult};

/// A key value as `&dyn Display`. The generated call is spanned at the key template, so a
/// value that is not `Display` is reported there.
#[inline]
#[must_use]
pub fn display_value<T: Display>(value: &T) -> &dyn Display {
    value
}

/// What `client = <expr>` may give: a [`Client`], or a reference, `Box`, `Rc` or `Arc` of one.
#[diagnostic::on_unimplemented(
    message = "`client = ...` must give a `consul_lock::Client`, not `{Self}`",
    label = "not a `consul_lock::Client`",
    note = "build one with `consul_lock::Client::builder()` or `consul_lock::Client::from_env()`"
)]
pub trait AsClient {
    /// A (cheap) clone of the client.
    fn to_client(&self) -> Client;
}

impl AsClient for Client {
    fn to_client(&self) -> Client {
        Client::from(self)
    }
}

impl<T: AsClient + ?Sized> AsClient for &T {
    fn to_client(&self) -> Client {
        (**self).to_client()
    }
}

impl<T: AsClient + ?Sized> AsClient for &mut T {
    fn to_client(&self) -> Client {
        (**self).to_client()
    }
}

impl<T: AsClient + ?Sized> AsClient for std::boxed::Box<T> {
    fn to_client(&self) -> Client {
        (**self).to_client()
    }
}

impl<T: AsClient + ?Sized> AsClient for std::rc::Rc<T> {
    fn to_client(&self) -> Client {
        (**self).to_client()
    }
}

impl<T: AsClient + ?Sized> AsClient for std::sync::Arc<T> {
    fn to_client(&self) -> Client {
        (**self).to_client()
    }
}

/// The return types of a function with `#[consul_lock]` (without `fail_soft`): a lock error
/// leaves the function as `Err(E::from(error))`, as `?` would.
#[diagnostic::on_unimplemented(
    message = "`#[consul_lock]` cannot return a lock error through `{Self}`",
    label = "this return type has no place for a `consul_lock::Error`",
    note = "return `Result<T, E>` with `E: From<consul_lock::Error>`, or add `fail_soft` to the \
            attribute and return `Option<T>` or `Result<Option<T>, E>`"
)]
pub trait FailHard {
    /// The function's value when the lock could not be taken.
    fn lock_error(error: Error) -> Self;
}

impl<T, E: From<Error>> FailHard for Result<T, E> {
    #[inline]
    fn lock_error(error: Error) -> Self {
        Err(E::from(error))
    }
}

/// The return types of a function with `#[consul_lock(fail_soft)]`: `Option<T>` (`None` when
/// the lock was not acquired, or could not be tried) and `Result<Option<T>, E>` (`Ok(None)`
/// when not acquired in time, `Err(E::from(error))` for any other lock error).
#[diagnostic::on_unimplemented(
    message = "`#[consul_lock(fail_soft)]` cannot report \"not acquired\" through `{Self}`",
    label = "expected `Option<T>` or `Result<Option<T>, E>`",
    note = "with `fail_soft`, return `Option<T>` or `Result<Option<T>, E>` with \
            `E: From<consul_lock::Error>`; without it, return `Result<T, E>`"
)]
pub trait FailSoft {
    /// The function's value when the lock was not acquired in time.
    fn not_acquired() -> Self;
    /// The function's value when the lock could not be tried (Consul unreachable, ...).
    fn lock_error(error: Error) -> Self;
}

impl<T> FailSoft for Option<T> {
    #[inline]
    fn not_acquired() -> Self {
        None
    }

    #[inline]
    fn lock_error(error: Error) -> Self {
        // The runtime has logged the failure; `Option` has no room for it.
        drop(error);
        None
    }
}

impl<T, E: From<Error>> FailSoft for Result<Option<T>, E> {
    #[inline]
    fn not_acquired() -> Self {
        Ok(None)
    }

    #[inline]
    fn lock_error(error: Error) -> Self {
        Err(E::from(error))
    }
}

/// Runs a sync body. Passing the closure where `FnOnce` is expected makes it an `FnOnce`
/// closure, so the body may return borrows of its (moved-in) reference arguments, as the
/// function itself could.
#[inline]
pub fn call_once<R>(body: impl FnOnce() -> R) -> R {
    body()
}

/// Releases after the body finished and waits for it. A failure does not replace the body's
/// result: the runtime logs it, and the session's TTL frees the key.
pub async fn release(guard: LockGuard) {
    let _ = guard.release().await;
}

/// Blocking form of [`release`].
pub fn release_blocking(guard: LockGuard) {
    let _ = guard.release_blocking();
}

/// [`release`] for the guard of a lock on several keys.
pub async fn release_multi(guard: MultiLockGuard) {
    let _ = guard.release().await;
}

/// Blocking form of [`release_multi`].
pub fn release_multi_blocking(guard: MultiLockGuard) {
    let _ = guard.release_blocking();
}

/// [`release`] for a semaphore's slot (`limit = N`).
pub async fn release_slot(guard: SemaphoreGuard) {
    let _ = guard.release().await;
}

/// Blocking form of [`release_slot`].
pub fn release_slot_blocking(guard: SemaphoreGuard) {
    let _ = guard.release_blocking();
}
