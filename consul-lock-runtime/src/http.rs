//! HTTP plumbing: every request to Consul goes through [`Client::call`], which adds the token,
//! datacenter and namespace, bounds the request by a timeout, counts it, and turns statuses
//! into [`Error`]s that name the key and the operation.

use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::Method;

use crate::error::{DisplayDuration, NOT_CONNECTED, NO_ANSWER};
use crate::{Client, Error, Result};

/// One request to Consul.
pub(crate) struct Call<'a> {
    pub method: Method,
    /// Path after the base URL, already percent-encoded (`/v1/kv/...`).
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Option<Vec<u8>>,
    /// Upper bound for the whole request.
    pub timeout: Duration,
    /// The full key the request is about, for errors.
    pub key: &'a str,
    /// What the request does, for errors: "create a session", "lock the key", …
    pub operation: &'static str,
}

impl<'a> Call<'a> {
    pub(crate) fn new(method: Method, path: String, key: &'a str, operation: &'static str) -> Self {
        Call {
            method,
            path,
            query: Vec::new(),
            body: None,
            timeout: crate::config::DEFAULT_REQUEST_TIMEOUT,
            key,
            operation,
        }
    }
}

/// What Consul answered.
pub(crate) struct Reply {
    pub status: u16,
    /// `X-Consul-Index`, when sent.
    pub index: Option<u64>,
    pub body: Vec<u8>,
}

impl Reply {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).trim().to_owned()
    }
}

impl Client {
    /// Sends one request. Statuses in `accept` (and 2xx) come back as `Ok`; any other status
    /// becomes [`Error::PermissionDenied`] (403) or [`Error::ConsulRefused`]; transport
    /// failures and timeouts become [`Error::Unreachable`].
    pub(crate) async fn call(&self, call: Call<'_>, accept: &[u16]) -> Result<Reply> {
        let inner = &self.inner;
        let mut url = String::with_capacity(inner.base_url.len() + call.path.len());
        url.push_str(&inner.base_url);
        url.push_str(&call.path);
        let mut req = self.http().request(call.method, url).timeout(call.timeout);
        let mut query = call.query;
        if let Some(dc) = &inner.datacenter {
            query.push(("dc", dc.clone()));
        }
        if let Some(ns) = &inner.namespace {
            query.push(("ns", ns.clone()));
        }
        if !query.is_empty() {
            req = req.query(&query);
        }
        if let Some(token) = &inner.token {
            req = req.header("X-Consul-Token", token.expose());
        }
        if let Some(body) = call.body {
            req = req.body(body);
        }
        inner.requests_sent.fetch_add(1, Ordering::Relaxed);
        let unreachable = |reason: String| Error::Unreachable {
            key: call.key.to_owned(),
            operation: call.operation,
            address: inner.base_url.clone(),
            reason,
        };
        let describe = |e: reqwest::Error| {
            if e.is_timeout() {
                format!("{NO_ANSWER} {}", DisplayDuration(call.timeout))
            } else if e.is_connect() {
                format!("{NOT_CONNECTED}: {}", error_chain(&e))
            } else {
                error_chain(&e)
            }
        };
        let resp = req.send().await.map_err(|e| unreachable(describe(e)))?;
        let status = resp.status().as_u16();
        let index = resp
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = resp
            .bytes()
            .await
            .map_err(|e| unreachable(describe(e)))?
            .to_vec();
        let reply = Reply {
            status,
            index,
            body,
        };
        if (200..300).contains(&status) || accept.contains(&status) {
            return Ok(reply);
        }
        let message = reply.text();
        if status == 403 {
            Err(Error::PermissionDenied {
                key: call.key.to_owned(),
                operation: call.operation,
                message,
            })
        } else {
            Err(Error::ConsulRefused {
                key: call.key.to_owned(),
                operation: call.operation,
                status,
                message,
            })
        }
    }
}

/// An error and its sources on one line.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
