//! Consul's HTTP API calls used by the lock protocol, and the small public API over them
//! (sessions, KV reads, blocking queries).

use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::http::Call;
use crate::key::encode_path;
use crate::{Client, Error, Result};

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

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawEntry {
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
    modify_index: u64,
    #[serde(default)]
    flags: u64,
}

impl RawEntry {
    fn into_entry(self) -> KvEntry {
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

/// A session as `/v1/session/list` and `/v1/session/info` return it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// use consul_lock_runtime::Lock;
/// use std::time::Duration;
///
/// let lock = Lock::new("session-info-example").client(&client).lock_timeout(Duration::from_secs(60));
/// let guard = lock.acquire().await?;
/// let sessions = client.sessions().await?;
/// let info = sessions.iter().find(|s| s.id == guard.session_id()).expect("listed");
/// assert!(info.name.starts_with(&format!("consul-lock: {} #", guard.key())));
/// assert_eq!((info.ttl.as_str(), info.behavior.as_str()), ("60s", "delete"));
/// guard.release().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct SessionInfo {
    /// The session ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// The session's name (this library names its sessions `consul-lock: <key> #<nonce>`,
    /// 16 hex digits that make the name unique).
    #[serde(default)]
    pub name: String,
    /// The node the session belongs to.
    #[serde(default)]
    pub node: String,
    /// The TTL as Consul prints it (`"180s"`).
    #[serde(default, rename = "TTL")]
    pub ttl: String,
    /// `release` or `delete`.
    #[serde(default)]
    pub behavior: String,
}

/// The outcome of one `/v1/txn` `lock`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum LockAttempt {
    /// Locked; the `ModifyIndex` of the write is the fencing token. `queue` holds the entries
    /// under the queue prefix read in the same transaction.
    Acquired {
        modify_index: u64,
        queue: Vec<KvEntry>,
    },
    /// Another session holds the key.
    Held,
    /// The key is free but a lock-delay runs.
    LockDelay,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnReply {
    #[serde(default)]
    results: Option<Vec<TxnResult>>,
    #[serde(default)]
    errors: Option<Vec<TxnError>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnResult {
    #[serde(rename = "KV")]
    kv: Option<RawEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TxnError {
    #[serde(default)]
    what: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreatedSession {
    #[serde(rename = "ID")]
    id: String,
}

fn unexpected(key: &str, operation: &'static str, status: u16, what: &str) -> Error {
    Error::ConsulRefused {
        key: key.to_owned(),
        operation,
        status,
        message: format!("unexpected answer ({what}); is this address a Consul agent?"),
    }
}

/// The body of `PUT /v1/session/create`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SessionCreateBody<'a> {
    name: &'a str,
    #[serde(rename = "TTL")]
    ttl: &'a str,
    lock_delay: &'a str,
    behavior: &'a str,
}

/// One operation of a `/v1/txn` body.
#[derive(Serialize)]
struct TxnOp<'a> {
    #[serde(rename = "KV")]
    kv: TxnKv<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TxnKv<'a> {
    verb: &'a str,
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<&'a str>,
}

impl<'a> TxnOp<'a> {
    fn kv(verb: &'a str, key: &'a str, value: Option<&'a str>, session: Option<&'a str>) -> Self {
        TxnOp {
            kv: TxnKv {
                verb,
                key,
                value,
                session,
            },
        }
    }
}

/// Serializes a request body. These bodies are plain structs of strings, which always
/// serialize.
fn json_body(body: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(body).unwrap_or_default()
}

/// Formats a duration as Consul's `time.ParseDuration` reads it.
pub(crate) fn go_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis().max(1))
    }
}

