//! `/v1/status/leader`, `/v1/status/peers` and `/v1/agent/self`.

use hyper::Method;
use serde::Serialize;

use crate::acl::Need;
use crate::config::AgentRole;
use crate::request::Req;
use crate::resp::{denied, method_not_allowed, Answer, Resp};
use crate::shared::Shared;
use crate::wire::Empty;

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
            Resp::json(200, &v)
        }
        "/v1/status/peers" => {
            // The other two servers of a cluster stand on the next loopback addresses.
            let mut peers = vec![leader_addr];
            if shared.config.role != AgentRole::DevAgent {
                peers.extend((2..=3).map(|i| format!("127.0.0.{i}:8300")));
            }
            Resp::json(200, &peers)
        }
        _ => {
            let c = &shared.config;
            // `/v1/agent/self` needs `agent:read` on the agent's node.
            let authz = shared.authz(req)?;
            if !authz.agent(&c.node_name, Need::Read) {
                return Err(denied());
            }
            Resp::json(
                200,
                &AgentSelf {
                    config: AgentConfig {
                        datacenter: &c.datacenter,
                        node_name: &c.node_name,
                        node_id: NODE_ID,
                        revision: "consul-lock-testkit",
                        server: c.role != AgentRole::ClientAgent,
                        version: "1.10.12",
                    },
                    member: Member { name: &c.node_name },
                    meta: Empty {},
                },
            )
        }
    })
}

/// What `/v1/agent/self` shows (the part clients read).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct AgentSelf<'a> {
    config: AgentConfig<'a>,
    member: Member<'a>,
    meta: Empty,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct AgentConfig<'a> {
    datacenter: &'a str,
    node_name: &'a str,
    #[serde(rename = "NodeID")]
    node_id: &'a str,
    revision: &'a str,
    server: bool,
    version: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Member<'a> {
    name: &'a str,
}
