//! Sessions: create (`LockDelay: 0s`, `Behavior: delete`, no health checks), renew, destroy,
//! list, and a consistent read of one session (the confirmation of a node-bound lease).

use std::time::Duration;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use super::http::{go_duration, unexpected, Call};
use crate::key::encode_path;
use crate::{Client, Result};

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
    /// The node checks that end the session when one goes critical (Consul's default is the
    /// node's `serfHealth`; this library's sessions have none, unless the client was built
    /// with [`danger_node_health_check`](crate::ClientBuilder::danger_node_health_check)).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub node_checks: Vec<String>,
    /// The IDs of the service checks that end the session.
    #[serde(default, deserialize_with = "service_check_ids")]
    pub service_checks: Vec<String>,
}

/// Consul prints an absent list as `null`.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// `ServiceChecks` is `null` or a list of `{"ID": …, "Namespace": …}`.
fn service_check_ids<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    struct ServiceCheck {
        #[serde(rename = "ID", default)]
        id: String,
    }
    let checks = Option::<Vec<ServiceCheck>>::deserialize(d)?.unwrap_or_default();
    Ok(checks.into_iter().map(|c| c.id).collect())
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
    /// The deprecated form of `NodeChecks`, sent the same, so that Consul versions before
    /// 1.7 (which know only `Checks`) make the same session.
    checks: &'a [&'a str],
    node_checks: &'a [&'a str],
    service_checks: &'a [&'a str],
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreatedSession {
    #[serde(rename = "ID")]
    id: String,
}

impl Client {
    /// `PUT /v1/session/create` with `LockDelay: 0s` (Consul's default is 15 s, and Go's
    /// client cannot send 0), `Behavior: delete` (the key is gone after release) and no health
    /// checks (Consul's default would tie the session to the node's `serfHealth`, which can end
    /// it before its TTL), unless the client asks for the node's health check.
    pub(crate) async fn session_create(
        &self,
        key: &str,
        name: &str,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<String> {
        let body = SessionCreateBody {
            name,
            ttl: &go_duration(ttl),
            lock_delay: "0s",
            behavior: "delete",
            checks: self.session_node_checks(),
            node_checks: self.session_node_checks(),
            service_checks: &[],
        };
        let path = "/v1/session/create".into();
        let call = Call::new(Method::PUT, path, key, "create a session", timeout).with_json(&body);
        let reply = call.send(self, &[]).await?;
        serde_json::from_slice::<CreatedSession>(&reply.body)
            .map(|s| s.id)
            .map_err(|e| unexpected(key, "create a session", reply.status, &e.to_string()))
    }

    /// `PUT /v1/session/destroy/<id>`; with `Behavior: delete` this deletes the held key.
    pub(crate) async fn session_destroy(
        &self,
        key: &str,
        id: &str,
        timeout: Duration,
    ) -> Result<()> {
        let path = format!("/v1/session/destroy/{}", encode_path(id));
        let op = "destroy the session (release)";
        let call = Call::new(Method::PUT, path, key, op, timeout);
        call.send(self, &[]).await.map(|_| ())
    }

    /// `PUT /v1/session/renew/<id>`: `Ok(false)` when Consul no longer knows the session.
    pub(crate) async fn session_renew(
        &self,
        key: &str,
        id: &str,
        timeout: Duration,
    ) -> Result<bool> {
        let path = format!("/v1/session/renew/{}", encode_path(id));
        let call = Call::new(Method::PUT, path, key, "renew the session", timeout);
        let reply = call.send(self, &[404]).await?;
        Ok(reply.status != 404)
    }

    /// `GET /v1/session/info/<id>`: the session, or `None` when Consul does not know it (any
    /// more). `key` names the lock (or election) the read is for, in errors.
    pub(crate) async fn session_info(
        &self,
        key: &str,
        id: &str,
        timeout: Duration,
    ) -> Result<Option<SessionInfo>> {
        let path = format!("/v1/session/info/{}", encode_path(id));
        let call = Call::new(Method::GET, path, key, "read a session", timeout);
        let reply = call.send(self, &[]).await?;
        // Consul answers 200 with `null` or `[]` for an unknown session.
        let sessions: Option<Vec<SessionInfo>> = serde_json::from_slice(&reply.body)
            .map_err(|e| unexpected(key, "read a session", reply.status, &e.to_string()))?;
        Ok(sessions.and_then(|s| s.into_iter().next()))
    }

    /// `GET /v1/session/info/<id>?consistent`: `Ok(true)` when the session exists, as Consul's
    /// leader confirms with a quorum at the time of the read (so a deposed leader that does
    /// not know it yet cannot answer), `Ok(false)` when it is gone.
    pub(crate) async fn session_confirm(
        &self,
        key: &str,
        id: &str,
        timeout: Duration,
    ) -> Result<bool> {
        let op = "confirm the session";
        let path = format!("/v1/session/info/{}", encode_path(id));
        let call =
            Call::new(Method::GET, path, key, op, timeout).with_query("consistent", String::new());
        let reply = call.send(self, &[]).await?;
        let sessions: Vec<SessionInfo> = serde_json::from_slice(&reply.body)
            .map_err(|e| unexpected(key, op, reply.status, &e.to_string()))?;
        Ok(sessions.iter().any(|s| s.id.eq_ignore_ascii_case(id)))
    }

    /// `GET /v1/session/list`; `key` names the lock the listing is for, in errors.
    pub(crate) async fn session_list(
        &self,
        key: &str,
        timeout: Duration,
    ) -> Result<Vec<SessionInfo>> {
        let path = "/v1/session/list".into();
        let call = Call::new(Method::GET, path, key, "list sessions", timeout);
        self.decode_sessions(key, call).await
    }

    /// `GET /v1/session/list?consistent`: as [`session_list`](Self::session_list), answered
    /// by a leader that has applied everything its predecessors committed.
    pub(crate) async fn session_list_consistent(
        &self,
        key: &str,
        timeout: Duration,
    ) -> Result<Vec<SessionInfo>> {
        let path = "/v1/session/list".into();
        let call = Call::new(Method::GET, path, key, "list sessions", timeout)
            .with_query("consistent", String::new());
        self.decode_sessions(key, call).await
    }

    async fn decode_sessions(&self, key: &str, call: Call<'_>) -> Result<Vec<SessionInfo>> {
        let reply = call.send(self, &[]).await?;
        serde_json::from_slice(&reply.body)
            .map_err(|e| unexpected(key, "list sessions", reply.status, &e.to_string()))
    }
}
