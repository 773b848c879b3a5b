//! HTTP plumbing shared by the endpoints: request parsing the way Go's `net/http` and
//! Consul's agent do it (decoded and cleaned paths, query values, tokens), responses with
//! Consul's headers and formatting, query options and blocking queries, and the router.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::HeaderMap;
use hyper::Method;

use crate::acl::{self, Authz};
use crate::json::J;
use crate::shared::Shared;
use crate::store::Store;

/// The node ID the server reports for its node (`/v1/agent/self`, catalog reads in txns).
pub(crate) const NODE_ID: &str = "7e1f4b2c-0000-4000-8000-00000000c0de";

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
        let mut pairs: Vec<&(String, String)> = self.query.iter().collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs
            .iter()
            .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// A response being built.
#[derive(Debug)]
pub(crate) struct Resp {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Whether Consul's handler wrapper ran (it adds `X-Consul-Default-Acl-Policy`).
    pub consul_headers: bool,
    /// Whether the request applied a write (for `apply_then_fail_next`).
    pub applied: bool,
}

pub(crate) const TEXT: &str = "text/plain; charset=utf-8";

impl Resp {
    pub(crate) fn json(status: u16, v: &J) -> Resp {
        Resp {
            status,
            headers: vec![("Content-Type", "application/json".into())],
            body: v.to_go_pretty().into_bytes(),
            consul_headers: true,
            applied: false,
        }
    }
    pub(crate) fn text(status: u16, msg: impl Into<String>) -> Resp {
        Resp {
            status,
            headers: vec![("Content-Type", TEXT.into())],
            body: msg.into().into_bytes(),
            consul_headers: true,
            applied: false,
        }
    }
    pub(crate) fn empty(status: u16) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            consul_headers: true,
            applied: false,
        }
    }
    /// Marks the answer of a request that applied a write.
    pub(crate) fn applied(mut self) -> Resp {
        self.applied = true;
        self
    }
    pub(crate) fn header(mut self, name: &'static str, v: impl Into<String>) -> Resp {
        self.headers.push((name, v.into()));
        self
    }
    /// `X-Consul-Index`, `X-Consul-KnownLeader`, `X-Consul-LastContact`.
    pub(crate) fn meta(self, index: Option<u64>, m: Meta) -> Resp {
        let r = match index {
            Some(i) => self.header("X-Consul-Index", i.max(1).to_string()),
            None => self,
        };
        r.header(
            "X-Consul-KnownLeader",
            if m.known_leader { "true" } else { "false" },
        )
        .header("X-Consul-LastContact", m.last_contact_ms.to_string())
        .header("X-Consul-Query-Backend", "blocking-query")
    }
}

/// Query metadata of a read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Meta {
    pub known_leader: bool,
    pub last_contact_ms: u64,
}

