//! Plain KV writes with flags: a check-and-set put and a session acquire, as Go's
//! `api.Semaphore` writes its keys (`PUT /v1/kv/<key>?cas=<index>&flags=<flags>` and
//! `PUT /v1/kv/<key>?acquire=<session>&flags=<flags>`).

use std::time::Duration;

use reqwest::Method;

use super::http::Call;
use crate::key::encode_path;
use crate::{Client, Result};

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
}
