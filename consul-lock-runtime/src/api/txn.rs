//! `/v1/txn`: lock a key and read its queue of waiters in one round trip; unlock a key.

use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::http::{unexpected, Call, Reply};
use super::kv::RawEntry;
use crate::{Client, Error, KvEntry, Result};

/// The flags this library writes on every lock key: Consul's Go client's lock flag
/// (`api.LockFlagValue` in `github.com/hashicorp/consul/api`), so that Go's `api.Lock`, and
/// `consul lock` which is built on it, treat a key this library holds as a lock held by
/// another client and wait for it, instead of failing with `Existing key does not match lock
/// use`. This library itself takes a key whatever its flags (a key Go left behind after its
/// `Unlock()`, or one the Python library wrote with flags 0).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// use consul_lock_runtime::{Lock, GO_LOCK_FLAG};
/// assert_eq!(GO_LOCK_FLAG, 0x2ddc_cbc0_58a5_0c18);
/// let guard = Lock::new("go-flag-example").client(&client).acquire().await?;
/// let entry = client.kv_get(guard.key()).await?.expect("the lock key");
/// assert_eq!(entry.flags, GO_LOCK_FLAG);
/// # guard.release().await?;
/// # Ok(()) }
/// ```
pub const GO_LOCK_FLAG: u64 = 0x2ddc_cbc0_58a5_0c18;

/// The outcome of one `/v1/txn` `lock`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LockAttempt {
    /// Locked; the `ModifyIndex` of the write is the fencing token. `queue` holds the entries
    /// under the queue prefix read in the same transaction.
    Acquired {
        modify_index: u64,
        queue: Vec<KvEntry>,
    },
    /// Another session holds the key.
    Held,
    /// The key is free but a lock-delay runs.
    LockDelay,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TxnReply {
    #[serde(default)]
    pub(super) results: Option<Vec<TxnResult>>,
    #[serde(default)]
    pub(super) errors: Option<Vec<TxnError>>,
}

impl TxnReply {
    /// Decodes a `/v1/txn` answer (Consul answers 200 with `Results`, or 409 with `Errors`).
    pub(super) fn decode(reply: &Reply, key: &str, op: &'static str) -> Result<TxnReply> {
        serde_json::from_slice(&reply.body)
            .map_err(|e| unexpected(key, op, reply.status, &e.to_string()))
    }

    /// The errors of a refused transaction, each text once (Consul repeats the same text for
    /// every operation it refuses: `Permission denied` for the lock and for the read of the
    /// queue), joined with `; `.
    pub(super) fn errors_text(&self) -> String {
        let mut texts: Vec<&str> = Vec::new();
        for e in self.errors.iter().flatten() {
            if !texts.contains(&e.what.as_str()) {
                texts.push(&e.what);
            }
        }
        texts.join("; ")
    }

    /// The errors of a refused transaction: the index of each failed operation and its text.
    pub(super) fn errors_at(&self) -> Vec<(usize, String)> {
        self.errors
            .iter()
            .flatten()
            .map(|e| (e.op_index, e.what.clone()))
            .collect()
    }

    /// The KV results in the order of the operations.
    pub(super) fn kv_results(self) -> impl Iterator<Item = RawEntry> {
        self.results.into_iter().flatten().filter_map(|r| r.kv)
    }
}

/// Whether a refusal's text is Consul's for a token that may not do it.
pub(super) fn is_denied(what: &str) -> bool {
    what.contains("Permission denied") || what.contains("ACL not found")
}

