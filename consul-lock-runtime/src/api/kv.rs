//! KV reads: one key, a tree, the key names under a prefix, and the one blocking query
//! ([`Client::kv_block`]), which owns Consul's wait and index rules.

use std::time::Duration;

use tokio::time::Instant;

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

/// A blocking query (`?index=…&wait=…`): what it waits past, and for how long.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Blocking {
    /// Answer once the index passes this; 0 reads at once (the first read of a watch).
    pub(crate) index: u64,
    /// The longest wait to ask Consul for.
    pub(crate) wait: Duration,
    /// The moment the whole request must be over by (an acquire's deadline), if any.
    pub(crate) until: Option<Instant>,
}

/// The longest wait Consul grants a blocking query (longer ones are cut to it).
const MAX_WAIT: Duration = Duration::from_secs(600);

/// The shortest wait worth asking for.
const MIN_WAIT: Duration = Duration::from_millis(1);

impl Blocking {
    /// The `wait` to ask for and the request's timeout, by Consul's rules: Consul answers a
    /// blocking query up to wait/16 late, so a query that must be over by `until` asks for
    /// 15/16 of the time left at most, and a request is given its wait, that lateness and
    /// one request timeout (but never past `until`).
    fn timing(&self, request_timeout: Duration) -> (Duration, Duration) {
        let left = self
            .until
            .map(|u| u.saturating_duration_since(Instant::now()));
        let mut wait = self.wait.min(MAX_WAIT);
        if let Some(left) = left {
            wait = wait.min(left - left / 16);
        }
        let wait = wait.max(MIN_WAIT);
        let timeout = wait + wait / 16 + request_timeout;
        (wait, left.map_or(timeout, |l| timeout.min(l.max(MIN_WAIT))))
    }
}

/// The index a watch waits past next, after a read at `index` answered `answered`: Consul's
/// rules: an index that goes backwards (a restored snapshot, a new leader's) starts the watch
/// over at 0, and an index is at least 1 (0 would read at once forever).
pub(crate) fn next_index(index: u64, answered: u64) -> u64 {
    if answered < index {
        0
    } else {
        answered.max(1)
    }
}

impl Client {
    /// `GET /v1/kv/<key>`: the entry (or `None` when the key does not exist) and
    /// `X-Consul-Index`.
    pub(crate) async fn kv_read(
        &self,
        key: &str,
        timeout: Duration,
    ) -> Result<(Option<KvEntry>, u64)> {
        let (entries, index) = self.kv_query(key, key, false, None, timeout).await?;
        Ok((entries.into_iter().next(), index))
    }

    /// `GET /v1/kv/<prefix>?recurse`: every entry whose key starts with `prefix`, and
    /// `X-Consul-Index`. `key` names the lock for errors.
    pub(crate) async fn kv_read_tree(
        &self,
        key: &str,
        prefix: &str,
        timeout: Duration,
    ) -> Result<(Vec<KvEntry>, u64)> {
        self.kv_query(key, prefix, true, None, timeout).await
    }

    /// The one blocking query: `GET /v1/kv/<path>` (every entry under it with `tree`) once its
    /// index passes `blocking.index` or the wait is over, timed by Consul's rules
    /// ([`Blocking`]; an index of 0 reads at once). Returns the entries and the index to wait
    /// past next ([`next_index`]). `key` names the lock for errors.
    pub(crate) async fn kv_block(
        &self,
        key: &str,
        path: &str,
        tree: bool,
        blocking: Blocking,
    ) -> Result<(Vec<KvEntry>, u64)> {
        let (wait, timeout) = blocking.timing(self.request_timeout());
        let (query, timeout) = if blocking.index == 0 {
            (None, timeout.min(self.request_timeout()))
        } else {
            (Some((blocking.index, wait)), timeout)
        };
        let (entries, answered) = self.kv_query(key, path, tree, query, timeout).await?;
        Ok((entries, next_index(blocking.index, answered)))
    }

    async fn kv_query(
        &self,
        key: &str,
        path: &str,
        recurse: bool,
        blocking: Option<(u64, Duration)>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_that_goes_backwards_starts_over_and_none_is_zero() {
        assert_eq!(next_index(10, 12), 12);
        assert_eq!(next_index(10, 10), 10);
        assert_eq!(next_index(10, 3), 0);
        assert_eq!(next_index(0, 0), 1);
    }

    #[tokio::test]
    async fn a_wait_fits_the_time_left_with_consuls_lateness() {
        let request = Duration::from_secs(10);
        let watch = Blocking {
            index: 5,
            wait: Duration::from_secs(60),
            until: None,
        };
        assert_eq!(
            watch.timing(request),
            (Duration::from_secs(60), Duration::from_millis(73_750))
        );
        let acquire = Blocking {
            until: Some(Instant::now() + Duration::from_millis(1600)),
            ..watch
        };
        let (wait, timeout) = acquire.timing(request);
        assert!(wait <= Duration::from_millis(1500), "{wait:?}");
        assert!(timeout <= Duration::from_millis(1600), "{timeout:?}");
        let long = Blocking {
            wait: Duration::from_secs(3600),
            ..watch
        };
        assert_eq!(long.timing(request).0, MAX_WAIT);
    }
}
