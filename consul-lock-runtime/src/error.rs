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
///     blocked_by: consul_lock_runtime::Blocker::Holder,
/// };
/// assert!(err.to_string().contains("locks/ephemeral/report"));
/// assert_eq!(err.key(), Some("locks/ephemeral/report"));
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// The lock was not had within the acquire timeout: the key stayed held by another
    /// session, or free but under a lock-delay, or the timeout ran out while Consul's answer
    /// was on its way (see [`Blocker`]). The try and fail-soft forms answer `None` instead.
    #[error(
        "{}; raise the acquire timeout, or use the try/fail-soft form to treat this as a normal outcome",
        NotAcquiredText { key, waited: *waited, attempts: *attempts, blocked_by: *blocked_by }
    )]
    NotAcquired {
        /// The full Consul key.
        key: String,
        /// How long the acquire waited.
        waited: Duration,
        /// How many lock attempts were made.
        attempts: u32,
        /// What kept the key from this acquire at its last attempt.
        blocked_by: Blocker,
    },

    /// Consul's ACLs refused the request (HTTP 403, or `Permission denied` inside a
    /// transaction), or Consul does not know the token (`ACL not found`).
    #[error("{}", DeniedText { key, operation, message })]
    PermissionDenied {
        /// The full Consul key.
        key: String,
        /// What the library was doing (`create a session`, `lock the key`, …).
        operation: &'static str,
        /// Consul's own text (`Permission denied`, `ACL not found`).
        message: String,
    },

    /// Consul answered with an error status (for example 500 `No cluster leader`), or the
    /// server at the address is not Consul (404 to a request Consul serves).
    #[error(
        "Consul refused to {operation} for lock `{key}`: HTTP {status}{}{}",
        answer_text(message),
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

    /// Consul could not be reached, or did not answer within the client's request timeout.
    /// (An acquire whose own timeout runs out while a request is on its way reports
    /// [`Error::NotAcquired`], not this.)
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
        /// Why the request got no answer.
        cause: RequestFailure,
        /// What the transport said (connection refused, no answer within …).
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

    /// The caller already holds this key through this client: the tokio task (or, outside a
    /// task, the thread) that asks for it is the one whose guard is alive and still holds the
    /// lock, so waiting would only wait out the acquire timeout against itself. Nothing was
    /// sent to Consul. (A guard whose lock is lost, `is_held()` false, does not count.)
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::{Error, Lock};
    /// use std::time::Duration;
    /// let lock = Lock::new("reentrant-example").client(&client).acquire_timeout(Duration::from_secs(30));
    /// let guard = lock.acquire().await?;
    /// // The same task again: an error at once, not a 30 s wait.
    /// assert!(matches!(lock.acquire().await, Err(Error::Reentrant { .. })));
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    #[error(
        "lock `{key}` is already held by this task (or thread), so acquiring it again would wait \
         for itself; use the guard you hold (pass it, or its LockHandle, down to the code that \
         needs the lock), or release it first"
    )]
    Reentrant {
        /// The full Consul key.
        key: String,
    },

    /// The lock's session no longer holds the lock key (its lock timeout ran out while the
    /// holder was paused, the session was destroyed or invalidated, the key was deleted or
    /// taken over), so Consul refused a fenced write ([`Fence`](crate::Fence)): nothing of it
    /// was written. Consul itself checked it, in the same transaction as the write.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::{Error, Lock};
    /// let guard = Lock::new("lock-lost-example").client(&client).acquire().await?;
    /// client.destroy_session(guard.session_id()).await?; // an operator ends the lock
    /// let err = guard.fence().put("jobs/state", "stale").await.unwrap_err();
    /// assert!(matches!(&err, Error::LockLost { key, .. } if key == guard.key()));
    /// assert!(err.to_string().contains("acquire the lock again"));
    /// # Ok(()) }
    /// ```
    #[error(
        "lock `{key}` is no longer held by this holder's session, so Consul applied nothing of \
         the fenced write ({message}); stop the work that needed the lock (lost() says why) and \
         acquire the lock again before writing"
    )]
    LockLost {
        /// The full Consul key of the lock (for several keys, the one found not held).
        key: String,
        /// Consul's own text for the failed check.
        message: String,
    },

    /// An option or a configuration value is out of range or malformed.
    #[error("invalid option `{option}`: {reason}")]
    InvalidOption {
        /// The option or environment variable.
        option: &'static str,
        /// What is wrong with it and what is allowed.
        reason: String,
    },

    /// The library's background worker could not run (the process could not start a thread).
    #[error("the consul-lock background worker is not available: {reason}")]
    Runtime {
        /// What failed.
        reason: String,
    },
}

