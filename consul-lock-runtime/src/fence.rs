//! Fenced writes: KV writes that Consul applies only while a lock's session still holds the
//! lock's key(s). One `/v1/txn` carries a `check-session` operation per lock key, then the
//! caller's operations; Consul applies all of them or none, so a holder that lost its lock
//! (its TTL ran out while it was paused, its session was destroyed, the key was taken over)
//! gets [`Error::LockLost`] and nothing is written. Consul itself refuses the write, not a
//! local check, so a holder that does not know it lost the lock is refused too.

use std::fmt;
use std::sync::Arc;

use crate::api::fenced::{FencedOutcome, WireOp};
use crate::error::DisplayDuration;
use crate::value::{txn_body_size, MAX_VALUE_SIZE};
use crate::{exec, key, Client, Error, KvEntry, Result};

/// Consul 1.10's limit on the operations of one transaction (`/v1/txn`); a fenced write's
/// checks count too (one per lock key). Consul 1.14 and later allow 128.
///
/// ```
/// assert_eq!(consul_lock_runtime::MAX_TXN_OPS, 64);
/// ```
pub const MAX_TXN_OPS: usize = consul_lock_syntax::MAX_TXN_OPS;

/// One KV operation of a fenced write ([`Fence::txn`]). Build it with the constructors.
///
/// ```
/// use consul_lock_runtime::KvOp;
/// let ops = [
///     KvOp::set("jobs/report/state", "running"),
///     KvOp::cas("jobs/report/owner", "worker-7", 42), // only if its ModifyIndex is still 42
///     KvOp::delete("jobs/report/draft"),
///     KvOp::get("jobs/report/config"),
/// ];
/// assert_eq!(ops[0].key(), "jobs/report/state");
/// assert_eq!(ops[1].to_string(), "cas `jobs/report/owner` at index 42");
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KvOp {
    /// Write `value` to `key`.
    Set {
        /// The full Consul key.
        key: String,
        /// The value to store.
        value: Vec<u8>,
    },
    /// Write `value` to `key` only if the key's `ModifyIndex` is `index` (0: only if the key
    /// does not exist).
    Cas {
        /// The full Consul key.
        key: String,
        /// The value to store.
        value: Vec<u8>,
        /// The `ModifyIndex` the key must have.
        index: u64,
    },
    /// Read `key` (the transaction fails if it does not exist).
    Get {
        /// The full Consul key.
        key: String,
    },
    /// Delete `key` (nothing happens if it does not exist).
    Delete {
        /// The full Consul key.
        key: String,
    },
    /// Delete `key` only if its `ModifyIndex` is `index`.
    DeleteCas {
        /// The full Consul key.
        key: String,
        /// The `ModifyIndex` the key must have.
        index: u64,
    },
    /// Delete every key under `prefix`.
    DeleteTree {
        /// The prefix (not empty: the whole store is not deleted this way).
        prefix: String,
    },
    /// Fail the transaction unless `key`'s `ModifyIndex` is `index`.
    CheckIndex {
        /// The full Consul key.
        key: String,
        /// The `ModifyIndex` the key must have.
        index: u64,
    },
    /// Fail the transaction if `key` exists.
    CheckNotExists {
        /// The full Consul key.
        key: String,
    },
}

impl KvOp {
    /// [`KvOp::Set`].
    ///
    /// ```
    /// let op = consul_lock_runtime::KvOp::set("jobs/report/state", "done");
    /// assert_eq!(op.to_string(), "set `jobs/report/state`");
    /// ```
    pub fn set(key: impl Into<String>, value: impl Into<Vec<u8>>) -> KvOp {
        KvOp::Set {
            key: key.into(),
            value: value.into(),
        }
    }

    /// [`KvOp::Cas`].
    ///
    /// ```
    /// let create_only = consul_lock_runtime::KvOp::cas("jobs/report/owner", "me", 0);
    /// assert_eq!(create_only.key(), "jobs/report/owner");
    /// ```
    pub fn cas(key: impl Into<String>, value: impl Into<Vec<u8>>, index: u64) -> KvOp {
        KvOp::Cas {
            key: key.into(),
            value: value.into(),
            index,
        }
    }

