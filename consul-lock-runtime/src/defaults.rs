//! Process-wide defaults, as the Python library's `consul_lock.defaults`: the client, the key
//! prefix, the acquire timeout, the lock timeout and the value generator. A [`Lock`](crate::Lock)
//! uses them for every option it does not set itself, read at acquire time.
//!
//! ```
//! use consul_lock_runtime::{defaults, Client};
//! use std::time::Duration;
//!
//! defaults::set_client(Client::builder().address("127.0.0.1:8500").build()?);
//! defaults::set_key_prefix("locks/my-service/")?;
//! defaults::set_acquire_timeout(Duration::from_millis(500));
//! defaults::set_lock_timeout(Duration::from_secs(60))?;
//! assert_eq!(defaults::key_prefix(), "locks/my-service/");
//! # defaults::set_key_prefix(defaults::DEFAULT_KEY_PREFIX)?;
//! # defaults::set_acquire_timeout(Duration::ZERO);
//! # defaults::set_lock_timeout(defaults::DEFAULT_LOCK_TIMEOUT)?;
//! # Ok::<(), consul_lock_runtime::Error>(())
//! ```

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::config::SESSION_TTL_MAX;
use crate::value::ValueGenerator;
use crate::{Client, Error, Result};

/// The default key prefix (the Python library's `lock_key_pattern`).
pub const DEFAULT_KEY_PREFIX: &str = "locks/ephemeral/";
/// The default lock timeout (session TTL): 180 s.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(180);
/// The default acquire timeout: 0, one try.
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::ZERO;

struct Defaults {
    client: Option<Client>,
    key_prefix: Option<String>,
    acquire_timeout: Duration,
    lock_timeout: Duration,
    value: Option<ValueGenerator>,
}

static DEFAULTS: RwLock<Defaults> = RwLock::new(Defaults {
    client: None,
    key_prefix: None,
    acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
    lock_timeout: DEFAULT_LOCK_TIMEOUT,
    value: None,
});

fn read<T>(f: impl FnOnce(&Defaults) -> T) -> T {
    f(&DEFAULTS.read().unwrap_or_else(PoisonError::into_inner))
}

fn write(f: impl FnOnce(&mut Defaults)) {
    f(&mut DEFAULTS.write().unwrap_or_else(PoisonError::into_inner));
}

/// Sets the client used by locks that name none (Python's `defaults.consul_client`).
pub fn set_client(client: Client) {
    write(|d| d.client = Some(client));
}

/// The default client: the one set with [`set_client`], or else one built from the
/// `CONSUL_*` environment variables (built once, then kept).
///
/// # Errors
///
/// [`Error::InvalidOption`] when the environment holds a malformed setting.
///
/// ```
/// let client = consul_lock_runtime::defaults::client()?;
/// # Ok::<(), consul_lock_runtime::Error>(())
/// ```
pub fn client() -> Result<Client> {
    if let Some(client) = read(|d| d.client.clone()) {
        return Ok(client);
    }
    let client = Client::from_env()?;
    let mut kept = client.clone();
    write(|d| match &d.client {
        Some(existing) => kept = existing.clone(),
        None => d.client = Some(client),
    });
    Ok(kept)
}

/// Sets the prefix put before every lock key (default `locks/ephemeral/`; may be empty).
///
/// # Errors
///
/// [`Error::InvalidKey`] when the prefix has a leading `/`, `//`, dot segments or control characters.
pub fn set_key_prefix(prefix: impl Into<String>) -> Result<()> {
    let prefix = prefix.into();
    crate::key::validate(&prefix, "key prefix")?;
    write(|d| d.key_prefix = Some(prefix));
    Ok(())
}

/// The key prefix.
#[must_use]
pub fn key_prefix() -> String {
    read(|d| d.key_prefix.clone()).unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_owned())
}

/// Sets how long an acquire waits for a held key (default 0: one try).
pub fn set_acquire_timeout(timeout: Duration) {
    write(|d| d.acquire_timeout = timeout);
}

/// The default acquire timeout.
#[must_use]
pub fn acquire_timeout() -> Duration {
    read(|d| d.acquire_timeout)
}

/// Sets the lock timeout: the session TTL, after which Consul frees a key whose holder
/// stopped renewing (default 180 s). The agent's lower bound (10 s unless lowered in the
/// client) is checked at acquire time.
///
/// # Errors
///
/// [`Error::InvalidOption`] when the timeout is zero or above 86400 s.
pub fn set_lock_timeout(timeout: Duration) -> Result<()> {
    if timeout.is_zero() || timeout > SESSION_TTL_MAX {
        return Err(Error::InvalidOption {
            option: "lock_timeout",
            reason: format!("{timeout:?} is outside 10..=86400 s"),
        });
    }
    write(|d| d.lock_timeout = timeout);
    Ok(())
}

/// The default lock timeout.
#[must_use]
pub fn lock_timeout() -> Duration {
    read(|d| d.lock_timeout)
}

/// Sets the function that makes the value stored in a lock key (Python's `generate_value`).
///
/// ```
/// consul_lock_runtime::defaults::set_value_generator(|key| format!("held: {key}"));
/// # consul_lock_runtime::defaults::reset_value_generator();
/// ```
pub fn set_value_generator(generator: impl Fn(&str) -> String + Send + Sync + 'static) {
    write(|d| d.value = Some(Arc::new(generator)));
}

/// Goes back to [`default_value`](crate::default_value).
pub fn reset_value_generator() {
    write(|d| d.value = None);
}

/// The value generator.
#[must_use]
pub fn value_generator() -> ValueGenerator {
    read(|d| d.value.clone()).unwrap_or_else(|| Arc::new(crate::default_value))
}