pub(crate) fn bool_resp(b: bool) -> Resp {
    Resp::json(200, &J::Bool(b))
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
        let ns =
            crate::godur::parse_go_duration(w).map_err(|_| Resp::text(400, "Invalid wait time"))?;
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

impl Shared {
    /// Holds a request while there is no leader, up to `leaderless_hold`.
    pub(crate) async fn wait_leader(&self) -> Result<(), Resp> {
        let deadline = Instant::now() + self.config.leaderless_hold;
        let mut rx = self.faults.leader.subscribe();
        loop {
            let st = *rx.borrow_and_update();
            let now = Instant::now();
            if st.in_election(now) {
                // A client agent's RPC to the old leader fails at once during an election.
                return Err(Resp::text(500, self.faults.election_error()));
            }
            if st.has_leader(now) {
                return Ok(());
            }
            if now >= deadline {
                return Err(Resp::text(500, "No cluster leader"));
            }
            let wake = st.until.map_or(deadline, |u| u.min(deadline));
            tokio::select! {
                r = rx.changed() => { if r.is_err() { return Err(Resp::text(500, "No cluster leader")); } }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    /// Leader check for a read: stale reads answer at once, others are held.
    pub(crate) async fn read_meta(&self, qo: &QueryOpts) -> Result<Meta, Resp> {
        let st = self.faults.leader_state();
        let now = Instant::now();
        if st.has_leader(now) {
            return Ok(Meta {
                known_leader: true,
                last_contact_ms: 0,
            });
        }
        if qo.stale {
            let since = st
                .since
                .map_or(0, |s| now.duration_since(s).as_millis() as u64);
            return Ok(Meta {
                known_leader: false,
                last_contact_ms: since,
            });
        }
        self.wait_leader().await?;
        Ok(Meta {
            known_leader: true,
            last_contact_ms: 0,
        })
    }

    /// Runs a read, blocking while its index is not above `?index` (up to `?wait` plus
    /// Consul's jitter of up to wait/16). Wakes on every write, never polls.
    pub(crate) async fn blocking<T>(
        &self,
        qo: &QueryOpts,
        f: impl Fn(&Store) -> (u64, T),
    ) -> (u64, T) {
        let mut rx = self.index_tx.subscribe();
        let jitter_ns = (qo.wait.as_nanos() / 16) as u64;
        let jitter = Duration::from_nanos(if jitter_ns > 0 {
            fastrand::u64(0..jitter_ns)
        } else {
            0
        });
        let deadline = Instant::now() + qo.wait + jitter;
        loop {
            rx.borrow_and_update();
            let (idx, out) = {
                let st = self.store();
                f(&st)
            };
            if qo.min_index == 0 || idx > qo.min_index || Instant::now() >= deadline {
                return (idx, out);
            }
            tokio::select! {
                r = rx.changed() => { if r.is_err() { return (idx, out); } }
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
        }
    }

    /// What every write needs before it runs: a leader (held while there is none, as
    /// Consul does) and the caller's ACL token resolved.
    pub(crate) async fn write_access(&self, req: &Req) -> Result<Authz, Resp> {
        self.wait_leader().await?;
        self.authz(req)
    }

    pub(crate) fn authz(&self, req: &Req) -> Result<Authz, Resp> {
        acl::resolve(self.config.acl.as_ref(), &req.token()).map_err(|m| Resp::text(403, m))
    }

    /// `?dc=` naming another datacenter.
    pub(crate) fn check_dc(&self, req: &Req) -> Result<(), Resp> {
        match req.get("dc") {
            Some(dc) if !dc.is_empty() && dc != self.config.datacenter => {
                Err(Resp::text(500, "No path to datacenter"))
            }
            _ => Ok(()),
        }
    }
}

pub(crate) fn denied() -> Resp {
    Resp::text(403, acl::PERMISSION_DENIED)
}

pub(crate) fn method_not_allowed(method: &Method, allow: &[&str]) -> Resp {
    let mut all = vec!["OPTIONS"];
    all.extend_from_slice(allow);
    if method == Method::OPTIONS {
        return Resp::empty(200).header("Allow", all.join(","));
    }
    Resp::text(405, format!("method {method} not allowed")).header("Allow", all.join(","))
}

/// The subtree patterns (`/v1/kv/`, `/v1/session/info/`, ...) whose bare form Go's
/// `ServeMux` redirects (301) to the form with a trailing slash.
const SUBTREES: &[&str] = &[
    "/v1/kv",
    "/v1/session/destroy",
    "/v1/session/renew",
    "/v1/session/info",
    "/v1/session/node",
];

/// Whether Go's `ServeMux` redirects this cleaned path to `path + "/"`.
pub(crate) fn wants_trailing_slash(path: &str) -> bool {
    SUBTREES.contains(&path)
}

/// Go's `ServeMux` answer to a path no pattern matches: 404 with an empty body and none of
/// Consul's headers.
pub(crate) fn not_found() -> Resp {
    let mut r = Resp::empty(404);
    r.consul_headers = false;
    r
}

/// Routes a parsed request to its endpoint.
pub(crate) async fn route(shared: &Shared, req: Req) -> Resp {
    let path = req.path.clone();
    if let Some(key) = path.strip_prefix("/v1/kv/") {
        return crate::kv::handle(shared, &req, key).await;
    }
    if let Some(rest) = path.strip_prefix("/v1/session/") {
        return crate::session::handle(shared, &req, rest).await;
    }
    match path.as_str() {
        "/v1/txn" => crate::txn::handle(shared, &req).await,
        "/v1/status/leader" | "/v1/status/peers" | "/v1/agent/self" => status(shared, &req, &path),
        _ => not_implemented(&path),
    }
}

fn status(shared: &Shared, req: &Req, path: &str) -> Resp {
    if req.method != Method::GET {
        return method_not_allowed(&req.method, &["GET"]);
    }
    let ip = shared.config.listen.ip();
    let leader_addr = format!("{ip}:8300");
    match path {
        "/v1/status/leader" => {
            let v = if shared.has_leader() {
                leader_addr
            } else {
                String::new()
            };
            Resp::json(200, &J::Str(v))
        }
        "/v1/status/peers" => Resp::json(200, &J::Arr(vec![J::Str(leader_addr)])),
        _ => {
            let c = &shared.config;
            Resp::json(
                200,
                &J::Obj(vec![
                    (
                        "Config",
                        J::Obj(vec![
                            ("Datacenter", J::str(&c.datacenter)),
                            ("NodeName", J::str(&c.node_name)),
                            ("NodeID", J::str(NODE_ID)),
                            ("Revision", J::str("consul-lock-testkit")),
                            ("Server", J::Bool(true)),
                            ("Version", J::str("1.10.12")),
                        ]),
                    ),
                    ("Member", J::Obj(vec![("Name", J::str(&c.node_name))])),
                    ("Meta", J::Obj(vec![])),
                ]),
            )
        }
    }
}

fn not_implemented(path: &str) -> Resp {
    const KNOWN: &[&str] = &[
        "/v1/acl/",
        "/v1/agent/",
        "/v1/catalog/",
        "/v1/health/",
        "/v1/event/",
        "/v1/coordinate/",
        "/v1/operator/",
        "/v1/query",
        "/v1/snapshot",
        "/v1/connect/",
        "/v1/config",
        "/v1/internal/",
        "/v1/namespace",
        "/v1/discovery-chain/",
    ];
    if KNOWN.iter().any(|p| path.starts_with(p)) {
        return Resp::text(
            501,
            format!(
                "consul-lock-testkit does not implement {path} (it serves /v1/kv, /v1/session, /v1/txn, /v1/status/leader, /v1/status/peers and /v1/agent/self)"
            ),
        );
    }
    not_found()
}

/// Go's `url.QueryEscape`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's path escaping for a URL built from a decoded path.
pub(crate) fn path_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'$'
            | b'&'
            | b'+'
            | b','
            | b'/'
            | b':'
            | b';'
            | b'='
            | b'@' => out.push(b as char),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Decodes `%XX` escapes strictly, as Go's URL parser (an invalid escape is an error).
pub(crate) fn percent_decode_strict(s: &str, plus_is_space: bool) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(h).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Go's `url.ParseQuery`, skipping pairs that do not decode.
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in q.split('&') {
        if part.is_empty() || part.contains(';') {
            continue;
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let (Some(k), Some(v)) = (
            percent_decode_strict(k, true),
            percent_decode_strict(v, true),
        ) else {
            continue;
        };
        out.push((
            String::from_utf8_lossy(&k).into_owned(),
            String::from_utf8_lossy(&v).into_owned(),
        ));
    }
    out
}

/// Go's `path.Clean` plus `net/http`'s rule of keeping a trailing slash.
pub(crate) fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return "/".into();
    }
    let rooted = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    };
    let mut stack: Vec<&str> = Vec::new();
    for seg in rooted.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                stack.pop();
            }
            s => stack.push(s),
        }
    }
    let mut np = format!("/{}", stack.join("/"));
    if rooted.ends_with('/') && np != "/" {
        np.push('/');
    }
    np
}

/// Go's `html.EscapeString` as used by `http.Redirect`.
pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(clean_path("/v1/kv/a//b"), "/v1/kv/a/b");
        assert_eq!(clean_path("/v1/kv/a/../b/"), "/v1/kv/b/");
        assert_eq!(clean_path("/v1/kv/x/"), "/v1/kv/x/");
        assert_eq!(percent_decode_strict("a%2Fb", false).unwrap(), b"a/b");
        assert!(percent_decode_strict("a%zz", false).is_none());
        assert_eq!(
            parse_query("recurse&separator=/&x=a+b"),
            vec![
                ("recurse".to_string(), String::new()),
                ("separator".into(), "/".into()),
                ("x".into(), "a b".into())
            ]
        );
    }
}