/// What kept a key from an acquire that gave up ([`Error::NotAcquired`]).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Blocker {
    /// Another session held the key.
    Holder,
    /// Another task of this process held the key (or was acquiring it) for the whole acquire
    /// timeout: tasks of one process take a key in turn, one at a time, before they send
    /// anything to Consul, so nothing was sent for this acquire.
    LocalHolder,
    /// The key was free, but Consul refused new holders because a lock-delay was running: a
    /// session that held the key ended without releasing it (invalidated, or destroyed by a
    /// client whose sessions have a lock-delay, such as Go's `api.Lock` with Consul's default
    /// of 15 s). This library's own sessions set no lock-delay.
    LockDelay,
    /// The acquire timeout ran out while a request was on its way and Consul had not answered
    /// yet (each request of an acquire may take only the time left): Consul is slow, or the
    /// timeout is short for it, not unreachable.
    Unanswered {
        /// The request whose answer did not come in time (`create a session`, `lock the key`, …).
        operation: &'static str,
    },
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocker::Holder => f.write_str("held by another session"),
            Blocker::LocalHolder => f.write_str("held by another task of this process"),
            Blocker::LockDelay => f.write_str("under a lock-delay"),
            Blocker::Unanswered { operation } => {
                write!(
                    f,
                    "waiting for Consul's answer to the request to {operation}"
                )
            }
        }
    }
}

/// Why a request got no answer from Consul (the `cause` of [`Error::Unreachable`]).
///
/// ```
/// use consul_lock_runtime::{Error, RequestFailure};
///
/// fn agent_down(e: &Error) -> bool {
///     matches!(e, Error::Unreachable { cause: RequestFailure::NotConnected, .. })
/// }
/// # assert!(!agent_down(&Error::Reentrant { key: "k".into() }));
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestFailure {
    /// The request went out and no answer came within the client's request timeout
    /// ([`ClientBuilder::request_timeout`](crate::ClientBuilder::request_timeout)): Consul
    /// without a leader holds requests about 7 s before it answers, an overloaded agent
    /// longer.
    NoAnswer,
    /// The request went out with only the time left before a deadline (an acquire's timeout,
    /// the end of a lease for its renewal), and that ran out before the answer came. Consul
    /// may be merely slow. An acquire reports this as [`Error::NotAcquired`] with
    /// [`Blocker::Unanswered`].
    DeadlineReached,
    /// No connection could be made (refused, no route, unknown host): the request never
    /// reached Consul.
    NotConnected,
    /// The connection failed otherwise (reset, closed mid-answer, a TLS failure): the request
    /// may have reached Consul.
    Broken,
}

/// The sentence of [`Error::NotAcquired`] before its advice.
struct NotAcquiredText<'a> {
    key: &'a str,
    waited: Duration,
    attempts: u32,
    blocked_by: Blocker,
}

impl fmt::Display for NotAcquiredText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (key, waited, attempts) = (self.key, DisplayDuration(self.waited), self.attempts);
        match self.blocked_by {
            Blocker::Holder => write!(
                f,
                "lock `{key}` is held by another session and was not released within {waited} \
                 ({attempts} attempt(s))"
            ),
            Blocker::LocalHolder => write!(
                f,
                "lock `{key}` is held by another task of this process and was not released \
                 within {waited} (tasks of one process take a key in turn; this one waited for \
                 its turn and sent nothing to Consul)"
            ),
            Blocker::LockDelay => write!(
                f,
                "lock `{key}` is free, but under the lock-delay of a session that ended without \
                 releasing it (Consul refuses every new holder until the delay runs out), and the \
                 delay did not end within {waited} ({attempts} attempt(s))"
            ),
            Blocker::Unanswered { operation } => write!(
                f,
                "lock `{key}` was not acquired within {waited} ({attempts} attempt(s)): the \
                 acquire timeout ran out while waiting for Consul's answer to the request to \
                 {operation} (Consul had not answered yet: it is slow, or has no leader and holds \
                 requests; each request of an acquire gets only the time left)"
            ),
        }
    }
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
            | Error::Reentrant { key }
            | Error::LockLost { key, .. } => Some(key),
            Error::InvalidOption { .. } | Error::Runtime { .. } => None,
        }
    }

    /// Whether the same request may succeed if repeated a little later (Consul unreachable,
    /// HTTP 5xx such as `No cluster leader`, HTTP 429 for too many connections). The acquire
    /// loop retries these until its deadline.
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
            // 429: the agent refuses more concurrent connections from this address
            // (`http_max_conns_per_client`, 200 by default): it passes as connections close.
            Error::ConsulRefused {
                status, message, ..
            } => (*status >= 500 && !is_invalid_session(message)) || *status == 429,
            _ => false,
        }
    }

    /// Whether the failure shows Consul without a working leader: it answered 5xx (`No
    /// cluster leader`, the RPC errors of an election), or held the request without answering.
    /// A refused or reset connection (the local agent down) does not count.
    pub(crate) fn shows_no_leader(&self) -> bool {
        match self {
            Error::ConsulRefused {
                status, message, ..
            } => *status >= 500 && !is_invalid_session(message),
            Error::Unreachable { cause, .. } => matches!(
                cause,
                RequestFailure::NoAnswer | RequestFailure::DeadlineReached
            ),
            _ => false,
        }
    }

    /// Whether the request may have reached Consul although it failed: an answer with an
    /// error status, or a request sent without an answer (not a refused connection).
    pub(crate) fn may_have_reached_consul(&self) -> bool {
        match self {
            Error::ConsulRefused { .. } => true,
            Error::Unreachable { cause, .. } => *cause != RequestFailure::NotConnected,
            _ => false,
        }
    }

    /// Whether the request ran out of the time left before its deadline without an answer.
    pub(crate) fn reached_deadline(&self) -> bool {
        matches!(
            self,
            Error::Unreachable {
                cause: RequestFailure::DeadlineReached,
                ..
            }
        )
    }

    /// Whether Consul said the session does not exist (any more).
    pub(crate) fn is_invalid_session(&self) -> bool {
        matches!(self, Error::ConsulRefused { message, .. } if is_invalid_session(message))
    }
}