impl Client {
    /// `PUT /v1/session/create` with `LockDelay: 0s` and `Behavior: delete`.
    pub(crate) async fn session_create(
        &self,
        key: &str,
        name: &str,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<String> {
        const OP: &str = "create a session";
        let body = SessionCreateBody {
            name,
            ttl: &go_duration(ttl),
            lock_delay: "0s",
            behavior: "delete",
        };
        let mut call = Call::new(Method::PUT, "/v1/session/create".into(), key, OP);
        call.body = Some(json_body(&body));
        call.timeout = timeout;
        let reply = self.call(call, &[]).await?;
        serde_json::from_slice::<CreatedSession>(&reply.body)
            .map(|s| s.id)
            .map_err(|e| unexpected(key, OP, reply.status, &e.to_string()))
    }

    /// `PUT /v1/session/destroy/<id>`; with `Behavior: delete` this deletes the held key.
    pub(crate) async fn session_destroy(
        &self,
        key: &str,
        id: &str,
        timeout: Duration,
    ) -> Result<()> {
        let mut call = Call::new(
            Method::PUT,
            format!("/v1/session/destroy/{}", encode_path(id)),
            key,
            "destroy the session (release)",
        );
        call.timeout = timeout;
        self.call(call, &[]).await.map(|_| ())
    }

    /// `PUT /v1/session/renew/<id>`: `Ok(false)` when Consul no longer knows the session.
    pub(crate) async fn session_renew(
        &self,
        key: &str,
        id: &str,
        timeout: Duration,
    ) -> Result<bool> {
        let mut call = Call::new(
            Method::PUT,
            format!("/v1/session/renew/{}", encode_path(id)),
            key,
            "renew the session",
        );
        call.timeout = timeout;
        let reply = self.call(call, &[404]).await?;
        Ok(reply.status != 404)
    }

    /// `PUT /v1/txn` with a `lock` of `key` and a `get-tree` of `queue` (the waiters), in one
    /// round trip.
    pub(crate) async fn txn_lock(
        &self,
        key: &str,
        value: &[u8],
        session: &str,
        queue: &str,
        timeout: Duration,
    ) -> Result<LockAttempt> {
        const OP: &str = "lock the key";
        let value = base64::engine::general_purpose::STANDARD.encode(value);
        let body = [
            TxnOp::kv("lock", key, Some(&value), Some(session)),
            TxnOp::kv("get-tree", queue, None, None),
        ];
        let mut call = Call::new(Method::PUT, "/v1/txn".into(), key, OP);
        call.body = Some(json_body(&body));
        call.timeout = timeout;
        let reply = self.call(call, &[409]).await?;
        let parsed: TxnReply = serde_json::from_slice(&reply.body)
            .map_err(|e| unexpected(key, OP, reply.status, &e.to_string()))?;
        if reply.status == 409 {
            let what = parsed
                .errors
                .unwrap_or_default()
                .into_iter()
                .map(|e| e.what)
                .collect::<Vec<_>>()
                .join("; ");
            return if what.contains("lock is already held") {
                Ok(LockAttempt::Held)
            } else if what.contains("lock delay") {
                Ok(LockAttempt::LockDelay)
            } else if what.contains("Permission denied") || what.contains("ACL not found") {
                Err(Error::PermissionDenied {
                    key: key.to_owned(),
                    operation: OP,
                    message: what,
                })
            } else {
                Err(Error::ConsulRefused {
                    key: key.to_owned(),
                    operation: OP,
                    status: 409,
                    message: what,
                })
            };
        }
        let mut results = parsed
            .results
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| r.kv);
        let locked = results
            .next()
            .ok_or_else(|| unexpected(key, OP, reply.status, "no KV result"))?;
        Ok(LockAttempt::Acquired {
            modify_index: locked.modify_index,
            queue: results.map(RawEntry::into_entry).collect(),
        })
    }

    /// `PUT /v1/txn` with an `unlock` of `key`: gives the key back without ending the session.
    pub(crate) async fn txn_unlock(
        &self,
        key: &str,
        session: &str,
        timeout: Duration,
    ) -> Result<()> {
        let body = [TxnOp::kv("unlock", key, None, Some(session))];
        let mut call = Call::new(
            Method::PUT,
            "/v1/txn".into(),
            key,
            "give the key back to a waiter",
        );
        call.body = Some(json_body(&body));
        call.timeout = timeout;
        self.call(call, &[]).await.map(|_| ())
    }

    /// `GET /v1/kv/<key>`, as a blocking query when `index` is given. Returns the entry (or
    /// `None` when the key does not exist) and `X-Consul-Index`.
    pub(crate) async fn kv_read(
        &self,
        key: &str,
        blocking: Option<(u64, Duration)>,
        timeout: Duration,
    ) -> Result<(Option<KvEntry>, u64)> {
        let (entries, index) = self.kv_query(key, key, false, blocking, timeout).await?;
        Ok((entries.into_iter().next(), index))
    }

