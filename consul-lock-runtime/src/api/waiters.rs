//! `/v1/txn`: join a key's queue of waiters and read the key and its queue in one round trip.

use std::time::Duration;

use reqwest::Method;

use super::http::{unexpected, Call};
use super::kv::RawEntry;
use super::txn::{refused, TxnOp, TxnReply};
use crate::{Client, KvEntry, Result};

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
        let parsed = TxnReply::decode(&reply, key, OP)?;
        if reply.status == 409 {
            return Err(refused(key, OP, parsed.errors_text()));
        }
        let mut results = parsed.kv_results();
        // The first result is the joined entry; the rest is the tree.
        results
            .next()
            .ok_or_else(|| unexpected(key, OP, reply.status, "no KV result"))?;
        Ok(results.map(RawEntry::into_entry).collect())
    }
}
