//! `/v1/txn` with `check-session` operations first: KV operations that Consul applies only
//! while each listed session still holds its key (the fenced writes of [`crate::Fence`]).

use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;

use super::http::Call;
use super::txn::{TxnOp, TxnReply};
use crate::{Client, KvEntry, Result};

/// One KV operation of a fenced transaction, as it goes on the wire.
pub(crate) struct WireOp<'a> {
    /// Consul's verb (`set`, `cas`, `get`, `delete`, …).
    pub(crate) verb: &'static str,
    pub(crate) key: &'a str,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) index: Option<u64>,
    /// The session of a `lock` (a holder rewriting a key it holds, or taking another with its
    /// session: an election's leadership record and proclaim).
    pub(crate) session: Option<&'a str>,
    /// The flags written (0 when not given).
    pub(crate) flags: Option<u64>,
}

/// What Consul did with a fenced transaction.
#[derive(Debug)]
pub(crate) enum FencedOutcome {
    /// Applied: the KV results of the caller's operations, in order (Consul answers with an
    /// entry for `set`, `cas`, `get` and `check-index`, none for the others; the results of the
    /// checks are left out).
    Applied(Vec<KvEntry>),
    /// Refused (409): `(index of the operation, Consul's text)` for each failed operation,
    /// counting the checks first. Nothing was written.
    Refused(Vec<(usize, String)>),
}

impl Client {
    /// `PUT /v1/txn` with one `check-session` per `(key, session)` of `checks` (with
    /// `indexes`, one `check-index` per key at its index instead: the key unchanged since the
    /// lock took it, so still held by it), then `ops`. `label` names the lock's
    /// key(s) in errors.
    pub(crate) async fn txn_fenced(
        &self,
        label: &str,
        checks: &[(String, String)],
        indexes: Option<&[u64]>,
        ops: &[WireOp<'_>],
        timeout: Duration,
    ) -> Result<FencedOutcome> {
        const OP: &str = "apply a fenced write";
        let encoded: Vec<Option<String>> = ops
            .iter()
            .map(|op| {
                op.value
                    .map(|v| base64::engine::general_purpose::STANDARD.encode(v))
            })
            .collect();
        let mut body: Vec<TxnOp<'_>> = match indexes {
            Some(indexes) => checks
                .iter()
                .zip(indexes)
                .map(|((key, _), index)| {
                    TxnOp::kv("check-index", key, None, None).with_index(Some(*index))
                })
                .collect(),
            None => checks
                .iter()
                .map(|(key, session)| TxnOp::kv("check-session", key, None, Some(session)))
                .collect(),
        };
        let check_count = body.len();
        body.extend(ops.iter().zip(&encoded).map(|(op, value)| {
            let op_ = TxnOp::kv(op.verb, op.key, value.as_deref(), op.session).with_index(op.index);
            match op.flags {
                Some(flags) => op_.with_flags(flags),
                None => op_,
            }
        }));
        let call = Call::new(Method::PUT, "/v1/txn".into(), label, OP, timeout).with_json(&body);
        let reply = call.send(self, &[409]).await?;
        let parsed = TxnReply::decode(&reply, label, OP)?;
        if reply.status == 409 {
            return Ok(FencedOutcome::Refused(parsed.errors_at()));
        }
        let entries = parsed.kv_results().skip(check_count);
        Ok(FencedOutcome::Applied(
            entries.map(|e| e.into_entry()).collect(),
        ))
    }
}
