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