fn is_invalid_session(message: &str) -> bool {
    message.contains("invalid session")
}

/// Consul's text after the status: `: text`, or a note that the body was empty.
fn answer_text(message: &str) -> String {
    if message.is_empty() {
        " with an empty body".to_owned()
    } else {
        format!(": {message}")
    }
}

/// The sentence of [`Error::PermissionDenied`]: an unknown token is not a missing permission.
struct DeniedText<'a> {
    key: &'a str,
    operation: &'static str,
    message: &'a str,
}

impl fmt::Display for DeniedText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (key, operation, message) = (self.key, self.operation, self.message);
        if message.contains("ACL not found") {
            write!(
                f,
                "Consul does not know the ACL token sent to {operation} for lock `{key}` \
                 ({message}): the token does not exist (mistyped, deleted, expired, or made in \
                 another cluster); set CONSUL_HTTP_TOKEN or CONSUL_HTTP_TOKEN_FILE (or \
                 ClientBuilder::token) to an existing token with `key_prefix` write on the \
                 key's prefix and `session_prefix` write for the agent's node"
            )
        } else {
            write!(
                f,
                "Consul denied permission to {operation} for lock `{key}`: {message}; give the \
                 token `key_prefix` write on the key's prefix and `session_prefix` write for the \
                 agent's node (CONSUL_HTTP_TOKEN / CONSUL_HTTP_TOKEN_FILE)"
            )
        }
    }
}

fn hint_for_status(status: u16, message: &str) -> &'static str {
    if status == 404 {
        // Every request this library sends is one Consul serves (a missing key is handled
        // before this): a 404 comes from another server, or a proxy that rewrites the path.
        "; Consul serves this request, so the server at this address is not a Consul agent's \
         HTTP API (or a proxy in front of it changes the path): check CONSUL_HTTP_ADDR, the \
         agent's HTTP address without a path (port 8500 by default)"
    } else if message.contains("No cluster leader") {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn not_acquired(blocked_by: Blocker, attempts: u32) -> String {
        Error::NotAcquired {
            key: "locks/ephemeral/k".into(),
            waited: Duration::from_millis(503),
            attempts,
            blocked_by,
        }
        .to_string()
    }

    #[test]
    fn each_blocker_reads_as_what_happened() {
        assert_eq!(
            not_acquired(Blocker::Holder, 3),
            "lock `locks/ephemeral/k` is held by another session and was not released within \
             503 ms (3 attempt(s)); raise the acquire timeout, or use the try/fail-soft form \
             to treat this as a normal outcome"
        );
        // A wait for the local turn made no attempt: no "(0 attempt(s))".
        let local = not_acquired(Blocker::LocalHolder, 0);
        assert!(
            local.contains("held by another task of this process"),
            "{local}"
        );
        assert!(!local.contains("attempt(s)"), "{local}");
        let slow = not_acquired(
            Blocker::Unanswered {
                operation: "create a session",
            },
            0,
        );
        assert!(
            slow.contains("waiting for Consul's answer to the request to create a session"),
            "{slow}"
        );
    }

    #[test]
    fn an_unknown_token_is_not_a_missing_permission() {
        let denied = |message: &str| {
            Error::PermissionDenied {
                key: "k".into(),
                operation: "create a session",
                message: message.into(),
            }
            .to_string()
        };
        let unknown = denied("ACL not found");
        assert!(unknown.contains("the token does not exist"), "{unknown}");
        assert!(!unknown.contains("give the token"), "{unknown}");
        let missing = denied("Permission denied");
        assert!(
            missing.contains("give the token `key_prefix` write"),
            "{missing}"
        );
    }

    #[test]
    fn a_404_says_the_server_is_not_consul() {
        let text = Error::ConsulRefused {
            key: "k".into(),
            operation: "create a session",
            status: 404,
            message: String::new(),
        }
        .to_string();
        assert!(text.contains("HTTP 404 with an empty body"), "{text}");
        assert!(text.contains("not a Consul agent's HTTP API"), "{text}");
    }
}
