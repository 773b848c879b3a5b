//! The numbers Consul (1.10) and the lock protocol allow, in one place: the attribute checks
//! them at compile time, the runtime before any request.

/// The shortest session TTL Consul accepts by default, in seconds (`session_ttl_min`, 10 s;
/// an agent can be configured lower).
///
/// ```
/// assert_eq!(consul_lock_syntax::SESSION_TTL_MIN_SECS, 10);
/// ```
pub const SESSION_TTL_MIN_SECS: u64 = 10;

/// The longest session TTL Consul accepts, in seconds (one day).
///
/// ```
/// assert_eq!(consul_lock_syntax::SESSION_TTL_MAX_SECS, 24 * 60 * 60);
/// ```
pub const SESSION_TTL_MAX_SECS: u64 = 86_400;

/// The most operations one `/v1/txn` may hold: Consul 1.10 refuses more (413 `Transaction
/// contains too many operations`); 1.14 and later allow 128.
///
/// ```
/// assert_eq!(consul_lock_syntax::MAX_TXN_OPS, 64);
/// ```
pub const MAX_TXN_OPS: usize = 64;

/// The most keys one lock on several keys may take: its lock transaction has exactly one
/// operation per key, so at most [`MAX_TXN_OPS`].
///
/// ```
/// assert_eq!(consul_lock_syntax::MAX_LOCK_KEYS, consul_lock_syntax::MAX_TXN_OPS);
/// ```
pub const MAX_LOCK_KEYS: usize = MAX_TXN_OPS;

/// The largest semaphore limit: the coordination key lists every holder's session (about 45
/// bytes each), and every contender rewrites it, so very large limits make every acquire
/// slow.
///
/// ```
/// assert_eq!(consul_lock_syntax::MAX_SEMAPHORE_LIMIT, 1024);
/// ```
pub const MAX_SEMAPHORE_LIMIT: u32 = 1024;
