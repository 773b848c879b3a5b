//! The `/v1/txn` endpoint, KV operations only: `set`, `cas`, `lock`, `unlock`, `get`,
//! `get-tree`, `check-index`, `check-session`, `check-not-exists`, `delete`, `delete-tree`,
//! `delete-cas`. All operations apply atomically or not at all; every error is reported.

use std::collections::BTreeMap;
use std::time::Instant;

use hyper::Method;
use serde_json::Value;

use crate::acl::{Authz, Need};
use crate::blocking::QueryOpts;
use crate::config::ServerConfig;
use crate::go::json::J;
use crate::go::json_decode::{decode_go, field, go_kind};
use crate::go::quote::quote as go_quote;
use crate::request::{Req, MAX_BODY};
use crate::resp::{method_not_allowed, Answer, Meta, Resp};
use crate::shared::Shared;
use crate::store::{Entry, Kv, Session, Store};

/// One operation of a transaction: a KV operation, or a catalog read of something the test
/// server does not hold (it registers no catalog), which fails as in Consul.
#[derive(Debug, Clone)]
struct KvOp {
    /// Set for a catalog operation (`Node`, `Service`, `Check`): its result or error.
    catalog: Option<Catalog>,
    verb: String,
    key: String,
    value: Vec<u8>,
    flags: u64,
    index: u64,
    session: String,
}

fn is_write(verb: &str) -> bool {
    matches!(
        verb,
        "set" | "delete" | "delete-cas" | "delete-tree" | "cas" | "lock" | "unlock"
    )
}

fn parse_err(m: impl std::fmt::Display) -> Resp {
    Resp::text(400, format!("Failed to parse body: {m}"))
}

fn type_err(v: &Value, path: &str, ty: &str) -> Resp {
    parse_err(format!(
        "json: cannot unmarshal {} into Go struct field {path} of type {ty}",
        go_kind(v)
    ))
}

/// A catalog operation of a transaction, as far as the test server answers it.
#[derive(Debug, Clone)]
enum Catalog {
    /// A `get`: its result (`{"Node": ...}`) or Consul's error text.
    Get(Result<J, String>),
    /// A write with an unknown verb: Consul's error text.
    BadVerb(String),
    /// A catalog write the test server does not serve (it holds no catalog).
    Unsupported(String),
}

