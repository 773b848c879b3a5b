//! `/v1/txn`: lock a key and read its queue of waiters in one round trip; unlock a key.

use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::http::{unexpected, Call};
use super::kv::RawEntry;
use crate::{Client, Error, KvEntry, Result};

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
    pub(super) what: String,
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
            },
        }
    }
}

impl Client {
    /// `PUT /v1/txn` with a `lock` of `key`, a `delete` of this session's entry in `queue`
    /// (a waiter leaves the queue with the same write that gives it the key, which wakes its
    /// successor; a no-op for a newcomer) and a `get-tree` of `queue` (the waiters), in one
    /// round trip.
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
        let body = [
            TxnOp::kv("lock", key, Some(&value), Some(session)),
            TxnOp::kv("delete", &entry, None, None),
            TxnOp::kv("get-tree", queue, None, None),
        ];
        let call = Call::new(Method::PUT, "/v1/txn".into(), key, OP, timeout).with_json(&body);
        let reply = call.send(self, &[409]).await?;
        let parsed: TxnReply = serde_json::from_slice(&reply.body)
            .map_err(|e| unexpected(key, OP, reply.status, &e.to_string()))?;
        if reply.status == 409 {
            let what = parsed
                .errors
                .unwrap_or_default()
                .into_iter()
                .map(|e| e.what)
                .collect::<Vec<_>>()
                .join("; ");
            return if what.contains("lock is already held") {
                Ok(LockAttempt::Held)
            } else if what.contains("lock delay") {
                Ok(LockAttempt::LockDelay)
            } else if what.contains("Permission denied") || what.contains("ACL not found") {
                Err(Error::PermissionDenied {
                    key: key.to_owned(),
                    operation: OP,
                    message: what,
                })
            } else {
                Err(Error::ConsulRefused {
                    key: key.to_owned(),
                    operation: OP,
                    status: 409,
                    message: what,
                })
            };
        }
        let mut results = parsed
            .results
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.kv);
        let locked = results
            .next()
            .ok_or_else(|| unexpected(key, OP, reply.status, "no KV result"))?;
        Ok(LockAttempt::Acquired {
            modify_index: locked.modify_index,
            queue: results.map(RawEntry::into_entry).collect(),
        })
    }

    /// `PUT /v1/txn` with an `unlock` of `key`: gives the key back without ending the session.
    pub(crate) async fn txn_unlock(
        &self,
        key: &str,
        session: &str,
        timeout: Duration,
    ) -> Result<()> {
        let body = [TxnOp::kv("unlock", key, None, Some(session))];
        let op = "give the key back to a waiter";
        let call = Call::new(Method::PUT, "/v1/txn".into(), key, op, timeout).with_json(&body);
        call.send(self, &[]).await.map(|_| ())
    }
}
