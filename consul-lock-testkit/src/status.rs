//! `/v1/status/leader`, `/v1/status/peers` and `/v1/agent/self`.

use hyper::Method;

use crate::go::json::J;
use crate::request::Req;
use crate::resp::{method_not_allowed, Answer, Resp};
use crate::shared::Shared;

/// The node ID the server reports for its node (`/v1/agent/self`, catalog reads in txns).
pub(crate) const NODE_ID: &str = "7e1f4b2c-0000-4000-8000-00000000c0de";

pub(crate) fn handle(shared: &Shared, req: &Req, path: &str) -> Answer {
    if req.method != Method::GET {
        return Err(method_not_allowed(&req.method, &["GET"]));
    }
    let ip = shared.config.listen.ip();
    let leader_addr = format!("{ip}:8300");
    Ok(match path {
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
    })
}