    /// `GET /v1/kv/<path>` (with `?recurse` when `recurse`), as a blocking query when `index` is
    /// given: the entries (none on 404) and `X-Consul-Index`. `key` names the lock for errors.
    async fn kv_query(
        &self,
        key: &str,
        path: &str,
        recurse: bool,
        blocking: Option<(u64, Duration)>,
        timeout: Duration,
    ) -> Result<(Vec<KvEntry>, u64)> {
        const OP: &str = "read the key";
        let mut call = Call::new(
            Method::GET,
            format!("/v1/kv/{}", encode_path(path)),
            key,
            OP,
        );
        if recurse {
            call.query.push(("recurse", String::new()));
        }
        if let Some((index, wait)) = blocking {
            call.query.push(("index", index.to_string()));
            call.query.push(("wait", go_duration(wait)));
        }
        call.timeout = timeout;
        let reply = self.call(call, &[404]).await?;
        let index = reply.index.unwrap_or(0);
        if reply.status == 404 {
            return Ok((Vec::new(), index));
        }
        let entries: Vec<RawEntry> = serde_json::from_slice(&reply.body)
            .map_err(|e| unexpected(key, OP, reply.status, &e.to_string()))?;
        Ok((
            entries.into_iter().map(RawEntry::into_entry).collect(),
            index,
        ))
    }

    /// `GET /v1/kv/<prefix>?recurse`, as a blocking query when `index` is given: every entry
    /// whose key starts with `prefix`, and `X-Consul-Index`.
    pub(crate) async fn kv_read_tree(
        &self,
        key: &str,
        prefix: &str,
        blocking: Option<(u64, Duration)>,
        timeout: Duration,
    ) -> Result<(Vec<KvEntry>, u64)> {
        self.kv_query(key, prefix, true, blocking, timeout).await
    }

    /// `PUT /v1/kv/<entry>?acquire=<session>` with an empty value: `Ok(true)` when the session
    /// holds `entry` now.
    pub(crate) async fn kv_acquire(
        &self,
        key: &str,
        entry: &str,
        session: &str,
        timeout: Duration,
    ) -> Result<bool> {
        let mut call = Call::new(
            Method::PUT,
            format!("/v1/kv/{}", encode_path(entry)),
            key,
            "join the queue of waiters",
        );
        call.query.push(("acquire", session.to_owned()));
        call.body = Some(Vec::new());
        call.timeout = timeout;
        let reply = self.call(call, &[]).await?;
        Ok(reply.text() == "true")
    }

    /// Reads one key.
    ///
    /// # Errors
    ///
    /// [`Error::PermissionDenied`], [`Error::ConsulRefused`] or [`Error::Unreachable`], naming the key.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let guard = consul_lock_runtime::Lock::new("report").client(&client).acquire().await?;
    /// let entry = client.kv_get("locks/ephemeral/report").await?.expect("held");
    /// assert_eq!(entry.session.as_deref(), Some(guard.session_id()));
    /// assert_eq!(entry.modify_index, guard.fencing_token());
    /// guard.release().await?;
    /// assert!(client.kv_get("locks/ephemeral/report").await?.is_none());
    /// # Ok(()) }
    /// ```
    pub async fn kv_get(&self, key: &str) -> Result<Option<KvEntry>> {
        let client = self.clone();
        let key = key.to_owned();
        crate::background::run(async move {
            let timeout = client.request_timeout();
            client.kv_read(&key, None, timeout).await.map(|(e, _)| e)
        })
        .await?
    }

