//! KV reads (one key, a tree, the key names under a prefix; blocking when an index is given).

use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use serde::Deserialize;

use super::http::{go_duration, unexpected, Call};
use crate::key::encode_path;
use crate::{Client, Result};

/// A KV entry as Consul returns it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// use consul_lock_runtime::{KvEntry, Lock};
/// let guard = Lock::new("kv-entry-example").client(&client).acquire().await?;
/// let entry: KvEntry = client.kv_get(guard.key()).await?.expect("held");
/// assert_eq!(entry.key, guard.key());
/// assert_eq!(entry.session.as_deref(), Some(guard.session_id()));
/// assert_eq!(entry.lock_index, 1); // the first acquisition of this key
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KvEntry {
    /// The full key.
    pub key: String,
    /// The value (decoded from Consul's base64).
    pub value: Vec<u8>,
    /// The session holding the key, if any.
    pub session: Option<String>,
    /// How many times the key was acquired.
    pub lock_index: u64,
    /// The index of the write that created the key.
    pub create_index: u64,
    /// The index of the last write; for a lock, the fencing token of the holder.
    pub modify_index: u64,
    /// Opaque flags.
    pub flags: u64,
}

/// A KV entry as it travels: the value base64-encoded, absent fields defaulted.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RawEntry {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    session: Option<String>,
    #[serde(default)]
    lock_index: u64,
    #[serde(default)]
    create_index: u64,
    #[serde(default)]
    pub(crate) modify_index: u64,
    #[serde(default)]
    flags: u64,
}

impl RawEntry {
    pub(crate) fn into_entry(self) -> KvEntry {
        let value = self
            .value
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .unwrap_or_default();
        KvEntry {
            key: self.key,
            value,
            session: self.session.filter(|s| !s.is_empty()),
            lock_index: self.lock_index,
            create_index: self.create_index,
            modify_index: self.modify_index,
            flags: self.flags,
        }
    }
}

/// A blocking query: wait until the index passes `.0`, at most `.1`.
pub(crate) type Blocking = Option<(u64, Duration)>;

impl Client {
    /// `GET /v1/kv/<key>`, as a blocking query when `blocking` is given. Returns the entry (or
    /// `None` when the key does not exist) and `X-Consul-Index`.
    pub(crate) async fn kv_read(
        &self,
        key: &str,
        blocking: Blocking,
        timeout: Duration,
    ) -> Result<(Option<KvEntry>, u64)> {
        let (entries, index) = self.kv_query(key, key, false, blocking, timeout).await?;
        Ok((entries.into_iter().next(), index))
    }

    /// `GET /v1/kv/<prefix>?recurse`, as a blocking query when `blocking` is given: every
    /// entry whose key starts with `prefix`, and `X-Consul-Index`. `key` names the lock for
    /// errors.
    pub(crate) async fn kv_read_tree(
        &self,
        key: &str,
        prefix: &str,
        blocking: Blocking,
        timeout: Duration,
    ) -> Result<(Vec<KvEntry>, u64)> {
        self.kv_query(key, prefix, true, blocking, timeout).await
    }

    async fn kv_query(
        &self,
        key: &str,
        path: &str,
        recurse: bool,
        blocking: Blocking,
        timeout: Duration,
    ) -> Result<(Vec<KvEntry>, u64)> {
        let operation = if recurse {
            "read the keys under a prefix"
        } else {
            "read the key"
        };
        let path = format!("/v1/kv/{}", encode_path(path));
        let mut call = Call::new(Method::GET, path, key, operation, timeout);
        if recurse {
            call = call.with_query("recurse", String::new());
        }
        if let Some((index, wait)) = blocking {
            call = call
                .with_query("index", index.to_string())
                .with_query("wait", go_duration(wait));
        }
        let reply = call.send(self, &[404]).await?;
        let index = reply.index.unwrap_or(0);
        if reply.status == 404 {
            return Ok((Vec::new(), index));
        }
        let entries: Vec<RawEntry> = serde_json::from_slice(&reply.body)
            .map_err(|e| unexpected(key, operation, reply.status, &e.to_string()))?;
        let entries = entries.into_iter().map(RawEntry::into_entry).collect();
        Ok((entries, index))
    }

    /// `GET /v1/kv/<prefix>?keys`: the names of the keys under `prefix` (none on 404).
    pub(crate) async fn kv_key_names(
        &self,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Vec<String>> {
        let path = format!("/v1/kv/{}", encode_path(prefix));
        let call = Call::new(Method::GET, path, prefix, "list keys", timeout)
            .with_query("keys", String::new());
        let reply = call.send(self, &[404]).await?;
        if reply.status == 404 {
            return Ok(Vec::new());
        }
        serde_json::from_slice(&reply.body)
            .map_err(|e| unexpected(prefix, "list keys", reply.status, &e.to_string()))
    }
}