    /// [`KvOp::Get`].
    ///
    /// ```
    /// let op = consul_lock_runtime::KvOp::get("jobs/report/config");
    /// assert_eq!(op.key(), "jobs/report/config");
    /// ```
    pub fn get(key: impl Into<String>) -> KvOp {
        KvOp::Get { key: key.into() }
    }

    /// [`KvOp::Delete`].
    ///
    /// ```
    /// let op = consul_lock_runtime::KvOp::delete("jobs/report/draft");
    /// assert_eq!(op.to_string(), "delete `jobs/report/draft`");
    /// ```
    pub fn delete(key: impl Into<String>) -> KvOp {
        KvOp::Delete { key: key.into() }
    }

    /// [`KvOp::DeleteCas`].
    ///
    /// ```
    /// let op = consul_lock_runtime::KvOp::delete_cas("jobs/report/draft", 17);
    /// assert_eq!(op.to_string(), "delete-cas `jobs/report/draft` at index 17");
    /// ```
    pub fn delete_cas(key: impl Into<String>, index: u64) -> KvOp {
        KvOp::DeleteCas {
            key: key.into(),
            index,
        }
    }

    /// [`KvOp::DeleteTree`].
    ///
    /// ```
    /// let op = consul_lock_runtime::KvOp::delete_tree("jobs/report/parts/");
    /// assert_eq!(op.key(), "jobs/report/parts/");
    /// ```
    pub fn delete_tree(prefix: impl Into<String>) -> KvOp {
        KvOp::DeleteTree {
            prefix: prefix.into(),
        }
    }

    /// [`KvOp::CheckIndex`].
    ///
    /// ```
    /// let op = consul_lock_runtime::KvOp::check_index("jobs/report/config", 9);
    /// assert_eq!(op.to_string(), "check-index `jobs/report/config` at index 9");
    /// ```
    pub fn check_index(key: impl Into<String>, index: u64) -> KvOp {
        KvOp::CheckIndex {
            key: key.into(),
            index,
        }
    }

    /// [`KvOp::CheckNotExists`].
    ///
    /// ```
    /// let op = consul_lock_runtime::KvOp::check_not_exists("jobs/report/done");
    /// assert_eq!(op.key(), "jobs/report/done");
    /// ```
    pub fn check_not_exists(key: impl Into<String>) -> KvOp {
        KvOp::CheckNotExists { key: key.into() }
    }

    /// The key (or, for [`KvOp::DeleteTree`], the prefix) the operation is about.
    ///
    /// ```
    /// assert_eq!(consul_lock_runtime::KvOp::delete("a/b").key(), "a/b");
    /// ```
    #[must_use]
    pub fn key(&self) -> &str {
        match self {
            KvOp::Set { key, .. }
            | KvOp::Cas { key, .. }
            | KvOp::Get { key }
            | KvOp::Delete { key }
            | KvOp::DeleteCas { key, .. }
            | KvOp::CheckIndex { key, .. }
            | KvOp::CheckNotExists { key } => key,
            KvOp::DeleteTree { prefix } => prefix,
        }
    }

    /// Consul's verb, the value and the index, as the operation goes on the wire.
    fn wire(&self) -> WireOp<'_> {
        let (verb, value, index) = match self {
            KvOp::Set { value, .. } => ("set", Some(value.as_slice()), None),
            KvOp::Cas { value, index, .. } => ("cas", Some(value.as_slice()), Some(*index)),
            KvOp::Get { .. } => ("get", None, None),
            KvOp::Delete { .. } => ("delete", None, None),
            KvOp::DeleteCas { index, .. } => ("delete-cas", None, Some(*index)),
            KvOp::DeleteTree { .. } => ("delete-tree", None, None),
            KvOp::CheckIndex { index, .. } => ("check-index", None, Some(*index)),
            KvOp::CheckNotExists { .. } => ("check-not-exists", None, None),
        };
        WireOp {
            verb,
            key: self.key(),
            value,
            index,
            session: None,
            flags: None,
        }
    }

    /// Whether Consul answers the operation with an entry (it does for these, and for none of
    /// the others; `txn_check_session.json` in the test server's transcripts shows it).
    fn answers(&self) -> bool {
        matches!(
            self,
            KvOp::Set { .. } | KvOp::Cas { .. } | KvOp::Get { .. } | KvOp::CheckIndex { .. }
        )
    }
}

