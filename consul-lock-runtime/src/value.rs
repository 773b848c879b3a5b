//! The value written into a lock key: by default JSON saying when and by whom it was taken.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

/// Makes the value stored in a lock key, given the full key. Set it process-wide with
/// [`defaults::set_value_generator`](crate::defaults::set_value_generator) or per lock with
/// [`Lock::value_generator`](crate::Lock::value_generator) (Python's `generate_value`).
///
/// ```
/// use consul_lock_runtime::{defaults, ValueGenerator};
/// use std::sync::Arc;
///
/// let custom: ValueGenerator = Arc::new(|key: &str| format!("worker-7 holds {key}"));
/// assert_eq!(custom("locks/x"), "worker-7 holds locks/x");
/// let default: ValueGenerator = defaults::value_generator();
/// assert!(default("locks/x").contains("\"pid\""));
/// ```
pub type ValueGenerator = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// The default value: `{"locked_at": "<RFC 3339 UTC>", "host": "<hostname>", "pid": <pid>}`, so
/// that an operator reading the key sees who holds it.
///
/// ```
/// let value = consul_lock_runtime::default_value("locks/ephemeral/report");
/// let json: serde_json::Value = serde_json::from_str(&value).unwrap();
/// assert!(json["locked_at"].is_string());
/// assert_eq!(json["pid"], std::process::id());
/// ```
#[must_use]
pub fn default_value(_key: &str) -> String {
    let locked_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    static HOST: OnceLock<String> = OnceLock::new();
    let host = HOST.get_or_init(|| gethostname::gethostname().to_string_lossy().into_owned());
    let value = DefaultValue {
        locked_at: &locked_at,
        host,
        pid: std::process::id(),
    };
    // A struct of strings and a number always serializes.
    serde_json::to_string(&value).unwrap_or_default()
}

#[derive(serde::Serialize)]
struct DefaultValue<'a> {
    locked_at: &'a str,
    host: &'a str,
    pid: u32,
}

/// Consul's limit for a request body (`kv_max_value_size`, 512 KiB). The lock's value travels
/// base64-encoded inside a `/v1/txn` body, so the largest value is about 3/4 of this.
///
/// ```
/// use consul_lock_runtime::{Client, Error, Lock, MAX_VALUE_SIZE};
/// let client = Client::builder().build()?;
/// let huge = Lock::new("max-value-size-example").client(&client).value_generator(|_| "x".repeat(MAX_VALUE_SIZE));
/// let err = huge.acquire_blocking().unwrap_err();
/// assert!(matches!(err, Error::InvalidOption { option: "value_generator", .. }));
/// assert_eq!(client.requests_sent(), 0); // refused before any request
/// # Ok::<(), consul_lock_runtime::Error>(())
/// ```
pub const MAX_VALUE_SIZE: usize = 512 * 1024;

/// The size of a `/v1/txn` body with one operation per `(key, value length)` (an upper bound:
/// the value is base64-encoded, a key may double in JSON escapes, and each operation carries
/// its verb, field names and the 36-character session ID).
pub(crate) fn txn_body_size<'a>(ops: impl IntoIterator<Item = (&'a str, usize)>) -> usize {
    const OVERHEAD: usize = 128;
    ops.into_iter()
        .map(|(key, value_len)| 4 * value_len.div_ceil(3) + 2 * key.len() + OVERHEAD)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transaction_size_counts_the_base64_value() {
        let lock = |len| txn_body_size([("k", len), ("k", 0)]);
        assert!(lock(380 * 1024) <= MAX_VALUE_SIZE);
        assert!(lock(400 * 1024) > MAX_VALUE_SIZE);
    }
}
