//! The semaphore's writes, each one `/v1/txn` in Go's layout (`api.Semaphore`): take a slot
//! (the contender key and the coordination key together) and give it back.

use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;

use super::http::{unexpected, Call};
use super::txn::{refused, TxnOp, TxnReply};
use crate::{Client, Result};

/// A check-and-set write: `entry` becomes `value` with `flags` if its `ModifyIndex` is still
/// `index` (0: if it does not exist); with no value, `entry` is deleted if its `ModifyIndex`
/// is still `index`.
pub(crate) struct Cas<'a> {
    pub(crate) entry: &'a str,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) flags: u64,
    pub(crate) index: u64,
}

/// What [`Client::txn_take_slot`] writes.
pub(crate) struct TakeSlot<'a> {
    /// The contender key, `PREFIX/<session>`, locked by `session` with `value` and `flags`.
    pub(crate) contender: &'a str,
    pub(crate) value: &'a [u8],
    pub(crate) session: &'a str,
    pub(crate) flags: u64,
    /// The coordination key with this session added to its holders.
    pub(crate) cas: Cas<'a>,
    /// This session's entry in the queue of waiters, deleted by the same write.
    pub(crate) leave: Option<&'a str>,
}

/// The outcome of [`Client::txn_take_slot`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SlotAttempt {
    /// Written: the contender key's `ModifyIndex`, and the coordination key's.
    Taken {
        contender_index: u64,
        lock_index: u64,
    },
    /// Another writer changed the coordination key first: nothing was written.
    Raced,
}

fn encode(value: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(value)
}

/// A `cas` of `value` (base64), or a `delete-cas` without one.
fn cas_op<'a>(cas: &Cas<'a>, value: Option<&'a str>) -> TxnOp<'a> {
    let verb = if value.is_some() { "cas" } else { "delete-cas" };
    TxnOp::kv(verb, cas.entry, value, None)
        .with_flags(cas.flags)
        .with_index(Some(cas.index))
}

impl Client {
    /// `PUT /v1/txn`: the contender key locked by the session, the coordination key's
    /// check-and-set, and the queue entry's delete, all or none. `key` names the semaphore in
    /// errors; a session Consul no longer knows is an error that
    /// [`is_invalid_session`](crate::Error::is_invalid_session) recognises.
    pub(crate) async fn txn_take_slot(
        &self,
        key: &str,
        take: TakeSlot<'_>,
        timeout: Duration,
    ) -> Result<SlotAttempt> {
        const OP: &str = "take a slot of the semaphore";
        let (value, table) = (encode(take.value), take.cas.value.map(encode));
        let mut body = vec![
            TxnOp::kv("lock", take.contender, Some(&value), Some(take.session))
                .with_flags(take.flags),
            cas_op(&take.cas, table.as_deref()),
        ];
        if let Some(entry) = take.leave {
            body.push(TxnOp::kv("delete", entry, None, None));
        }
        let call = Call::new(Method::PUT, "/v1/txn".into(), key, OP, timeout).with_json(&body);
        let reply = call.send(self, &[409]).await?;
        let parsed = TxnReply::decode(&reply, key, OP)?;
        if reply.status == 409 {
            let what = parsed.errors_text();
            return if what.contains("index is stale") {
                Ok(SlotAttempt::Raced)
            } else {
                Err(refused(key, OP, what))
            };
        }
        let mut results = parsed.kv_results();
        let (Some(contender), Some(lock)) = (results.next(), results.next()) else {
            return Err(unexpected(
                key,
                OP,
                reply.status,
                "fewer than two KV results",
            ));
        };
        Ok(SlotAttempt::Taken {
            contender_index: contender.modify_index,
            lock_index: lock.modify_index,
        })
    }

    /// `PUT /v1/txn`: the check-and-set `cas` (a `delete-cas` when it has no value), and
    /// `delete` of `gone`, in one write (so that watchers of the prefix wake once):
    /// `Ok(Some(index))`, the written key's new `ModifyIndex` (0 when it was deleted);
    /// `Ok(None)` when the check-and-set failed (another writer came first), and nothing was
    /// changed. `key` names the lock for errors.
    pub(crate) async fn txn_cas_and_delete(
        &self,
        key: &str,
        cas: Cas<'_>,
        gone: &str,
        timeout: Duration,
    ) -> Result<Option<u64>> {
        const OP: &str = "give the semaphore's slot back";
        let table = cas.value.map(encode);
        let body = [
            cas_op(&cas, table.as_deref()),
            TxnOp::kv("delete", gone, None, None),
        ];
        let call = Call::new(Method::PUT, "/v1/txn".into(), key, OP, timeout).with_json(&body);
        let reply = call.send(self, &[409]).await?;
        let parsed = TxnReply::decode(&reply, key, OP)?;
        if reply.status != 409 {
            // A delete-cas has no result.
            let written = parsed.kv_results().next().map_or(0, |kv| kv.modify_index);
            return Ok(Some(written));
        }
        let what = parsed.errors_text();
        if what.contains("index is stale") {
            Ok(None)
        } else {
            Err(refused(key, OP, what))
        }
    }
}
