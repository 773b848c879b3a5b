//! A request as the endpoints see it ([`Req`]) with its query options ([`QueryOpts`]), and
//! the body limits with the 413 texts Consul answers when a body passes them. A leaf: the reading of requests (`request`), the router
//! and every endpoint use it, and it uses none of them.

use std::time::Duration;

use bytes::Bytes;
use hyper::header::HeaderMap;
use hyper::Method;

use crate::go;
use crate::resp::Resp;

/// Consul's `kv_max_value_size` and `txn_max_req_len` defaults.
pub(crate) const MAX_BODY: usize = 512 * 1024;

/// A parsed request.
pub(crate) struct Req {
    pub method: Method,
    /// The percent-decoded path.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub(crate) fn has(&self, k: &str) -> bool {
        self.query.iter().any(|(n, _)| n == k)
    }
    /// The first value of a query parameter, as Go's `Values.Get`.
    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
    /// The ACL token: `?token=`, then `X-Consul-Token`, then `Authorization: Bearer`.
    pub(crate) fn token(&self) -> String {
        if let Some(t) = self.get("token").filter(|t| !t.is_empty()) {
            return t.to_string();
        }
        if let Some(t) = self
            .headers
            .get("x-consul-token")
            .and_then(|v| v.to_str().ok())
        {
            if !t.is_empty() {
                return t.to_string();
            }
        }
        self.headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string())
            .unwrap_or_default()
    }
    /// Go's `url.Values.Encode()` of the whole query (sorted by key).
    pub(crate) fn encoded_query(&self) -> String {
        go::url::encode_query(&self.query)
    }
}

/// `?index`, `?wait`, `?stale`, `?consistent`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QueryOpts {
    pub min_index: u64,
    pub wait: Duration,
    pub stale: bool,
}

const DEFAULT_WAIT: Duration = Duration::from_secs(300);
const MAX_WAIT: Duration = Duration::from_secs(600);

pub(crate) fn query_opts(req: &Req) -> Result<QueryOpts, Resp> {
    // Consul checks the consistency flags before `wait` and `index`.
    let stale = req.has("stale");
    if stale && req.has("consistent") {
        return Err(Resp::text(
            400,
            "Cannot specify ?stale with ?consistent, conflicting semantics.",
        ));
    }
    let mut wait = Duration::ZERO;
    if let Some(w) = req.get("wait").filter(|w| !w.is_empty()) {
        let ns = go::duration::parse(w).map_err(|_| Resp::text(400, "Invalid wait time"))?;
        wait = Duration::from_nanos(u64::try_from(ns).unwrap_or(0));
    }
    let mut min_index = 0;
    if let Some(i) = req.get("index").filter(|i| !i.is_empty()) {
        min_index = i
            .parse::<u64>()
            .map_err(|_| Resp::text(400, "Invalid index"))?;
    }
    if wait > MAX_WAIT {
        wait = MAX_WAIT;
    } else if wait.is_zero() {
        wait = DEFAULT_WAIT;
    }
    Ok(QueryOpts {
        min_index,
        wait,
        stale,
    })
}

/// Consul's 413 for a body of `n` bytes sent to `path`: each endpoint names its own limit.
pub(crate) fn too_large(path: &str, n: usize) -> Resp {
    let option = if path == "/v1/txn" {
        Some("txn_max_req_len")
    } else if path.starts_with("/v1/kv/") {
        Some("kv_max_value_size")
    } else {
        None
    };
    let text = match option {
        Some(option) => format!(
            "Request body({n} bytes) too large, max size: {MAX_BODY} bytes. See https://www.consul.io/docs/agent/options.html#{option}."
        ),
        None => format!("Request body({n} bytes) too large, max size: {MAX_BODY} bytes."),
    };
    Resp::text(413, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_endpoint_names_its_limit() {
        let text = |path| String::from_utf8(too_large(path, 7).body).unwrap();
        assert!(text("/v1/txn").ends_with("#txn_max_req_len."));
        assert!(text("/v1/kv/a").ends_with("#kv_max_value_size."));
        assert_eq!(
            text("/v1/session/create"),
            format!("Request body(7 bytes) too large, max size: {MAX_BODY} bytes.")
        );
    }
}