/// The catalog the test server shows: its own node with the `serfHealth` check, registered
/// before any other write (indexes below the first KV index).
fn catalog_op(kind: &str, op: &serde_json::Map<String, Value>, config: &ServerConfig) -> Catalog {
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
                Ok(J::Obj(vec![(
                    "Node",
                    J::Obj(vec![
                        ("ID", J::str(crate::status::NODE_ID)),
                        ("Node", J::str(own)),
                        ("Address", J::str(&ip)),
                        ("Datacenter", J::str(&config.datacenter)),
                        (
                            "TaggedAddresses",
                            J::Obj(vec![
                                ("lan", J::str(&ip)),
                                ("lan_ipv4", J::str(&ip)),
                                ("wan", J::str(&ip)),
                                ("wan_ipv4", J::str(&ip)),
                            ]),
                        ),
                        ("Meta", J::Obj(vec![("consul-network-segment", J::str(""))])),
                        ("CreateIndex", J::U(8)),
                        ("ModifyIndex", J::U(9)),
                    ]),
                )]))
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
                Ok(J::Obj(vec![(
                    "Check",
                    J::Obj(vec![
                        ("Node", J::str(own)),
                        ("CheckID", J::str("serfHealth")),
                        ("Name", J::str("Serf Health Status")),
                        ("Status", J::str("passing")),
                        ("Notes", J::str("")),
                        ("Output", J::str("Agent alive and reachable")),
                        ("ServiceID", J::str("")),
                        ("ServiceName", J::str("")),
                        ("ServiceTags", J::Null),
                        ("Type", J::str("")),
                        ("Interval", J::str("")),
                        ("Timeout", J::str("")),
                        ("ExposedPort", J::U(0)),
                        ("Definition", J::Obj(vec![])),
                        ("CreateIndex", J::U(8)),
                        ("ModifyIndex", J::U(8)),
                    ]),
                )]))
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
fn field_str(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn parse_ops(body: &[u8], config: &ServerConfig) -> Result<Vec<KvOp>, Resp> {
    let v = decode_go(body).map_err(parse_err)?;
    let arr = match v {
        Value::Array(a) => a,
        Value::Null => Vec::new(),
        v => {
            return Err(parse_err(format!(
                "json: cannot unmarshal {} into Go value of type api.TxnOps",
                go_kind(&v)
            )))
        }
    };
    let mut ops = Vec::with_capacity(arr.len());
    for item in arr.iter() {
        let obj = match item {
            Value::Object(o) => o,
            v => {
                return Err(parse_err(format!(
                    "json: cannot unmarshal {} into Go value of type api.TxnOp",
                    go_kind(v)
                )))
            }
        };
        // Consul decodes the operations strictly: an unknown member is a 400.
        if let Some(k) = obj.keys().find(|k| {
            !["KV", "Node", "Service", "Check"]
                .iter()
                .any(|f| k.eq_ignore_ascii_case(f))
        }) {
            return Err(parse_err(format!("json: unknown field {}", go_quote(k))));
        }
        let kv = match field(obj, "KV") {
            Some(Value::Object(kv)) => kv,
            Some(Value::Null) | None => {
                // The first catalog member present decides; an empty operation does nothing.
                let catalog =
                    ["Node", "Service", "Check"]
                        .into_iter()
                        .find_map(|k| match field(obj, k) {
                            Some(Value::Object(o)) => Some((k, o)),
                            _ => None,
                        });
                if let Some((kind, op)) = catalog {
                    let verb = field_str(field(op, "Verb"));
                    ops.push(KvOp {
                        catalog: Some(catalog_op(kind, op, config)),
                        verb: if verb == "get" {
                            verb
                        } else {
                            "catalog-write".into()
                        },
                        key: String::new(),
                        value: Vec::new(),
                        flags: 0,
                        index: 0,
                        session: String::new(),
                    });
                }
                continue;
            }
            Some(v) => return Err(type_err(v, "TxnOp.KV", "api.KVTxnOp")),
        };
        if let Some(k) = kv.keys().find(|k| {
            ![
                "Verb",
                "Key",
                "Value",
                "Flags",
                "Index",
                "Session",
                "Namespace",
            ]
            .iter()
            .any(|f| k.eq_ignore_ascii_case(f))
        }) {
            return Err(parse_err(format!("json: unknown field {}", go_quote(k))));
        }
        let s = |name: &str| -> Result<String, Resp> {
            match field(kv, name) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(v) => Err(type_err(v, &format!("KVTxnOp.KV.{name}"), "string")),
            }
        };
        let n = |name: &str| -> Result<u64, Resp> {
            match field(kv, name) {
                None | Some(Value::Null) => Ok(0),
                Some(Value::Number(x)) => x.as_u64().ok_or_else(|| {
                    parse_err(format!(
                        "json: cannot unmarshal number {x} into Go struct field KVTxnOp.KV.{name} of type uint64"
                    ))
                }),
                Some(v) => Err(type_err(v, &format!("KVTxnOp.KV.{name}"), "uint64")),
            }
        };
        let value = match field(kv, "Value") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(b64)) => crate::go::base64::decode(b64).map_err(parse_err)?,
            Some(v) => return Err(type_err(v, "KVTxnOp.KV.Value", "[]uint8")),
        };
        ops.push(KvOp {
            catalog: None,
            verb: s("Verb")?,
            key: s("Key")?,
            value,
            flags: n("Flags")?,
            index: n("Index")?,
            session: s("Session")?,
        });
    }
    let max_ops = config.txn_max_ops;
    if arr.len() > max_ops {
        return Err(Resp::text(
            413,
            format!(
                "Transaction contains too many operations ({} > {max_ops})",
                arr.len()
            ),
        ));
    }
    Ok(ops)
}

struct TxnErr {
    op: usize,
    what: String,
}

