//! `/v1/txn`: join a key's queue of waiters and read the key and its queue in one round trip.

use std::time::Duration;

use reqwest::Method;

use super::http::{unexpected, Call};
use super::kv::RawEntry;
use super::txn::{TxnOp, TxnReply};
use crate::{Client, Error, KvEntry, Result};

impl Client {
    /// `PUT /v1/txn` with a `lock` of `entry` (an empty value, held by `session`) and a
    /// `get-tree` of `key`: the lock key and its queue as they are right after the join (keys
    /// that merely start with `key` come too; callers filter them). A join refused because
    /// the session is gone is an error that
    /// [`is_invalid_session`](crate::Error::is_invalid_session) recognises.
    pub(crate) async fn txn_join(
        &self,
        key: &str,
        entry: &str,
        session: &str,
        timeout: Duration,
    ) -> Result<Vec<KvEntry>> {
        const OP: &str = "join the queue of waiters";
        let body = [
            TxnOp::kv("lock", entry, Some(""), Some(session)),
            TxnOp::kv("get-tree", key, None, None),
        ];
        let call = Call::new(Method::PUT, "/v1/txn".into(), key, OP, timeout).with_json(&body);
        let reply = call.send(self, &[409]).await?;
        let parsed: TxnReply = serde_json::from_slice(&reply.body)
            .map_err(|e| unexpected(key, OP, reply.status, &e.to_string()))?;
        if reply.status == 409 {
            let message = parsed
                .errors
                .unwrap_or_default()
                .into_iter()
                .map(|e| e.what)
                .collect::<Vec<_>>()
                .join("; ");
            return Err(
                if message.contains("Permission denied") || message.contains("ACL not found") {
                    Error::PermissionDenied {
                        key: key.to_owned(),
                        operation: OP,
                        message,
                    }
                } else {
                    Error::ConsulRefused {
                        key: key.to_owned(),
                        operation: OP,
                        status: 409,
                        message,
                    }
                },
            );
        }
        let mut results = parsed
            .results
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.kv);
        // The first result is the joined entry; the rest is the tree.
        results
            .next()
            .ok_or_else(|| unexpected(key, OP, reply.status, "no KV result"))?;
        Ok(results.map(RawEntry::into_entry).collect())
    }
}
