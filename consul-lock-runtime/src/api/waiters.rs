//! `/v1/txn`: join a key's queue of waiters (leaving another one) and read the key and its
//! queue in one round trip.

use std::time::Duration;

use reqwest::Method;

use super::http::{unexpected, Call};
use super::kv::RawEntry;
use super::txn::{refused, TxnOp, TxnReply};
use crate::{Client, KvEntry, Result};

/// What [`Client::txn_join`] writes and reads.
pub(crate) struct Join<'a> {
    /// The entry to join as, `<queue><session>`.
    pub(crate) entry: &'a str,
    pub(crate) session: &'a str,
    /// What to read in the same transaction.
    pub(crate) tree: &'a str,
    /// This session's entry in another queue, deleted in the same transaction.
    pub(crate) leave: Option<&'a str>,
}

impl Client {
    /// `PUT /v1/txn` with a `delete` of `leave` (this session's entry in another queue, if
    /// any), a `lock` of `entry` (an empty value, held by `session`) and a `get-tree` of
    /// `tree`: what the waiter watches (the lock key, or a semaphore's prefix) and the queue as
    /// they are right after the join (keys that merely start with `tree` come too; callers
    /// filter them). `key` names the lock in errors. A join refused because the session is
    /// gone is an error that [`is_invalid_session`](crate::Error::is_invalid_session)
    /// recognises.
    pub(crate) async fn txn_join(
        &self,
        key: &str,
        join: Join<'_>,
        timeout: Duration,
    ) -> Result<Vec<KvEntry>> {
        const OP: &str = "join the queue of waiters";
        let Join {
            entry,
            session,
            tree,
            leave,
        } = join;
        let mut body = Vec::with_capacity(3);
        if let Some(old) = leave {
            body.push(TxnOp::kv("delete", old, None, None));
        }
        body.push(TxnOp::kv("lock", entry, Some(""), Some(session)));
        body.push(TxnOp::kv("get-tree", tree, None, None));
        let call = Call::new(Method::PUT, "/v1/txn".into(), key, OP, timeout).with_json(&body);
        let reply = call.send(self, &[409]).await?;
        let parsed = TxnReply::decode(&reply, key, OP)?;
        if reply.status == 409 {
            return Err(refused(key, OP, parsed.errors_text()));
        }
        let mut results = parsed.kv_results();
        // The first result is the joined entry (a delete has none); the rest is the tree.
        results
            .next()
            .ok_or_else(|| unexpected(key, OP, reply.status, "no KV result"))?;
        Ok(results.map(RawEntry::into_entry).collect())
    }
}