impl fmt::Display for KvOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wire = self.wire();
        write!(f, "{} `{}`", wire.verb, wire.key)?;
        match wire.index {
            Some(index) => write!(f, " at index {index}"),
            None => Ok(()),
        }
    }
}

/// Writes that Consul applies only while a lock's session still holds the lock's key(s): a
/// held lock's fence. Get it from [`LockGuard::fence`](crate::LockGuard::fence),
/// [`LockHandle::fence`](crate::LockHandle::fence),
/// [`MultiLockGuard::fence`](crate::MultiLockGuard::fence) (every key is checked) or
/// [`SemaphoreGuard::fence`](crate::SemaphoreGuard::fence) (its slot's contender key). It is
/// cheap to clone and `'static`, and it does not keep the lock alive: once the lock is lost or
/// released, every write through it is refused.
///
/// Each write is one `/v1/txn`: a `check-session` per lock key, then the operations; Consul
/// applies all or none. A holder whose session no longer holds a key (its TTL ran out while it
/// was paused, the session was destroyed, the key was deleted or taken over) gets
/// [`Error::LockLost`] naming the key, and nothing is written; Consul decides, so this holds
/// also for a holder that has not noticed the loss.
///
/// A write that fails in transit ([`Error::Unreachable`], or a 5xx during an election) may
/// or may not have been applied: read the keys back before writing again. It is not retried.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// use consul_lock_runtime::{Error, KvOp, Lock};
/// let guard = Lock::new("reports/daily").client(&client).acquire().await?;
/// let fence = guard.fence();
/// let index = fence.put("reports/daily/state", "running").await?; // the write's ModifyIndex
/// let results = fence
///     .txn([KvOp::cas("reports/daily/state", "done", index), KvOp::get("reports/daily/state")])
///     .await?;
/// assert_eq!(results[1].as_ref().map(|e| e.value.as_slice()), Some(&b"done"[..]));
///
/// client.destroy_session(guard.session_id()).await?; // the lock is taken away
/// let refused = fence.put("reports/daily/state", "stale").await;
/// assert!(matches!(refused, Err(Error::LockLost { .. })));
/// assert_eq!(client.kv_get("reports/daily/state").await?.expect("kept").value, b"done");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Fence {
    client: Client,
    /// The `(key, session)` pairs Consul must find held, in order.
    checks: Arc<[(String, String)]>,
    /// The lock's key(s), for errors.
    label: Arc<str>,
    /// For a lock on the client's shared session: the index each key was taken at, checked
    /// instead of the session (`check-index`: the key unchanged since this lock took it), so
    /// that a lock of this client that has ended is refused even when a later lock of the same
    /// client holds the key with the same session.
    indexes: Option<AtIndexes>,
}

/// The index each key of a lock on the shared session is checked at, and how to tell whether
/// the lock still has its local turn.
#[derive(Clone)]
pub(crate) struct AtIndexes {
    indexes: Arc<std::sync::Mutex<Vec<u64>>>,
    /// Whether no later lock of this client can hold the keys (the lock has its turn).
    current: Arc<dyn Fn() -> bool + Send + Sync>,
}

impl AtIndexes {
    /// `indexes[i]` for the fence's `checks[i]`, taken by a lock that has its turn while
    /// `current()` says so.
    pub(crate) fn new(
        indexes: Vec<u64>,
        current: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        AtIndexes {
            indexes: Arc::new(std::sync::Mutex::new(indexes)),
            current: Arc::new(current),
        }
    }

