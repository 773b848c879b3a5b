//! The one error type of the library.

use std::fmt;
use std::time::Duration;

/// The result type of this crate: `Ok(T)` or an [`Error`].
///
/// ```
/// use consul_lock_runtime::{Lock, Result};
///
/// fn billing_key(name: &str) -> Result<String> {
///     Lock::new(name).key_prefix("locks/billing/").full_key()
/// }
/// assert_eq!(billing_key("invoices/42")?, "locks/billing/invoices/42");
/// assert!(billing_key("invoices//42").is_err());
/// # Ok::<(), consul_lock_runtime::Error>(())
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong when taking, holding or releasing a lock.
///
/// Every variant names the key (where there is one) and its message says what to do next.
/// Match on the variant to act on it; new variants may be added in minor releases.
///
/// ```
/// use consul_lock_runtime::Error;
/// use std::time::Duration;
///
/// let err = Error::NotAcquired {
///     key: "locks/ephemeral/report".into(),
///     waited: Duration::from_millis(500),
///     attempts: 3,
/// };
/// assert!(err.to_string().contains("locks/ephemeral/report"));
/// assert_eq!(err.key(), Some("locks/ephemeral/report"));
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// Another session held the key for the whole acquire timeout.
    #[error(
        "lock `{key}` is held by another session and was not released within {} ({attempts} attempt(s)); \
         raise the acquire timeout, or use the try/fail-soft form to treat this as a normal outcome",
        DisplayDuration(*waited)
    )]
    NotAcquired {
        /// The full Consul key.
        key: String,
        /// How long the acquire waited.
        waited: Duration,
        /// How many lock attempts were made.
        attempts: u32,
    },

    /// Consul's ACLs refused the request (HTTP 403, or `Permission denied` inside a transaction).
    #[error(
        "Consul denied permission to {operation} for lock `{key}`: {message}; give the token \
         `key_prefix` write on the key's prefix and `session_prefix` write for the agent's node \
         (CONSUL_HTTP_TOKEN / CONSUL_HTTP_TOKEN_FILE)"
    )]
    PermissionDenied {
        /// The full Consul key.
        key: String,
        /// What the library was doing (`create a session`, `lock the key`, …).
        operation: &'static str,
        /// Consul's own text (`Permission denied`, `ACL not found`).
        message: String,
    },

    /// Consul answered with an error status (for example 500 `No cluster leader`).
    #[error(
        "Consul refused to {operation} for lock `{key}`: HTTP {status}: {message}{}",
        hint_for_status(*status, message)
    )]
    ConsulRefused {
        /// The full Consul key.
        key: String,
        /// What the library was doing.
        operation: &'static str,
        /// The HTTP status Consul answered.
        status: u16,
        /// Consul's own text.
        message: String,
    },

    /// Consul could not be reached, or did not answer in time.
    #[error(
        "Consul at {address} could not be reached to {operation} for lock `{key}`: {reason}; \
         check CONSUL_HTTP_ADDR and that the agent is running and has a leader"
    )]
    Unreachable {
        /// The full Consul key.
        key: String,
        /// What the library was doing.
        operation: &'static str,
        /// The agent's address.
        address: String,
        /// What the transport said (connection refused, timed out after …).
        reason: String,
    },

    /// The key (or a value rendered into a key template) cannot be used as a lock key.
    #[error("invalid lock key {key:?}: {reason}")]
    InvalidKey {
        /// The key or template as given.
        key: String,
        /// What is wrong with it and how to fix it.
        reason: String,
    },

    /// An option or a configuration value is out of range or malformed.
    #[error("invalid option `{option}`: {reason}")]
    InvalidOption {
        /// The option or environment variable.
        option: &'static str,
        /// What is wrong with it and what is allowed.
        reason: String,
    },

    /// A held lock was lost: its session ended or the key was taken over.
    #[error("lock `{key}` was lost: {reason}")]
    LockLost {
        /// The full Consul key.
        key: String,
        /// Why the lock is no longer held.
        reason: crate::LostReason,
    },

    /// The library's background worker could not run (the process could not start a thread).
    #[error("the consul-lock background worker is not available: {reason}")]
    Runtime {
        /// What failed.
        reason: String,
    },
}

impl Error {
    /// The full Consul key the error is about, when there is one.
    ///
    /// ```
    /// # use consul_lock_runtime::Error;
    /// let err = Error::InvalidOption { option: "lock_timeout", reason: "too long".into() };
    /// assert_eq!(err.key(), None);
    /// ```
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        match self {
            Error::NotAcquired { key, .. }
            | Error::PermissionDenied { key, .. }
            | Error::ConsulRefused { key, .. }
            | Error::Unreachable { key, .. }
            | Error::InvalidKey { key, .. }
            | Error::LockLost { key, .. } => Some(key),
            Error::InvalidOption { .. } | Error::Runtime { .. } => None,
        }
    }

    /// Whether the same request may succeed if repeated a little later (Consul unreachable,
    /// HTTP 5xx such as `No cluster leader`). The acquire loop retries these until its deadline.
    ///
    /// ```
    /// # use consul_lock_runtime::Error;
    /// let err = Error::ConsulRefused {
    ///     key: "k".into(), operation: "lock the key", status: 500, message: "No cluster leader".into(),
    /// };
    /// assert!(err.is_transient());
    /// ```
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } => true,
            Error::ConsulRefused {
                status, message, ..
            } => *status >= 500 && !is_invalid_session(message),
            _ => false,
        }
    }

    /// Whether Consul said the session does not exist (any more).
    pub(crate) fn is_invalid_session(&self) -> bool {
        matches!(self, Error::ConsulRefused { message, .. } if is_invalid_session(message))
    }
}

fn is_invalid_session(message: &str) -> bool {
    message.contains("invalid session")
}

fn hint_for_status(status: u16, message: &str) -> &'static str {
    if message.contains("No cluster leader") {
        "; the Consul cluster has no leader: retry later or raise the acquire timeout"
    } else if status == 413 {
        "; the request is too large: keep the lock value under 512 KiB"
    } else if status >= 500 {
        "; this is usually transient: retry later"
    } else {
        ""
    }
}

/// Formats a duration for people: `0 ms`, `500 ms`, `2.5 s`.
pub(crate) struct DisplayDuration(pub Duration);

impl fmt::Display for DisplayDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_secs_f64() * 1000.0;
        if ms < 1000.0 {
            write!(f, "{ms:.0} ms")
        } else {
            write!(f, "{:.1} s", ms / 1000.0)
        }
    }
}
