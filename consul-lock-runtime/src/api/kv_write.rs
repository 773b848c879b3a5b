//! Plain KV writes with flags: a check-and-set put and a session acquire, as Go's
//! `api.Semaphore` writes its keys (`PUT /v1/kv/<key>?cas=<index>&flags=<flags>` and
//! `PUT /v1/kv/<key>?acquire=<session>&flags=<flags>`).

use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use serde::Serialize;

use super::http::Call;
use super::txn::is_denied;
use crate::key::encode_path;
use crate::{Client, Error, Result};

/// A check-and-set write: `entry` becomes `value` with `flags` if its `ModifyIndex` is still
/// `index`; with no value, `entry` is deleted if its `ModifyIndex` is still `index`.
pub(crate) struct Cas<'a> {
    pub(crate) entry: &'a str,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) flags: u64,
    pub(crate) index: u64,
}

/// One KV operation of a `/v1/txn` body, with the fields a check-and-set needs.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct KvOp<'a> {
    verb: &'a str,
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<String>,
    flags: u64,
    index: u64,
}

#[derive(Serialize)]
struct TxnOp<'a> {
    #[serde(rename = "KV")]
    kv: KvOp<'a>,
}

impl Client {
    /// `PUT /v1/kv/<entry>?cas=<index>&flags=<flags>`: writes `value` only if the entry's
    /// `ModifyIndex` is still `index` (0: only if the entry does not exist). `Ok(true)` when
    /// written. `key` names the lock for errors.
    pub(crate) async fn kv_cas(
        &self,
        key: &str,
        entry: &str,
        value: Vec<u8>,
        flags: u64,
        index: u64,
        timeout: Duration,
    ) -> Result<bool> {
        let path = format!("/v1/kv/{}", encode_path(entry));
        let call = Call::new(
            Method::PUT,
            path,
            key,
            "update the semaphore's holders",
            timeout,
        )
        .with_query("cas", index.to_string())
        .with_query("flags", flags.to_string())
        .with_body(value);
        let reply = call.send(self, &[]).await?;
        Ok(reply.text().trim() == "true")
    }

    /// `PUT /v1/kv/<entry>?acquire=<session>&flags=<flags>` with `value`: `Ok(true)` when the
    /// session holds `entry` now. `key` names the lock for errors.
    pub(crate) async fn kv_acquire_flagged(
        &self,
        key: &str,
        entry: &str,
        value: Vec<u8>,
        session: &str,
        flags: u64,
        timeout: Duration,
    ) -> Result<bool> {
        let path = format!("/v1/kv/{}", encode_path(entry));
        let call = Call::new(Method::PUT, path, key, "write the contender key", timeout)
            .with_query("acquire", session.to_owned())
            .with_query("flags", flags.to_string())
            .with_body(value);
        let reply = call.send(self, &[]).await?;
        Ok(reply.text().trim() == "true")
    }

    /// `PUT /v1/txn`: the check-and-set `cas` (a `cas`, or a `delete-cas` when it has no
    /// value), and `delete` of `gone`, in one write (so that watchers of the prefix wake once). `Ok(false)` when the check-and-set
    /// failed (another writer came first); nothing was changed then. `key` names the lock for
    /// errors.
    pub(crate) async fn txn_cas_and_delete(
        &self,
        key: &str,
        cas: Cas<'_>,
        gone: &str,
        timeout: Duration,
    ) -> Result<bool> {
        let Cas {
            entry,
            value,
            flags,
            index,
        } = cas;
        const OP: &str = "give the semaphore's slot back";
        let body = [
            TxnOp {
                kv: KvOp {
                    verb: if value.is_some() { "cas" } else { "delete-cas" },
                    key: entry,
                    value: value.map(|v| base64::engine::general_purpose::STANDARD.encode(v)),
                    flags,
                    index,
                },
            },
            TxnOp {
                kv: KvOp {
                    verb: "delete",
                    key: gone,
                    value: None,
                    flags: 0,
                    index: 0,
                },
            },
        ];
        let call = Call::new(Method::PUT, "/v1/txn".into(), key, OP, timeout).with_json(&body);
        let reply = call.send(self, &[409]).await?;
        if reply.status != 409 {
            return Ok(true);
        }
        let what = reply.text();
        if is_denied(&what) {
            return Err(Error::PermissionDenied {
                key: key.to_owned(),
                operation: OP,
                message: what,
            });
        }
        Ok(false)
    }
}