    fn snapshot(&self) -> Vec<u64> {
        self.indexes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn adopt(&self, i: usize, index: u64) {
        let mut indexes = self
            .indexes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(at) = indexes.get_mut(i) {
            *at = index;
        }
    }
}

impl Fence {
    /// A fence that checks that each `(key, session)` of `checks` is held.
    pub(crate) fn new(client: Client, checks: Vec<(String, String)>) -> Fence {
        let label = checks
            .iter()
            .map(|(key, _)| key.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Fence {
            client,
            checks: checks.into(),
            label: label.into(),
            indexes: None,
        }
    }

    /// Checks that each key is still at the index it was taken at (`indexes[i]` for
    /// `checks[i]`) instead of its session: a lock on the client's shared session.
    pub(crate) fn at_indexes(mut self, indexes: AtIndexes) -> Fence {
        self.indexes = Some(indexes);
        self
    }

    /// How many check operations each fenced write starts with.
    fn check_count(&self) -> usize {
        self.checks.len()
    }

    /// The `(lock key, session)` pairs that each write checks.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let guard = consul_lock_runtime::Lock::new("fence-checks-example").client(&client).acquire_blocking()?;
    /// let fence = guard.fence();
    /// assert_eq!(fence.checks(), [(guard.key().to_owned(), guard.session_id().to_owned())]);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn checks(&self) -> &[(String, String)] {
        &self.checks
    }