/// The error for a transaction Consul refused (409) other than for a held key or a
/// lock-delay: the token may not do it, or Consul refused the transaction for `message`.
pub(crate) fn refused(key: &str, op: &'static str, message: String) -> Error {
    if is_denied(&message) {
        Error::PermissionDenied {
            key: key.to_owned(),
            operation: op,
            message,
        }
    } else {
        Error::ConsulRefused {
            key: key.to_owned(),
            operation: op,
            status: 409,
            message,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TxnResult {
    #[serde(rename = "KV")]
    pub(super) kv: Option<RawEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TxnError {
    #[serde(default)]
    op_index: usize,
    #[serde(default)]
    pub(super) what: String,
}

/// The outcome of one `/v1/txn` locking several keys at once ([`Client::txn_lock_all`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum MultiAttempt {
    /// Every key locked; the `ModifyIndex` of each key's write, in the order of the keys.
    Acquired { modify_indexes: Vec<u64> },
    /// Another session holds the key at this index: nothing was written.
    Held { index: usize },
    /// The key at this index is free but a lock-delay runs: nothing was written.
    LockDelay { index: usize },
}

/// One operation of a `/v1/txn` body.
#[derive(Serialize)]
pub(super) struct TxnOp<'a> {
    #[serde(rename = "KV")]
    kv: TxnKv<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TxnKv<'a> {
    verb: &'a str,
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flags: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<u64>,
}

impl<'a> TxnOp<'a> {
    pub(super) fn kv(
        verb: &'a str,
        key: &'a str,
        value: Option<&'a str>,
        session: Option<&'a str>,
    ) -> Self {
        TxnOp {
            kv: TxnKv {
                verb,
                key,
                value,
                session,
                flags: None,
                index: None,
            },
        }
    }

    /// Sets the `Flags` written with the operation.
    pub(super) fn with_flags(mut self, flags: u64) -> Self {
        self.kv.flags = Some(flags);
        self
    }

    /// Sets the `Index` of a `cas`, `delete-cas` or `check-index`.
    pub(super) fn with_index(mut self, index: Option<u64>) -> Self {
        self.kv.index = index;
        self
    }
}

impl Client {
    /// `PUT /v1/txn` with a `lock` of `key` (with Go's lock flag, [`GO_LOCK_FLAG`]), a `delete`
    /// of this session's entry in `queue` (a waiter leaves the queue with the same write that
    /// gives it the key, which wakes its successor; a no-op for a newcomer) and a `get-tree` of
    /// `queue` (the waiters), in one round trip.
    pub(crate) async fn txn_lock(
        &self,
        key: &str,
        value: &[u8],
        session: &str,
        queue: &str,
        timeout: Duration,
    ) -> Result<LockAttempt> {
        const OP: &str = "lock the key";
        let value = base64::engine::general_purpose::STANDARD.encode(value);
        let entry = format!("{queue}{session}");
        let mut lock = TxnOp::kv("lock", key, Some(&value), Some(session));
        lock.kv.flags = Some(GO_LOCK_FLAG);
        let body = [
            lock,
            TxnOp::kv("delete", &entry, None, None),
            TxnOp::kv("get-tree", queue, None, None),
        ];
        let call = Call::new(Method::PUT, "/v1/txn".into(), key, OP, timeout).with_json(&body);
        let reply = call.send(self, &[409]).await?;
        let parsed = TxnReply::decode(&reply, key, OP)?;
        if reply.status == 409 {
            let what = parsed.errors_text();
            return if what.contains("lock is already held") {
                Ok(LockAttempt::Held)
            } else if what.contains("lock delay") {
                Ok(LockAttempt::LockDelay)
            } else {
                Err(refused(key, OP, what))
            };
        }
        let mut results = parsed.kv_results();
        let locked = results
            .next()
            .ok_or_else(|| unexpected(key, OP, reply.status, "no KV result"))?;
        Ok(LockAttempt::Acquired {
            modify_index: locked.modify_index,
            queue: results.map(RawEntry::into_entry).collect(),
        })
    }

    /// `PUT /v1/txn` with a `check-session` and a `delete` of `key`: gives the key back
    /// without ending the session. Deleted, not unlocked: an unlocked key stays in Consul
    /// without a session, for good if its waiters then give up; deleted, the store is as after
    /// a release (whose session end deletes the key, `Behavior = delete`), and a Go waiter
    /// takes a deleted key as it takes a released one.
    pub(crate) async fn txn_give_back(
        &self,
        key: &str,
        session: &str,
        timeout: Duration,
    ) -> Result<()> {
        const OP: &str = "give the key back to a waiter";
        let body = [
            TxnOp::kv("check-session", key, None, Some(session)),
            TxnOp::kv("delete", key, None, None),
        ];
        let call = Call::new(Method::PUT, "/v1/txn".into(), key, OP, timeout).with_json(&body);
        let reply = call.send(self, &[409]).await?;
        let what = reply.text();
        if reply.status == 409 && is_denied(&what) {
            return Err(refused(key, OP, what));
        }
        // Any other 409: this session no longer holds the key (it ended): nothing to give.
        Ok(())
    }

    /// `PUT /v1/txn` with a `delete-cas` of each key at the index of the write that took it:
    /// gives back keys taken with a shared session, deleting each only while the lock that took
    /// it holds it (any later write, another session's lock or a later lock of the same session,
    /// moves the key's `ModifyIndex`, and a session's end deletes the key). One write for every
    /// key; when one of them is no longer the lock's (Consul refuses the whole transaction),
    /// each key is given back alone. `label` names the lock in errors. `Ok(false)`: some key
    /// was not at its index (gone, taken since, or rewritten).
    pub(crate) async fn txn_give_back_taken(
        &self,
        label: &str,
        keys: &[(String, u64)],
        timeout: Duration,
    ) -> Result<bool> {
        const OP: &str = "give the key back (release)";
        let body: Vec<TxnOp<'_>> = keys
            .iter()
            .map(|(key, index)| TxnOp::kv("delete-cas", key, None, None).with_index(Some(*index)))
            .collect();
        let call = Call::new(Method::PUT, "/v1/txn".into(), label, OP, timeout).with_json(&body);
        let reply = call.send(self, &[409]).await?;
        if reply.status != 409 {
            return Ok(true);
        }
        let what = reply.text();
        if is_denied(&what) {
            return Err(refused(label, OP, what));
        }
        // A key no longer held by this lock (deleted, or taken since): nothing to give back
        // there; the others are given back one by one.
        if keys.len() > 1 {
            for key in keys {
                Box::pin(self.txn_give_back_taken(label, std::slice::from_ref(key), timeout))
                    .await?;
            }
        }
        Ok(false)
    }

    /// `PUT /v1/txn` with one `lock` per key, all with `session`: Consul applies all of them
    /// or none. `values[i]` is the value of `keys[i]`; `label` names the keys in errors.
    /// `leave`: this session's entry in a queue of waiters, deleted by the same write (one
    /// more operation: callers leave it out for a set of [`MAX_TXN_OPS`](crate::MAX_TXN_OPS) keys).
    pub(crate) async fn txn_lock_all(
        &self,
        label: &str,
        keys: &[String],
        values: &[Vec<u8>],
        session: &str,
        leave: Option<&str>,
        timeout: Duration,
    ) -> Result<MultiAttempt> {
        const OP: &str = "lock the keys";
        let encoded: Vec<String> = values
            .iter()
            .map(|v| base64::engine::general_purpose::STANDARD.encode(v))
            .collect();
        let mut body = lock_all_body(keys, &encoded, session);
        if let Some(entry) = leave {
            body.push(TxnOp::kv("delete", entry, None, None));
        }
        let call = Call::new(Method::PUT, "/v1/txn".into(), label, OP, timeout).with_json(&body);
        let reply = call.send(self, &[409]).await?;
        let parsed = TxnReply::decode(&reply, label, OP)?;
        if reply.status == 409 {
            let errors = parsed.errors.unwrap_or_default();
            let key_at = |e: &TxnError| keys.get(e.op_index).map_or(label, String::as_str);
            let index_of = |e: &TxnError| e.op_index.min(keys.len().saturating_sub(1));
            if let Some(e) = errors
                .iter()
                .find(|e| e.what.contains("lock is already held"))
            {
                return Ok(MultiAttempt::Held { index: index_of(e) });
            }
            if let Some(e) = errors.iter().find(|e| e.what.contains("lock delay")) {
                return Ok(MultiAttempt::LockDelay { index: index_of(e) });
            }
            if let Some(e) = errors.iter().find(|e| is_denied(&e.what)) {
                return Err(refused(key_at(e), OP, e.what.clone()));
            }
            let what = errors
                .iter()
                .map(|e| format!("{} ({})", e.what, key_at(e)))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(refused(label, OP, what));
        }
        let modify_indexes: Vec<u64> = parsed.kv_results().map(|kv| kv.modify_index).collect();
        if modify_indexes.len() != keys.len() {
            return Err(unexpected(
                label,
                OP,
                reply.status,
                &format!(
                    "{} KV results for {} keys",
                    modify_indexes.len(),
                    keys.len()
                ),
            ));
        }
        Ok(MultiAttempt::Acquired { modify_indexes })
    }
}

/// The body of [`Client::txn_lock_all`]: one `lock` per key, nothing else, so that 64 keys
/// fit Consul's limit of 64 operations.
fn lock_all_body<'a>(
    keys: &'a [String],
    encoded: &'a [String],
    session: &'a str,
) -> Vec<TxnOp<'a>> {
    keys.iter()
        .zip(encoded)
        .map(|(key, value)| TxnOp::kv("lock", key, Some(value), Some(session)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_all_body_is_one_lock_per_key() {
        let keys = ["locks/a".to_owned(), "locks/b".to_owned()];
        let values = ["YQ==".to_owned(), "Yg==".to_owned()];
        let body = serde_json::to_string(&lock_all_body(&keys, &values, "s-1")).unwrap();
        assert_eq!(
            body,
            r#"[{"KV":{"Verb":"lock","Key":"locks/a","Value":"YQ==","Session":"s-1"}},{"KV":{"Verb":"lock","Key":"locks/b","Value":"Yg==","Session":"s-1"}}]"#
        );
    }

    #[test]
    fn a_refusal_repeated_for_each_operation_is_said_once() {
        let reply: TxnReply = serde_json::from_str(
            r#"{"Results":null,"Errors":[{"OpIndex":0,"What":"Permission denied"},{"OpIndex":2,"What":"Permission denied"},{"OpIndex":1,"What":"key too large"}]}"#,
        )
        .unwrap();
        assert_eq!(reply.errors_text(), "Permission denied; key too large");
    }
}
