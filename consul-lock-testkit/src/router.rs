//! Routing: which endpoint serves a path, the subtree patterns Go's `ServeMux` redirects to
//! their trailing-slash form, and the 501 for Consul endpoints the test server leaves out.

use crate::req::Req;
use crate::resp::{not_found, Resp};
use crate::shared::Shared;

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

/// Routes a parsed request to its endpoint.
pub(crate) async fn route(shared: &Shared, req: Req) -> Resp {
    let path = req.path.clone();
    let answer = if let Some(key) = path.strip_prefix("/v1/kv/") {
        crate::kv::handle(shared, &req, key).await
    } else if let Some(rest) = path.strip_prefix("/v1/session/") {
        crate::session::handle(shared, &req, rest).await
    } else {
        match path.as_str() {
            "/v1/txn" => crate::txn::handle(shared, &req).await,
            "/v1/status/leader" | "/v1/status/peers" | "/v1/agent/self" => {
                crate::status::handle(shared, &req, &path)
            }
            _ => Ok(not_implemented(&path)),
        }
    };
    answer.unwrap_or_else(|early| early)
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