    /// Writes `value` to `key` if the lock is still held; returns the write's `ModifyIndex`.
    ///
    /// # Errors
    ///
    /// [`Error::LockLost`] when the lock's session no longer holds a lock key (nothing was
    /// written); [`Error::InvalidKey`] or [`Error::InvalidOption`] before any request for a
    /// key Consul cannot serve or a value too large; [`Error::PermissionDenied`],
    /// [`Error::ConsulRefused`] or [`Error::Unreachable`] when Consul refused it or could not
    /// be asked (then the write may or may not have been applied).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let guard = consul_lock_runtime::Lock::new("fence-put-example").client(&client).acquire().await?;
    /// let index = guard.fence().put("jobs/state", "running").await?;
    /// assert_eq!(client.kv_get("jobs/state").await?.expect("written").modify_index, index);
    /// # Ok(()) }
    /// ```
    pub async fn put(&self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Result<u64> {
        let results = self.txn([KvOp::set(key, value)]).await?;
        Ok(modify_index(&results))
    }

    /// Blocking form of [`put`](Self::put), safe inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let guard = consul_lock_runtime::Lock::new("fence-put-blocking").client(&client).acquire_blocking()?;
    /// let index = guard.fence().put_blocking("jobs/state", "running")?;
    /// assert!(index > guard.fencing_token()); // written after the lock was taken
    /// # Ok(()) }
    /// ```
    pub fn put_blocking(&self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Result<u64> {
        let results = self.txn_blocking([KvOp::set(key, value)])?;
        Ok(modify_index(&results))
    }

    /// Deletes `key` if the lock is still held (a missing key is not an error).
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let guard = consul_lock_runtime::Lock::new("fence-delete-example").client(&client).acquire().await?;
    /// let fence = guard.fence();
    /// fence.put("jobs/draft", "x").await?;
    /// fence.delete("jobs/draft").await?;
    /// assert!(client.kv_get("jobs/draft").await?.is_none());
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, key: impl Into<String>) -> Result<()> {
        self.txn([KvOp::delete(key)]).await.map(drop)
    }

    /// Blocking form of [`delete`](Self::delete), safe inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// As [`put`](Self::put).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let guard = consul_lock_runtime::Lock::new("fence-delete-blocking").client(&client).acquire_blocking()?;
    /// guard.fence().delete_blocking("jobs/never-written")?; // nothing to delete: fine
    /// # Ok(()) }
    /// ```
    pub fn delete_blocking(&self, key: impl Into<String>) -> Result<()> {
        self.txn_blocking([KvOp::delete(key)]).map(drop)
    }

    /// Runs `ops` in one transaction if the lock is still held: all of them or none. Returns
    /// one result per operation: the entry for [`KvOp::Set`] and [`KvOp::Cas`] (without its
    /// value: its `modify_index` is the write's index), [`KvOp::Get`] (with its value) and
    /// [`KvOp::CheckIndex`], `None` for the others. With no operations it only checks that the
    /// lock is held. At most [`MAX_TXN_OPS`] operations, counting one check per lock key.
    ///
    /// # Errors
    ///
    /// [`Error::LockLost`] when the lock's session no longer holds a lock key;
    /// [`Error::ConsulRefused`] with status 409 when an operation failed (a `cas` or
    /// `check-index` at another index, a `get` of a missing key: the message says which);
    /// nothing was written in either case. [`Error::InvalidOption`] (option `ops`) for too many
    /// operations or too large a transaction, and [`Error::InvalidKey`] for a key Consul cannot
    /// serve, before any request. [`Error::PermissionDenied`], [`Error::ConsulRefused`] (5xx)
    /// or [`Error::Unreachable`] when Consul refused it or could not be asked (then it may or
    /// may not have been applied).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::{Error, KvOp, Lock};
    /// let guard = Lock::new("fence-txn-example").client(&client).acquire().await?;
    /// let fence = guard.fence();
    /// // Create-only: fails (and writes nothing) if the key exists already.
    /// let created = fence.txn([KvOp::cas("jobs/owner", "me", 0), KvOp::set("jobs/log", "claimed")]).await?;
    /// let index = created[0].as_ref().expect("a cas answers with its entry").modify_index;
    /// let again = fence.txn([KvOp::cas("jobs/owner", "me", 0)]).await;
    /// assert!(matches!(again, Err(Error::ConsulRefused { status: 409, .. })));
    /// fence.txn([KvOp::delete_cas("jobs/owner", index), KvOp::delete("jobs/log")]).await?;
    /// assert!(client.kv_get("jobs/owner").await?.is_none());
    /// # Ok(()) }
    /// ```
    pub async fn txn(&self, ops: impl IntoIterator<Item = KvOp>) -> Result<Vec<Option<KvEntry>>> {
        let ops: Vec<KvOp> = ops.into_iter().collect();
        self.check_ops(&ops)?;
        exec::run(self.clone().apply(ops)).await
    }

    /// Blocking form of [`txn`](Self::txn), safe inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// As [`txn`](Self::txn).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::KvOp;
    /// let guard = consul_lock_runtime::Lock::new("fence-txn-blocking").client(&client).acquire_blocking()?;
    /// let results = guard.fence().txn_blocking([KvOp::set("jobs/a", "1"), KvOp::delete("jobs/b")])?;
    /// assert!(results[0].is_some() && results[1].is_none());
    /// # Ok(()) }
    /// ```
    pub fn txn_blocking(
        &self,
        ops: impl IntoIterator<Item = KvOp>,
    ) -> Result<Vec<Option<KvEntry>>> {
        let ops: Vec<KvOp> = ops.into_iter().collect();
        self.check_ops(&ops)?;
        exec::run_blocking(self.clone().apply(ops))
    }

    /// What is refused before any request: too many operations, a key Consul cannot serve,
    /// an empty tree prefix, too large a transaction.
    fn check_ops(&self, ops: &[KvOp]) -> Result<()> {
        let total = self.check_count() + ops.len();
        if total > MAX_TXN_OPS {
            return Err(Error::InvalidOption {
                option: "ops",
                reason: format!(
                    "a fenced write for lock `{}` of {} operation(s) plus {} check(s) of the lock's \
                     keys makes {total} operations, over Consul's limit of {MAX_TXN_OPS} per \
                     transaction; split it into several fenced writes",
                    self.label,
                    ops.len(),
                    self.check_count()
                ),
            });
        }
        for op in ops {
            match op {
                KvOp::DeleteTree { prefix } if prefix.is_empty() => {
                    return Err(Error::InvalidKey {
                        key: String::new(),
                        reason: "a fenced delete-tree needs a prefix: an empty one would delete \
                                 every key in Consul; name the folder to delete"
                            .into(),
                    })
                }
                KvOp::DeleteTree { prefix } => key::validate_prefix(prefix)?,
                op => key::validate(op.key())?,
            }
        }
        let sizes = self.checks.iter().map(|(k, _)| (k.as_str(), 0));
        let sizes = sizes.chain(
            ops.iter()
                .map(|op| (op.key(), op.wire().value.map_or(0, <[u8]>::len))),
        );
        let body = txn_body_size(sizes);
        if body > MAX_VALUE_SIZE {
            return Err(Error::InvalidOption {
                option: "ops",
                reason: format!(
                    "the fenced write for lock `{}` makes a transaction of about {body} bytes (values \
                     are base64-encoded), over Consul's limit of {MAX_VALUE_SIZE} bytes (512 KiB); \
                     write less at once",
                    self.label
                ),
            });
        }
        Ok(())
    }

    /// Sends the transaction and reads Consul's answer. A lock on the shared session whose key
    /// was rewritten while it holds it (its own fenced write to the key, an operator's plain
    /// write, which keeps the session) is refused by the index check: when the key is still
    /// held by its session and the lock still has its turn (read after the key, so that no
    /// later lock of this client can have taken it meanwhile), the new index is the lock's and
    /// the write is sent again, once.
    async fn apply(self, ops: Vec<KvOp>) -> Result<Vec<Option<KvEntry>>> {
        let wire: Vec<WireOp<'_>> = ops.iter().map(KvOp::wire).collect();
        let timeout = self.client.request_timeout();
        let mut again = self.indexes.is_some();
        loop {
            let indexes = self.indexes.as_ref().map(AtIndexes::snapshot);
            let outcome = self
                .client
                .txn_fenced(
                    &self.label,
                    &self.checks,
                    indexes.as_deref(),
                    &wire,
                    timeout,
                )
                .await?;
            let errors = match outcome {
                FencedOutcome::Applied(entries) => {
                    let mut entries = entries.into_iter();
                    return Ok(ops
                        .iter()
                        .map(|op| if op.answers() { entries.next() } else { None })
                        .collect());
                }
                FencedOutcome::Refused(errors) => errors,
            };
            let mut err = self.refusal(&ops, &errors);
            let (Some(at), Some((i, _))) = (
                &self.indexes,
                errors.iter().find(|(i, _)| *i < self.check_count()),
            ) else {
                return Err(err);
            };
            let (key, session) = &self.checks[*i];
            let Ok((entry, _)) = self.client.kv_read(key, timeout).await else {
                return Err(err);
            };
            let holder = entry.as_ref().and_then(|e| e.session.as_deref());
            if again && holder == Some(session.as_str()) && (at.current)() {
                if let Some(entry) = &entry {
                    at.adopt(*i, entry.modify_index);
                }
                again = false;
                continue;
            }
            // An index check says only that the key changed: say who holds it now.
            if let Error::LockLost { message, .. } = &mut err {
                message.push_str(&match holder {
                    Some(s) => format!("; the key is now held by session {s}"),
                    None => "; the key is no longer held".to_owned(),
                });
            }
            return Err(err);
        }
    }

    /// The error for a refused transaction: the lost lock first (a failed check), else the
    /// operations that failed.
    fn refusal(&self, ops: &[KvOp], errors: &[(usize, String)]) -> Error {
        let n = self.check_count();
        if let Some((i, what)) = errors.iter().find(|(i, _)| *i < n) {
            return Error::LockLost {
                key: self.checks[*i].0.clone(),
                message: what.clone(),
            };
        }
        let what = errors
            .iter()
            .map(|(i, what)| match ops.get(i.wrapping_sub(n)) {
                Some(op) => format!("{op}: {what}"),
                None => what.clone(),
            })
            .collect::<Vec<_>>()
            .join("; ");
        crate::api::txn::refused(&self.label, "apply a fenced write", what)
    }
}

/// The `ModifyIndex` of the one write of a `put`.
fn modify_index(results: &[Option<KvEntry>]) -> u64 {
    results
        .first()
        .and_then(Option::as_ref)
        .map_or(0, |e| e.modify_index)
}

impl fmt::Debug for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fence")
            .field("checks", &self.checks)
            .field(
                "timeout",
                &DisplayDuration(self.client.request_timeout()).to_string(),
            )
            .finish_non_exhaustive()
    }
}
