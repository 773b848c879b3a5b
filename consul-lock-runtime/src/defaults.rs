//! Process-wide defaults, as the Python library's `consul_lock.defaults`: the client, the key
//! prefix, the acquire timeout, the lock timeout and the value generator. A [`Lock`](crate::Lock)
//! uses them for every option it does not set itself, read at acquire time.
//!
//! ```
//! use consul_lock_runtime::{defaults, Client};
//! use std::time::Duration;
//!
//! # let (client, prefix) = (defaults::client()?, defaults::key_prefix());
//! # let (acquire, lock) = (defaults::acquire_timeout(), defaults::lock_timeout());
//! defaults::set_client(Client::builder().address("127.0.0.1:8500").build()?);
//! defaults::set_key_prefix("locks/my-service/")?;
//! defaults::set_acquire_timeout(Duration::from_millis(500));
//! defaults::set_lock_timeout(Duration::from_secs(60))?;
//! assert_eq!(defaults::key_prefix(), "locks/my-service/");
//! # defaults::set_client(client);
//! # defaults::set_key_prefix(prefix)?;
//! # defaults::set_acquire_timeout(acquire);
//! # defaults::set_lock_timeout(lock)?;
//! # Ok::<(), consul_lock_runtime::Error>(())
//! ```

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use crate::config::SESSION_TTL_MAX;
use crate::value::ValueGenerator;
use crate::{Client, Error, Result};

/// The default key prefix (the Python library's `lock_key_pattern`).
///
/// ```
/// use consul_lock_runtime::{defaults, Lock};
/// assert_eq!(defaults::DEFAULT_KEY_PREFIX, "locks/ephemeral/");
/// assert_eq!(Lock::new("jobs/nightly").full_key()?, "locks/ephemeral/jobs/nightly");
/// # Ok::<(), consul_lock_runtime::Error>(())
/// ```
pub const DEFAULT_KEY_PREFIX: &str = "locks/ephemeral/";
/// The default lock timeout (session TTL): 180 s.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// use consul_lock_runtime::{defaults::DEFAULT_LOCK_TIMEOUT, Lock};
/// assert_eq!(DEFAULT_LOCK_TIMEOUT.as_secs(), 180);
/// let guard = Lock::new("default-lock-timeout-example").client(&client).acquire().await?;
/// let sessions = client.sessions().await?;
/// let session = sessions.iter().find(|s| s.id == guard.session_id()).expect("listed");
/// assert_eq!(session.ttl, "180s");
/// guard.release().await?;
/// # Ok(()) }
/// ```
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(180);
/// The default acquire timeout: 0, one try.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// use consul_lock_runtime::{defaults::DEFAULT_ACQUIRE_TIMEOUT, Error, Lock};
/// assert!(DEFAULT_ACQUIRE_TIMEOUT.is_zero());
/// let lock = Lock::new("default-acquire-timeout-example").client(&client);
/// # let other = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// let guard = lock.clone().client(&other).acquire().await?; // held by another process
/// // A held key fails at once, after a single try.
/// let err = lock.acquire().await.unwrap_err();
/// assert!(matches!(err, Error::NotAcquired { attempts: 1, .. }));
/// guard.release().await?;
/// # Ok(()) }
/// ```
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
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// use consul_lock_runtime::{defaults, Client, Lock};
/// # let previous = defaults::client()?;
/// defaults::set_client(Client::builder().address(server.url()).build()?);
/// assert_eq!(defaults::client()?.address(), server.url());
/// // A lock that names no client uses it.
/// let token = Lock::new("set-client-example").hold_blocking(|lock| lock.fencing_token())?;
/// assert!(token > 0);
/// # defaults::set_client(previous);
/// # Ok(()) }
/// ```
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
/// use consul_lock_runtime::defaults;
/// let client = defaults::client()?;
/// // Built once, then kept: clones share one connection pool.
/// assert_eq!(defaults::client()?.address(), client.address());
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
/// [`Error::InvalidKey`] when the prefix has a leading `/`, `//`, dot segments or characters Consul refuses in a URL path.
///
/// ```
/// use consul_lock_runtime::{defaults, Lock};
/// # let previous = defaults::key_prefix();
/// defaults::set_key_prefix("locks/billing/")?;
/// assert_eq!(Lock::new("invoices/42").full_key()?, "locks/billing/invoices/42");
/// assert!(defaults::set_key_prefix("/locks/").is_err()); // refused; the prefix stays
/// assert_eq!(defaults::key_prefix(), "locks/billing/");
/// # defaults::set_key_prefix(previous)?;
/// # Ok::<(), consul_lock_runtime::Error>(())
/// ```
pub fn set_key_prefix(prefix: impl Into<String>) -> Result<()> {
    let prefix = prefix.into();
    crate::key::validate_prefix(&prefix)?;
    write(|d| d.key_prefix = Some(prefix));
    Ok(())
}