    /// Waits (a Consul blocking query) until the key changes past `index` or `wait` passes,
    /// and returns the entry and the new index. Start with index 0 to read at once.
    ///
    /// # Errors
    ///
    /// As [`kv_get`](Self::kv_get).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use std::time::Duration;
    /// let (entry, index) = client.kv_watch("config/x", 0, Duration::ZERO).await?;
    /// assert!(entry.is_none());
    /// // Nothing changes: the blocking query returns after its wait with the same index.
    /// let (_, same) = client.kv_watch("config/x", index, Duration::from_millis(50)).await?;
    /// assert_eq!(same, index);
    /// # Ok(()) }
    /// ```
    pub async fn kv_watch(
        &self,
        key: &str,
        index: u64,
        wait: Duration,
    ) -> Result<(Option<KvEntry>, u64)> {
        let client = self.clone();
        let key = key.to_owned();
        crate::background::run(async move {
            let timeout = client.request_timeout() + wait + wait / 16;
            let blocking = (index > 0).then_some((index, wait));
            client.kv_read(&key, blocking, timeout).await
        })
        .await?
    }

    /// Lists the keys under a prefix (`GET /v1/kv/<prefix>?keys`).
    ///
    /// # Errors
    ///
    /// As [`kv_get`](Self::kv_get).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let guard = consul_lock_runtime::Lock::new("jobs/a").client(&client).acquire().await?;
    /// let held = client.kv_keys("locks/ephemeral/jobs/").await?;
    /// assert!(held.contains(&"locks/ephemeral/jobs/a".to_owned()));
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn kv_keys(&self, prefix: &str) -> Result<Vec<String>> {
        let client = self.clone();
        let prefix = prefix.to_owned();
        crate::background::run(async move {
            const OP: &str = "list keys";
            let mut call = Call::new(
                Method::GET,
                format!("/v1/kv/{}", encode_path(&prefix)),
                &prefix,
                OP,
            );
            call.query.push(("keys", String::new()));
            call.timeout = client.request_timeout();
            let reply = client.call(call, &[404]).await?;
            if reply.status == 404 {
                return Ok(Vec::new());
            }
            serde_json::from_slice(&reply.body)
                .map_err(|e| unexpected(&prefix, OP, reply.status, &e.to_string()))
        })
        .await?
    }

    /// Lists every session of the datacenter (`GET /v1/session/list`).
    ///
    /// # Errors
    ///
    /// [`Error::PermissionDenied`], [`Error::ConsulRefused`] or [`Error::Unreachable`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let guard = consul_lock_runtime::Lock::new("jobs/b").client(&client).acquire().await?;
    /// let sessions = client.sessions().await?;
    /// assert!(sessions.iter().any(|s| s.id == guard.session_id() && s.behavior == "delete"));
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn sessions(&self) -> Result<Vec<SessionInfo>> {
        let client = self.clone();
        crate::background::run(async move {
            let timeout = client.request_timeout();
            client.session_list("", timeout).await
        })
        .await?
    }

    /// `GET /v1/session/list`; `key` names the lock the listing is for, in errors.
    pub(crate) async fn session_list(
        &self,
        key: &str,
        timeout: Duration,
    ) -> Result<Vec<SessionInfo>> {
        const OP: &str = "list sessions";
        let mut call = Call::new(Method::GET, "/v1/session/list".into(), key, OP);
        call.timeout = timeout;
        let reply = self.call(call, &[]).await?;
        serde_json::from_slice(&reply.body)
            .map_err(|e| unexpected(key, OP, reply.status, &e.to_string()))
    }

    /// Destroys a session (`PUT /v1/session/destroy/<id>`); keys it held with
    /// `Behavior: delete` are deleted. Destroying an unknown session succeeds.
    ///
    /// # Errors
    ///
    /// [`Error::PermissionDenied`], [`Error::ConsulRefused`] or [`Error::Unreachable`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let guard = consul_lock_runtime::Lock::new("jobs/c").client(&client).acquire().await?;
    /// // An operator ends the holder's session: the key is deleted with it.
    /// client.destroy_session(guard.session_id()).await?;
    /// assert!(client.kv_get(guard.key()).await?.is_none());
    /// # Ok(()) }
    /// ```
    pub async fn destroy_session(&self, id: &str) -> Result<()> {
        let client = self.clone();
        let id = id.to_owned();
        crate::background::run(async move {
            let timeout = client.request_timeout();
            client.session_destroy("", &id, timeout).await
        })
        .await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_go_reads_them() {
        assert_eq!(go_duration(Duration::from_secs(180)), "180s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(go_duration(Duration::from_micros(10)), "1ms");
    }
}
