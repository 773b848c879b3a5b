//! The bare minimum: the HTTP calls of a lock cycle made with a plain reqwest client, no
//! library. What the library is compared against, in two forms: three calls (a session per
//! cycle: create, lock, destroy) and two calls (one session created once and reused: take the
//! key, give it back), the fewest Raft writes a lock can cost. Also the plain KV write of the
//! write-ceiling row.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;

/// A plain async HTTP client that takes and releases a lock in three requests.
pub struct Bare {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    requests: AtomicU64,
    /// The 2-call cycle's session and when it was last created or renewed.
    session: Mutex<Option<(String, Instant)>>,
}

/// The 2-call cycle's session TTL; it is renewed (not a Raft write) at half of it.
const SESSION_TTL: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "ID")]
    id: String,
}

impl Bare {
    /// `base` is `scheme://host:port`; the token (`CONSUL_HTTP_TOKEN`) is sent when set.
    pub fn new(base: &str) -> Result<Bare, String> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .build()
            .map_err(|e| format!("cannot build the reqwest client: {e}"))?;
        let token = std::env::var("CONSUL_HTTP_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty());
        Ok(Bare {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
            requests: AtomicU64::new(0),
            session: Mutex::new(None),
        })
    }

    /// How many requests this client has sent.
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    async fn put(&self, path: &str, body: Option<String>) -> Result<bytes::Bytes, String> {
        let mut req = self.http.put(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.header("X-Consul-Token", token);
        }
        if let Some(body) = body {
            req = req.body(body);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = req.send().await.map_err(|e| format!("PUT {path}: {e}"))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| format!("PUT {path}: {e}"))?;
        if !status.is_success() {
            return Err(format!(
                "PUT {path}: HTTP {status}: {}",
                String::from_utf8_lossy(&body).trim()
            ));
        }
        Ok(body)
    }

    /// One lock cycle on `key`: create a session, lock the key in a transaction, destroy the
    /// session (which deletes the key). `value` is the raw value to store.
    pub async fn cycle(&self, key: &str, value: &[u8]) -> Result<(), String> {
        let id = self
            .create_session(&format!("consul-lock-bench: {key}"), "180s")
            .await?;
        let txn = serde_json::json!([{ "KV": {
            "Verb": "lock",
            "Key": key,
            "Value": base64::engine::general_purpose::STANDARD.encode(value),
            "Session": id,
        }}]);
        let locked = self.put("/v1/txn", Some(txn.to_string())).await;
        let destroyed = self.put(&format!("/v1/session/destroy/{id}"), None).await;
        locked.map_err(|e| format!("lock {key}: {e}"))?;
        destroyed?;
        Ok(())
    }

    /// `PUT /v1/session/create` with the library's settings (no lock-delay, `Behavior:
    /// delete`): the new session's id.
    async fn create_session(&self, name: &str, ttl: &str) -> Result<String, String> {
        let create = serde_json::json!({
            "Name": name,
            "TTL": ttl,
            "LockDelay": "0s",
            "Behavior": "delete",
        });
        let body = self
            .put("/v1/session/create", Some(create.to_string()))
            .await?;
        Ok(serde_json::from_slice::<Created>(&body)
            .map_err(|e| format!("session create: unexpected answer: {e}"))?
            .id)
    }

    /// The reused session: created on first use, renewed when half its TTL has passed.
    async fn session(&self) -> Result<String, String> {
        let current = self
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        match current {
            Some((id, at)) if at.elapsed() < SESSION_TTL / 2 => Ok(id),
            Some((id, _)) => {
                self.put(&format!("/v1/session/renew/{id}"), None)
                    .await
                    .map_err(|e| format!("session renew: {e}"))?;
                *self.session.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((id.clone(), Instant::now()));
                Ok(id)
            }
            None => {
                let ttl = format!("{}s", SESSION_TTL.as_secs());
                let id = self
                    .create_session("consul-lock-bench: bare minimum, 2 calls", &ttl)
                    .await?;
                *self.session.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((id.clone(), Instant::now()));
                Ok(id)
            }
        }
    }

    /// One lock cycle on `key` with the reused session: take the key (a `lock` transaction,
    /// as in the 3-call cycle), give it back (a transaction that deletes the key only while
    /// this session holds it: `check-session`, `delete`). Two requests, two Raft writes.
    pub async fn cycle_reused(&self, key: &str, value: &[u8]) -> Result<(), String> {
        let id = self.session().await?;
        let take = serde_json::json!([{ "KV": {
            "Verb": "lock",
            "Key": key,
            "Value": base64::engine::general_purpose::STANDARD.encode(value),
            "Session": id,
        }}]);
        self.put("/v1/txn", Some(take.to_string()))
            .await
            .map_err(|e| format!("lock {key}: {e}"))?;
        let give_back = serde_json::json!([
            { "KV": { "Verb": "check-session", "Key": key, "Session": id } },
            { "KV": { "Verb": "delete", "Key": key } },
        ]);
        self.put("/v1/txn", Some(give_back.to_string()))
            .await
            .map_err(|e| format!("give back {key}: {e}"))?;
        Ok(())
    }

    /// Destroys the reused session, if there is one.
    pub async fn end_session(&self) -> Result<(), String> {
        let current = self
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((id, _)) = current {
            self.put(&format!("/v1/session/destroy/{id}"), None).await?;
        }
        Ok(())
    }

    /// Deletes every key under `prefix` (`DELETE /v1/kv/<prefix>?recurse`).
    pub async fn delete_tree(&self, prefix: &str) -> Result<(), String> {
        let path = format!("/v1/kv/{prefix}?recurse");
        let mut req = self.http.delete(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.header("X-Consul-Token", token);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = req
            .send()
            .await
            .map_err(|e| format!("DELETE {path}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("DELETE {path}: HTTP {}", resp.status()));
        }
        Ok(())
    }

    /// One plain KV write (`PUT /v1/kv/<key>`): a Raft write and nothing else.
    pub async fn write(&self, key: &str, value: &[u8]) -> Result<(), String> {
        let path = format!("/v1/kv/{key}");
        let mut req = self.http.put(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            req = req.header("X-Consul-Token", token);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = req
            .body(value.to_vec())
            .send()
            .await
            .map_err(|e| format!("PUT {path}: {e}"))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| format!("PUT {path}: {e}"))?;
        if !status.is_success() || String::from_utf8_lossy(&body).trim() != "true" {
            return Err(format!(
                "PUT {path}: HTTP {status}: {}",
                String::from_utf8_lossy(&body).trim()
            ));
        }
        Ok(())
    }
}
