//! The bare minimum: the three HTTP calls of a lock cycle made with a plain reqwest client,
//! no library. What the library is compared against.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use serde::Deserialize;

/// A plain async HTTP client that takes and releases a lock in three requests.
pub struct Bare {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    requests: AtomicU64,
}

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
        let create = serde_json::json!({
            "Name": format!("consul-lock-bench: {key}"),
            "TTL": "180s",
            "LockDelay": "0s",
            "Behavior": "delete",
        });
        let body = self
            .put("/v1/session/create", Some(create.to_string()))
            .await?;
        let id = serde_json::from_slice::<Created>(&body)
            .map_err(|e| format!("session create: unexpected answer: {e}"))?
            .id;
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
}
