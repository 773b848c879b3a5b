//! Exit statuses and the one-line errors that go with them.
//!
//! The table in `cli.rs` (`--help`) and in `docs/operations.md` must list the same values.

use std::fmt;

use consul_lock_runtime::Error;

/// Success.
pub const OK: u8 = 0;
/// `show`, `release`: the lock is not held.
pub const NOT_HELD: u8 = 1;
/// Bad arguments, an invalid key, duration or `CONSUL_*` setting (clap uses 2 as well).
pub const USAGE: u8 = 2;
/// `release` without `--force`: refused, nothing changed.
pub const REFUSED: u8 = 3;
/// `run`: the lock was lost while the command ran.
pub const LOCK_LOST: u8 = 123;
/// `run`: not acquired in time; `wait`: still held at the timeout.
pub const TIMED_OUT: u8 = 124;
/// Consul could not be reached, refused the request or denied permission.
pub const CONSUL: u8 = 125;
/// `run`: the command could not be executed.
pub const CANNOT_EXECUTE: u8 = 126;
/// `run`: the command was not found.
pub const NOT_FOUND: u8 = 127;

/// A failure to report: one line (`error: …`) on stderr, and an exit status.
#[derive(Debug)]
pub struct Failure {
    /// The exit status.
    pub status: u8,
    /// What went wrong and what to do, without the `error: ` in front.
    pub message: String,
}

impl Failure {
    /// A failure with this status and message.
    pub fn new(status: u8, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        from_runtime(&e)
    }
}

/// What a command returns: an exit status, or a failure to report.
pub type Outcome = Result<u8, Failure>;

/// Turns a runtime error into one line saying what went wrong and what to do.
fn from_runtime(e: &Error) -> Failure {
    let about = |key: &str| {
        if key.is_empty() {
            String::new()
        } else {
            format!(" for `{key}`")
        }
    };
    match e {
        Error::Unreachable {
            address,
            reason,
            operation,
            ..
        } => Failure::new(
            CONSUL,
            format!(
                "cannot reach Consul at {address} to {operation} ({}): is the agent running? set CONSUL_HTTP_ADDR",
                short_reason(reason)
            ),
        ),
        Error::PermissionDenied {
            key,
            operation,
            message,
        } if message.contains("ACL not found") => Failure::new(
            CONSUL,
            format!(
                "Consul does not know the ACL token sent to {operation}{} ({message}): the token \
                 does not exist (mistyped, deleted, expired, or made in another cluster); set \
                 CONSUL_HTTP_TOKEN (or CONSUL_HTTP_TOKEN_FILE) to an existing token",
                about(key)
            ),
        ),
        Error::PermissionDenied {
            key,
            operation,
            message,
        } => Failure::new(
            CONSUL,
            format!(
                "Consul denied permission to {operation}{}: {message}: set CONSUL_HTTP_TOKEN (or \
                 CONSUL_HTTP_TOKEN_FILE) to a token with key_prefix read on the lock prefix (write \
                 for run) and session_prefix read (write for run and release)",
                about(key)
            ),
        ),
        Error::ConsulRefused {
            key,
            operation,
            status: 404,
            ..
        } => Failure::new(
            CONSUL,
            format!(
                "the server at CONSUL_HTTP_ADDR answered 404 when asked to {operation}{}: it is \
                 not a Consul agent's HTTP API (or a proxy in front of it changes the path); set \
                 CONSUL_HTTP_ADDR to the agent's HTTP address without a path (port 8500 by \
                 default)",
                about(key)
            ),
        ),
        Error::ConsulRefused {
            key,
            operation,
            status,
            message,
        } => Failure::new(
            CONSUL,
            format!(
                "Consul refused to {operation}{}: HTTP {status}: {}: check the agent's logs; \
                 retry once it has a leader",
                about(key),
                message.trim()
            ),
        ),
        Error::NotAcquired { .. } => Failure::new(TIMED_OUT, e.to_string()),
        Error::InvalidKey { .. } | Error::InvalidOption { .. } => {
            Failure::new(USAGE, e.to_string())
        }
        _ => Failure::new(CONSUL, e.to_string()),
    }
}

/// The transport's reason, shortened to its last, most specific part
/// (`… tcp connect error: Connection refused (os error 111)` → `connection refused`).
fn short_reason(reason: &str) -> String {
    let lower = reason.to_lowercase();
    for (needle, short) in [
        ("connection refused", "connection refused"),
        ("connection reset", "connection reset"),
        ("dns error", "the host name does not resolve"),
        (
            "certificate",
            "TLS certificate not accepted; set CONSUL_CACERT",
        ),
    ] {
        if lower.contains(needle) {
            return short.to_owned();
        }
    }
    if lower.starts_with("no answer within") {
        return reason.to_owned();
    }
    let last = reason.rsplit(": ").next().unwrap_or(reason);
    last.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_reasons_are_shortened() {
        let refused = "error sending request for url (http://127.0.0.1:1/v1/kv/x): client error \
                       (Connect): tcp connect error: Connection refused (os error 111)";
        assert_eq!(short_reason(refused), "connection refused");
        assert_eq!(
            short_reason("no answer within 10 s"),
            "no answer within 10 s"
        );
        assert_eq!(short_reason("a: b: something odd"), "something odd");
    }

    #[test]
    fn unreachable_says_what_to_do() {
        let f = Failure::from(Error::Unreachable {
            key: String::new(),
            operation: "list sessions",
            address: "http://127.0.0.1:8500".into(),
            cause: consul_lock_runtime::RequestFailure::NotConnected,
            reason: "tcp connect error: Connection refused (os error 111)".into(),
        });
        assert_eq!(f.status, CONSUL);
        assert_eq!(
            f.to_string(),
            "error: cannot reach Consul at http://127.0.0.1:8500 to list sessions (connection \
             refused): is the agent running? set CONSUL_HTTP_ADDR"
        );
    }
}
