//! The request plumbing: every request to Consul is a [`Call`], sent by [`Call::send`], which
//! adds the token, datacenter and namespace, bounds the request by a timeout, counts it, and
//! turns statuses into [`Error`]s that name the key and the operation.

use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::Method;
use serde::Serialize;

use crate::error::DisplayDuration;
use crate::{Client, Error, RequestFailure, Result};

/// One request to Consul, built by its constructor and the `with_*` methods, then sent.
pub(crate) struct Call<'a> {
    method: Method,
    /// Path after the base URL, already percent-encoded (`/v1/kv/...`).
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    /// Upper bound for the whole request.
    timeout: Duration,
    /// The full key the request is about, for errors.
    key: &'a str,
    /// What the request does, for errors: "create a session", "lock the key", …
    operation: &'static str,
}

impl<'a> Call<'a> {
    /// A request about `key` that does `operation`, bounded by `timeout`.
    pub(crate) fn new(
        method: Method,
        path: String,
        key: &'a str,
        operation: &'static str,
        timeout: Duration,
    ) -> Self {
        Call {
            method,
            path,
            query: Vec::new(),
            body: None,
            timeout,
            key,
            operation,
        }
    }

    /// Adds a query parameter (an empty value sends the bare flag: `?recurse`).
    pub(crate) fn with_query(mut self, name: &'static str, value: String) -> Self {
        self.query.push((name, value));
        self
    }

    /// Sets the body.
    pub(crate) fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = Some(body);
        self
    }

    /// Sets a JSON body. These bodies are plain structs of strings, which always serialize.
    pub(crate) fn with_json(self, body: &impl Serialize) -> Self {
        self.with_body(serde_json::to_vec(body).unwrap_or_default())
    }

    /// Sends the request. Statuses in `accept` (and 2xx) come back as `Ok`; any other status
    /// becomes [`Error::PermissionDenied`] (403) or [`Error::ConsulRefused`]; transport
    /// failures and timeouts become [`Error::Unreachable`], with a [`RequestFailure`] cause.
    pub(crate) async fn send(self, client: &Client, accept: &[u16]) -> Result<Reply> {
        let inner = &client.inner;
        let mut url = String::with_capacity(inner.base_url.len() + self.path.len());
        url.push_str(&inner.base_url);
        url.push_str(&self.path);
        let mut req = client
            .http()
            .request(self.method, url)
            .timeout(self.timeout);
        let mut query = self.query;
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
        if let Some((user, password)) = &inner.basic_auth {
            req = req.basic_auth(user, Some(password.expose()));
        }
        if let Some(body) = self.body {
            req = req.body(body);
        }
        inner.requests_sent.fetch_add(1, Ordering::Relaxed);
        let (key, operation, timeout) = (self.key, self.operation, self.timeout);
        // A bound shorter than the client's request timeout comes from a deadline: the
        // protocol cuts each request of an acquire to the time left, a renewal to the lease's
        // end, a release to its give-up time. Running out of it is that deadline, not a
        // Consul that does not answer.
        let cut_by_deadline = timeout < client.request_timeout();
        let unreachable = |e: reqwest::Error| {
            let (cause, reason) = if e.is_timeout() && cut_by_deadline {
                (
                    RequestFailure::DeadlineReached,
                    format!(
                        "no answer within {}, the time left before the deadline",
                        DisplayDuration(timeout)
                    ),
                )
            } else if e.is_timeout() {
                (
                    RequestFailure::NoAnswer,
                    format!(
                        "no answer within {} (the request timeout)",
                        DisplayDuration(timeout)
                    ),
                )
            } else if e.is_connect() {
                (
                    RequestFailure::NotConnected,
                    format!("could not connect: {}", error_chain(&e)),
                )
            } else {
                (RequestFailure::Broken, error_chain(&e))
            };
            Error::Unreachable {
                key: key.to_owned(),
                operation,
                address: inner.base_url.clone(),
                cause,
                reason,
            }
        };
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let index = resp
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = resp.bytes().await.map_err(unreachable)?.to_vec();
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
                key: key.to_owned(),
                operation,
                message,
            })
        } else {
            Err(Error::ConsulRefused {
                key: key.to_owned(),
                operation,
                status,
                message,
            })
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

/// The error for an answer that is not what Consul sends.
pub(crate) fn unexpected(key: &str, operation: &'static str, status: u16, what: &str) -> Error {
    Error::ConsulRefused {
        key: key.to_owned(),
        operation,
        status,
        message: format!("unexpected answer ({what}); is this address a Consul agent?"),
    }
}

/// Formats a duration as Consul's `time.ParseDuration` reads it.
pub(crate) fn go_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis().max(1))
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
