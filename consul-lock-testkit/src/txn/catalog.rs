//! The catalog operations of a transaction. The test server registers no catalog but its own
//! node with the `serfHealth` check (indexes 8 and 9, below the first KV index): reads of
//! those answer as Consul does, other reads fail with Consul's texts, writes are refused.

use serde::Serialize;
use serde_json::Value;

use super::TxnResult;
use crate::config::ServerConfig;
use crate::go::json_decode::field;
use crate::go::quote::quote as go_quote;
use crate::wire::Empty;

/// A catalog operation of a transaction, as far as the test server answers it.
#[derive(Debug, Clone)]
pub(super) enum Catalog {
    /// A `get`: its result (`{"Node": ...}`) or Consul's error text.
    Get(Result<TxnResult, String>),
    /// A write with an unknown verb: Consul's error text.
    BadVerb(String),
    /// A catalog write the test server does not serve (it holds no catalog).
    Unsupported(String),
}

/// The catalog the test server shows: its own node with the `serfHealth` check, registered
/// before any other write (indexes below the first KV index).
pub(super) fn catalog_op(
    kind: &str,
    op: &serde_json::Map<String, Value>,
    config: &ServerConfig,
) -> Catalog {
    let verb = field_str(field(op, "Verb"));
    let inner = |name: &str| field(op, name).and_then(Value::as_object);
    let member = |o: Option<&serde_json::Map<String, Value>>, name: &str| {
        o.map(|o| field_str(field(o, name))).unwrap_or_default()
    };
    let own = &config.node_name;
    if verb != "get" {
        // Consul knows these catalog write verbs; the test server holds no catalog to apply
        // them to. Other verbs are Consul's own error (a Service op is validated first).
        let known = ["set", "cas", "delete", "delete-cas"].contains(&verb.as_str());
        return if known || kind == "Service" {
            unsupported(kind, &verb)
        } else {
            Catalog::BadVerb(format!("unknown {kind} verb {}", go_quote(&verb)))
        };
    }
    let ip = config.listen.ip().to_string();
    Catalog::Get(match kind {
        "Node" => {
            let node = member(inner("Node"), "Node");
            if node == *own {
                Ok(TxnResult::Node(Box::new(Node {
                    id: crate::status::NODE_ID,
                    node: own.clone(),
                    address: ip.clone(),
                    datacenter: config.datacenter.clone(),
                    tagged_addresses: TaggedAddresses {
                        lan: ip.clone(),
                        lan_ipv4: ip.clone(),
                        wan: ip.clone(),
                        wan_ipv4: ip,
                    },
                    meta: NodeMeta {
                        network_segment: "",
                    },
                    create_index: 8,
                    modify_index: 9,
                })))
            } else {
                Err(format!("node {} doesn't exist", go_quote(&node)))
            }
        }
        "Service" => {
            let node = field_str(field(op, "Node"));
            let id = member(inner("Service"), "ID");
            Err(format!(
                "service {} on node {} doesn't exist",
                go_quote(&id),
                go_quote(&node)
            ))
        }
        _ => {
            let node = member(inner("Check"), "Node");
            let id = member(inner("Check"), "CheckID");
            if node == *own && id == "serfHealth" {
                Ok(TxnResult::Check(Box::new(Check {
                    node: own.clone(),
                    check_id: "serfHealth",
                    name: "Serf Health Status",
                    status: "passing",
                    notes: "",
                    output: "Agent alive and reachable",
                    service_id: "",
                    service_name: "",
                    service_tags: None,
                    r#type: "",
                    interval: "",
                    timeout: "",
                    exposed_port: 0,
                    definition: Empty {},
                    create_index: 8,
                    modify_index: 8,
                })))
            } else {
                Err(format!(
                    "check {} on node {} doesn't exist",
                    go_quote(&id),
                    go_quote(&node)
                ))
            }
        }
    })
}

fn unsupported(kind: &str, verb: &str) -> Catalog {
    Catalog::Unsupported(format!(
        "consul-lock-testkit serves no catalog: it cannot apply a {kind} operation with verb {} in /v1/txn",
        go_quote(verb)
    ))
}

/// A string member, or `""` (Go's zero value) when it is absent or not a string.
pub(super) fn field_str(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

/// A catalog node (`structs.Node`) in a transaction result.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Node {
    #[serde(rename = "ID")]
    id: &'static str,
    node: String,
    address: String,
    datacenter: String,
    tagged_addresses: TaggedAddresses,
    meta: NodeMeta,
    create_index: u64,
    modify_index: u64,
}

#[derive(Clone, Debug, Serialize)]
struct TaggedAddresses {
    lan: String,
    lan_ipv4: String,
    wan: String,
    wan_ipv4: String,
}

#[derive(Clone, Debug, Serialize)]
struct NodeMeta {
    #[serde(rename = "consul-network-segment")]
    network_segment: &'static str,
}

/// A health check (`structs.HealthCheck`) in a transaction result.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Check {
    node: String,
    #[serde(rename = "CheckID")]
    check_id: &'static str,
    name: &'static str,
    status: &'static str,
    notes: &'static str,
    output: &'static str,
    #[serde(rename = "ServiceID")]
    service_id: &'static str,
    service_name: &'static str,
    service_tags: Option<Vec<String>>,
    r#type: &'static str,
    interval: &'static str,
    timeout: &'static str,
    exposed_port: u16,
    definition: Empty,
    create_index: u64,
    modify_index: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::go::json::to_go_pretty;

    fn get(kind: &str, op: Value) -> String {
        let config = ServerConfig::default().node_name("n1");
        let Value::Object(op) = op else {
            panic!("an object")
        };
        match catalog_op(kind, &op, &config) {
            Catalog::Get(Ok(r)) => String::from_utf8(to_go_pretty(&r).unwrap()).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn own_node_and_check_as_consul_prints_them() {
        let ip = ServerConfig::default().listen.ip().to_string();
        let node = get(
            "Node",
            serde_json::json!({"Verb": "get", "Node": {"Node": "n1"}}),
        );
        assert_eq!(
            node,
            format!(
                "{{\n    \"Node\": {{\n        \"ID\": \"{}\",\n        \"Node\": \"n1\",\n        \"Address\": \"{ip}\",\n        \"Datacenter\": \"dc1\",\n        \"TaggedAddresses\": {{\n            \"lan\": \"{ip}\",\n            \"lan_ipv4\": \"{ip}\",\n            \"wan\": \"{ip}\",\n            \"wan_ipv4\": \"{ip}\"\n        }},\n        \"Meta\": {{\n            \"consul-network-segment\": \"\"\n        }},\n        \"CreateIndex\": 8,\n        \"ModifyIndex\": 9\n    }}\n}}\n",
                crate::status::NODE_ID
            )
        );
        let check = get(
            "Check",
            serde_json::json!({"Verb": "get", "Check": {"Node": "n1", "CheckID": "serfHealth"}}),
        );
        assert_eq!(
            check,
            "{\n    \"Check\": {\n        \"Node\": \"n1\",\n        \"CheckID\": \"serfHealth\",\n        \"Name\": \"Serf Health Status\",\n        \"Status\": \"passing\",\n        \"Notes\": \"\",\n        \"Output\": \"Agent alive and reachable\",\n        \"ServiceID\": \"\",\n        \"ServiceName\": \"\",\n        \"ServiceTags\": null,\n        \"Type\": \"\",\n        \"Interval\": \"\",\n        \"Timeout\": \"\",\n        \"ExposedPort\": 0,\n        \"Definition\": {},\n        \"CreateIndex\": 8,\n        \"ModifyIndex\": 8\n    }\n}\n"
        );
    }
}
