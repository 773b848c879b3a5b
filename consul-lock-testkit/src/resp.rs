//! Responses as Consul's agent writes them: status, headers (its query metadata among them)
//! and body; the answers every endpoint shares (403, 405, Go's `ServeMux` 404).

use hyper::Method;
use serde::Serialize;

use crate::acl;
use crate::go;

/// What a handler returns: `Err` is an early answer (a 4xx or 5xx found before the work),
/// so that handlers can use `?`; both sides are sent the same way.
pub(crate) type Answer = Result<Resp, Resp>;

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
    /// `v` printed as Consul prints JSON (Go's indentation and escapes).
    pub(crate) fn json<T: Serialize + ?Sized>(status: u16, v: &T) -> Resp {
        match go::json::to_go_pretty(v) {
            Ok(body) => Resp {
                status,
                headers: vec![("Content-Type", "application/json".into())],
                body,
                consul_headers: true,
                applied: false,
            },
            Err(e) => Resp::text(
                500,
                format!("consul-lock-testkit could not encode its answer: {e}"),
            ),
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
    /// Marks an answer Go's `net/http` gives before Consul's handler wrapper runs (so none
    /// of Consul's headers).
    pub(crate) fn bare(mut self) -> Resp {
        self.consul_headers = false;
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
    Resp::json(200, &b)
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

/// Go's `ServeMux` answer to a path no pattern matches: 404 with an empty body and none of
/// Consul's headers.
pub(crate) fn not_found() -> Resp {
    Resp::empty(404).bare()
}
