//! Distributed locks in HashiCorp Consul. See the README for an overview.

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
