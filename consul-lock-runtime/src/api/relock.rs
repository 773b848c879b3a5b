//! `/v1/txn` with a `check-session` of a held key, then `lock`s of keys by the same session:
//! how a leader rewrites its own key (a proclaim) and writes its leadership record, applied by
//! Consul only while the session still holds the key.
//!
//! SEAM (issue 18): these are fenced writes. Once the fenced writes of the lease-safety issue
//! (`api/fenced.rs`, `Fence`) are on `main`, this call moves there as the one fenced
//! transaction with session-held `lock` operations, and the election uses `Fence`.

use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;

use super::http::{unexpected, Call};
use super::txn::{refused, TxnOp, TxnReply};
use crate::{Client, Result};

/// What Consul did with a re-lock transaction.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Relocked {
    /// Applied: the `ModifyIndex` of each `lock`, in order.
    Applied(Vec<u64>),
    /// Refused because the session no longer holds `held` (Consul's text).
    NotHeld(String),
}

impl Client {
    /// `PUT /v1/txn`: `check-session` of `held` by `session`, then a `lock` by `session` of
    /// each `(key, value, flags)` of `locks`. Consul applies all or none.
    pub(crate) async fn txn_relock(
        &self,
        held: &str,
        session: &str,
        locks: &[(&str, &[u8], u64)],
        timeout: Duration,
    ) -> Result<Relocked> {
        const OP: &str = "write as the leader (fenced)";
        let encoded: Vec<String> = locks
            .iter()
            .map(|(_, v, _)| base64::engine::general_purpose::STANDARD.encode(v))
            .collect();
        let mut body = vec![TxnOp::kv("check-session", held, None, Some(session))];
        for ((key, _, flags), value) in locks.iter().zip(&encoded) {
            body.push(TxnOp::kv("lock", key, Some(value), Some(session)).with_flags(*flags));
        }
        let call = Call::new(Method::PUT, "/v1/txn".into(), held, OP, timeout).with_json(&body);
        let reply = call.send(self, &[409]).await?;
        let parsed = TxnReply::decode(&reply, held, OP)?;
        if reply.status == 409 {
            let errors = parsed.errors_at();
            // The check is operation 0: a failed check means the key is not held any more.
            if let Some((_, what)) = errors.iter().find(|(i, _)| *i == 0) {
                return Ok(Relocked::NotHeld(what.clone()));
            }
            return Err(refused(held, OP, parsed.errors_text()));
        }
        let indexes: Vec<u64> = parsed
            .kv_results()
            .skip(1)
            .map(|e| e.modify_index)
            .collect();
        if indexes.len() != locks.len() {
            return Err(unexpected(
                held,
                OP,
                reply.status,
                "fewer KV results than locks",
            ));
        }
        Ok(Relocked::Applied(indexes))
    }
}