/// Checks made before the transaction is applied: keys, ACLs, lock-delays.
fn pre_check(ops: &[KvOp], authz: &Authz, st: &Store, now: Instant) -> Vec<TxnErr> {
    let mut errs = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let what = if op.catalog.is_some() {
            None
        } else if op.key.is_empty() && op.verb != "delete-tree" {
            Some("Must provide key".to_string())
        } else {
            let ok = match op.verb.as_str() {
                "delete-tree" => authz.key_write_prefix(&op.key),
                "get" | "get-tree" => true,
                "check-session" | "check-index" => authz.key(&op.key, Need::Read),
                _ => authz.key(&op.key, Need::Write),
            };
            if !ok {
                Some(crate::acl::PERMISSION_DENIED.to_string())
            } else if op.verb == "lock" && st.lock_delay(&op.key, now).is_some() {
                Some(format!(
                    "failed to lock key {} due to lock delay",
                    go_quote(&op.key)
                ))
            } else {
                None
            }
        };
        if let Some(what) = what {
            errs.push(TxnErr { op: i, what });
        }
    }
    errs
}

/// Applies one operation to a scratch copy of the KV table.
fn exec(
    kv: &mut Kv,
    sessions: &BTreeMap<String, Session>,
    idx: u64,
    op: &KvOp,
) -> Result<Vec<J>, String> {
    match &op.catalog {
        Some(Catalog::Get(Ok(r))) => return Ok(vec![r.clone()]),
        Some(Catalog::Get(Err(what)) | Catalog::BadVerb(what)) => return Err(what.clone()),
        Some(Catalog::Unsupported(what)) => return Err(what.clone()),
        None => {}
    }
    let q = go_quote(&op.key);
    let entry = || Entry::new(&op.key, op.value.clone(), op.flags, &op.session);
    let no_value = |e: Entry| vec![J::Obj(vec![("KV", e.to_json(false))])];
    match op.verb.as_str() {
        "set" => Ok(no_value(kv.set(idx, entry(), false))),
        "cas" => kv
            .cas(idx, entry(), op.index)
            .map(no_value)
            .ok_or_else(|| format!("failed to set key {q}, index is stale")),
        "lock" => kv
            .lock(idx, entry(), sessions)?
            .map(no_value)
            .ok_or_else(|| format!("failed to lock key {q}, lock is already held")),
        "unlock" => kv.unlock(idx, entry())?.map(no_value).ok_or_else(|| {
            format!("failed to unlock key {q}, lock isn't held, or is held by another session")
        }),
        "get" => match kv.get(&op.key).1 {
            Some(e) => Ok(vec![J::Obj(vec![("KV", e.to_json(true))])]),
            None => Err(format!("key {q} doesn't exist")),
        },
        "get-tree" => Ok(kv
            .list(&op.key)
            .1
            .iter()
            .map(|e| J::Obj(vec![("KV", e.to_json(true))]))
            .collect()),
        "check-session" => match kv.get(&op.key).1 {
            None => Err(format!("failed to check session, key {q} doesn't exist")),
            Some(e) if e.session != op.session => Err(format!(
                "failed session check for key {q}, current session {} != {}",
                go_quote(&e.session),
                go_quote(&op.session)
            )),
            Some(e) => Ok(no_value(e.clone())),
        },
        "check-index" => match kv.get(&op.key).1 {
            None => Err(format!("failed to check index, key {q} doesn't exist")),
            Some(e) if e.modify_index != op.index => Err(format!(
                "failed index check for key {q}, current modify index {} != {}",
                e.modify_index, op.index
            )),
            Some(e) => Ok(no_value(e.clone())),
        },
        "check-not-exists" => match kv.get(&op.key).1 {
            Some(_) => Err(format!("key {q} exists")),
            None => Ok(Vec::new()),
        },
        "delete" => {
            kv.delete(idx, &op.key);
            Ok(Vec::new())
        }
        "delete-tree" => {
            kv.delete_tree(idx, &op.key);
            Ok(Vec::new())
        }
        "delete-cas" => {
            if kv.delete_cas(idx, &op.key, op.index) {
                Ok(Vec::new())
            } else {
                Err(format!("failed to delete key {q}, index is stale"))
            }
        }
        v => Err(format!("unknown KV verb {}", go_quote(v))),
    }
}