/// The key prefix.
#[must_use]
pub fn key_prefix() -> String {
    read(|d| d.key_prefix.clone()).unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_owned())
}

/// Sets how long an acquire waits for a held key (default 0: one try).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// use consul_lock_runtime::{defaults, Error, Lock};
/// use std::time::Duration;
/// # let previous = defaults::acquire_timeout();
/// defaults::set_acquire_timeout(Duration::from_millis(200));
/// let lock = Lock::new("set-acquire-timeout-example").client(&client);
/// # let other = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// let guard = lock.clone().client(&other).acquire_blocking()?; // held by another process
/// // A lock that sets no acquire timeout of its own now waits for a held key.
/// let err = lock.acquire_blocking().unwrap_err();
/// assert!(matches!(err, Error::NotAcquired { waited, .. } if waited >= Duration::from_millis(100)));
/// guard.release_blocking()?;
/// # defaults::set_acquire_timeout(previous);
/// # Ok(()) }
/// ```
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
/// [`Error::InvalidOption`] when the timeout is zero or above 86400 s. The lower bound of
/// the range (10 s, Consul's `session_ttl_min`) belongs to the client, which may be set lower
/// for an agent configured so: it is checked when a lock is acquired, against that client.
///
/// ```
/// use consul_lock_runtime::defaults;
/// use std::time::Duration;
///
/// # let previous = defaults::lock_timeout();
/// defaults::set_lock_timeout(Duration::from_secs(60))?;
/// assert_eq!(defaults::lock_timeout(), Duration::from_secs(60));
/// assert!(defaults::set_lock_timeout(Duration::ZERO).is_err());
/// assert!(defaults::set_lock_timeout(Duration::from_secs(90_000)).is_err());
/// # defaults::set_lock_timeout(previous)?;
/// # Ok::<(), consul_lock_runtime::Error>(())
/// ```
pub fn set_lock_timeout(timeout: Duration) -> Result<()> {
    if timeout.is_zero() || timeout > SESSION_TTL_MAX {
        return Err(Error::InvalidOption {
            option: "lock_timeout",
            reason: format!(
                "{timeout:?} is {}; give a lock timeout above zero and at most {} s (the lower \
                 bound, the client's session_ttl_min, is checked when a lock is acquired)",
                if timeout.is_zero() {
                    "zero"
                } else {
                    "too long"
                },
                SESSION_TTL_MAX.as_secs()
            ),
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
/// use consul_lock_runtime::defaults;
/// defaults::set_value_generator(|key| format!("held: {key}"));
/// assert_eq!(defaults::value_generator()("locks/ephemeral/x"), "held: locks/ephemeral/x");
/// # defaults::reset_value_generator();
/// ```
pub fn set_value_generator(generator: impl Fn(&str) -> String + Send + Sync + 'static) {
    write(|d| d.value = Some(Arc::new(generator)));
}

/// Goes back to [`default_value`](crate::default_value).
///
/// ```
/// use consul_lock_runtime::defaults;
/// defaults::set_value_generator(|key| format!("held: {key}"));
/// assert_eq!(defaults::value_generator()("locks/x"), "held: locks/x");
/// defaults::reset_value_generator();
/// assert!(defaults::value_generator()("locks/x").contains("\"locked_at\""));
/// ```
pub fn reset_value_generator() {
    write(|d| d.value = None);
}

/// The value generator.
#[must_use]
pub fn value_generator() -> ValueGenerator {
    read(|d| d.value.clone()).unwrap_or_else(|| Arc::new(crate::default_value))
}