fn errors_json(errs: &[TxnErr]) -> J {
    J::Arr(
        errs.iter()
            .map(|e| {
                J::Obj(vec![
                    ("OpIndex", J::U(e.op as u64)),
                    ("What", J::str(&e.what)),
                ])
            })
            .collect(),
    )
}

fn filter_results(results: Vec<J>, authz: &Authz) -> Vec<J> {
    results
        .into_iter()
        .filter(|r| match r {
            J::Obj(f) => f.iter().all(|(_, kv)| match kv {
                J::Obj(kvf) => kvf.iter().all(|(n, v)| match (n, v) {
                    (&"Key", J::Str(k)) => authz.key(k, Need::Read),
                    _ => true,
                }),
                _ => true,
            }),
            _ => true,
        })
        .collect()
}

pub(crate) async fn handle(shared: &Shared, req: &Req) -> Answer {
    if req.method != Method::PUT {
        return Err(method_not_allowed(&req.method, &["PUT"]));
    }
    if req.body.len() > MAX_BODY {
        return Err(too_large(req.body.len()));
    }
    let ops = parse_ops(&req.body, &shared.config)?;
    shared.check_dc(req)?;
    if let Some(Catalog::Unsupported(what)) = ops.iter().find_map(|o| match &o.catalog {
        Some(c @ Catalog::Unsupported(_)) => Some(c),
        _ => None,
    }) {
        return Err(Resp::text(501, what.clone()));
    }
    let writes = ops.iter().any(|o| match &o.catalog {
        Some(_) => o.verb != "get",
        None => is_write(&o.verb),
    });
    let meta = if writes {
        shared.wait_leader().await?;
        None
    } else {
        let qo = QueryOpts {
            min_index: 0,
            wait: std::time::Duration::ZERO,
            stale: req.has("stale"),
        };
        Some(shared.read_meta(&qo).await?)
    };
    let authz = shared.authz(req)?;
    let now = Instant::now();
    let outcome: Result<Vec<J>, Vec<TxnErr>> = shared.write(|st| {
        let pre = pre_check(&ops, &authz, st, now);
        if !pre.is_empty() {
            return Err(pre);
        }
        let idx = if writes {
            st.next_index()
        } else {
            st.raft_index
        };
        // Run on the table itself; a failed transaction is undone from what it touched.
        let undo = st
            .kv
            .save(ops.iter().map(|op| (op.verb.as_str(), op.key.as_str())));
        let mut results = Vec::new();
        let mut errs = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            match exec(&mut st.kv, &st.sessions, idx, op) {
                Ok(r) => results.extend(r),
                Err(what) => errs.push(TxnErr { op: i, what }),
            }
        }
        if !errs.is_empty() || !writes {
            st.kv.restore(undo);
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(results)
    });
    let (status, results, errors) = match outcome {
        Ok(r) => (200, J::Arr(filter_results(r, &authz)), J::Null),
        Err(e) => (409, J::Null, errors_json(&e)),
    };
    Ok(match meta {
        None => {
            let r = Resp::json(
                status,
                &J::Obj(vec![("Results", results), ("Errors", errors)]),
            );
            if status == 200 {
                r.applied()
            } else {
                r
            }
        }
        Some(m) => read_resp(status, results, errors, m),
    })
}

/// Consul's 413 for a `/v1/txn` body above `txn_max_req_len`.
pub(crate) fn too_large(n: usize) -> Resp {
    Resp::text(
        413,
        format!(
            "Request body({n} bytes) too large, max size: {MAX_BODY} bytes. See https://www.consul.io/docs/agent/options.html#txn_max_req_len."
        ),
    )
}

fn read_resp(status: u16, results: J, errors: J, m: Meta) -> Resp {
    Resp::json(
        status,
        &J::Obj(vec![
            ("Results", results),
            ("Errors", errors),
            ("Index", J::U(1)),
            ("LastContact", J::U(m.last_contact_ms)),
            ("KnownLeader", J::Bool(m.known_leader)),
            ("ConsistencyLevel", J::str("")),
            ("NotModified", J::Bool(false)),
            ("Backend", J::U(0)),
        ]),
    )
    .header(
        "X-Consul-KnownLeader",
        if m.known_leader { "true" } else { "false" },
    )
    .header("X-Consul-LastContact", m.last_contact_ms.to_string())
}
