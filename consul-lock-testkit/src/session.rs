//! The `/v1/session/` endpoint: create, destroy, info, node, list, renew.

use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::Value;

use crate::acl::Need;
use crate::godur::{format_go_duration, parse_go_duration};
use crate::http::{bool_resp, denied, method_not_allowed, query_opts, Req, Resp};
use crate::json::{decode_go, field, go_kind, J};
use crate::shared::Shared;
use crate::store::{check_uuid, Session};

const SESSION_TTL_MAX: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_LOCK_DELAY_NS: i64 = 15_000_000_000;

pub(crate) async fn handle(shared: &Shared, req: &Req, rest: &str) -> Resp {
    let (verb, arg) = rest.split_once('/').unwrap_or((rest, ""));
    match verb {
        "create" if req.method == Method::PUT => create(shared, req).await,
        "destroy" if req.method == Method::PUT => destroy(shared, req, arg).await,
        "renew" if req.method == Method::PUT => renew(shared, req, arg).await,
        "create" | "destroy" | "renew" => method_not_allowed(&req.method, &["PUT"]),
        "info" | "node" | "list" if req.method != Method::GET => {
            method_not_allowed(&req.method, &["GET"])
        }
        "info" => read(shared, req, Read::Info(arg)).await,
        "node" => read(shared, req, Read::Node(arg)).await,
        "list" => read(shared, req, Read::List).await,
        _ => Resp::text(
            404,
            format!("consul-lock-testkit: unknown session endpoint /v1/session/{rest}"),
        ),
    }
}

/// A session create request after decoding.
struct CreateReq {
    name: String,
    node: Option<String>,
    lock_delay_ns: i64,
    behavior: String,
    ttl: String,
    node_checks: Option<Vec<String>>,
    service_checks: Vec<String>,
}

fn decode_err(m: impl std::fmt::Display) -> Resp {
    Resp::text(400, format!("Request decode failed: {m}"))
}

fn type_err(v: &Value, field: &str, ty: &str) -> Resp {
    decode_err(format!(
        "json: cannot unmarshal {} into Go struct field .{field} of type {ty}",
        go_kind(v)
    ))
}

fn string_field(obj: &serde_json::Map<String, Value>, name: &str) -> Result<Option<String>, Resp> {
    match field(obj, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(type_err(v, name, "string")),
    }
}

fn string_list(
    obj: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<Vec<String>>, Resp> {
    match field(obj, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Null => Ok(String::new()),
                v => Err(type_err(v, name, "string")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(v) => Err(type_err(v, name, "[]string")),
    }
}

fn parse_create(body: &[u8]) -> Result<CreateReq, Resp> {
    let mut out = CreateReq {
        name: String::new(),
        node: None,
        lock_delay_ns: DEFAULT_LOCK_DELAY_NS,
        behavior: String::new(),
        ttl: String::new(),
        node_checks: None,
        service_checks: Vec::new(),
    };
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(out);
    }
    let v = decode_go(body).map_err(decode_err)?;
    let obj = match v {
        Value::Object(o) => o,
        Value::Null => return Ok(out),
        v => {
            return Err(decode_err(format!(
                "json: cannot unmarshal {} into Go value of type structs.Session",
                go_kind(&v)
            )))
        }
    };
    out.name = string_field(&obj, "Name")?.unwrap_or_default();
    out.node = string_field(&obj, "Node")?.filter(|n| !n.is_empty());
    out.behavior = string_field(&obj, "Behavior")?.unwrap_or_default();
    out.ttl = string_field(&obj, "TTL")?.unwrap_or_default();
    // FixupLockDelay: numbers are nanoseconds, strings Go durations; below 1000 ns the
    // value is taken as seconds.
    let lock_delay = match field(&obj, "LockDelay") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.as_f64().map(|f| f as i64).unwrap_or(0)),
        Some(Value::String(s)) => Some(parse_go_duration(s).map_err(decode_err)?),
        Some(v) => return Err(type_err(v, "LockDelay", "time.Duration")),
    };
    if let Some(ns) = lock_delay {
        out.lock_delay_ns = if ns < 1000 {
            ns.saturating_mul(1_000_000_000)
        } else {
            ns
        };
    }
    let checks = string_list(&obj, "Checks")?;
    out.node_checks = string_list(&obj, "NodeChecks")?.or(checks);
    match field(&obj, "ServiceChecks") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            for c in a {
                match c {
                    Value::Object(o) => out
                        .service_checks
                        .push(string_field(o, "ID")?.unwrap_or_default()),
                    v => return Err(type_err(v, "ServiceChecks", "structs.ServiceCheck")),
                }
            }
        }
        Some(v) => return Err(type_err(v, "ServiceChecks", "[]structs.ServiceCheck")),
    }
    Ok(out)
}

async fn create(shared: &Shared, req: &Req) -> Resp {
    let c = match parse_create(&req.body) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Err(r) = shared.check_dc(req) {
        return r;
    }
    let authz = match shared.write_access(req).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let node = c
        .node
        .clone()
        .unwrap_or_else(|| shared.config.node_name.clone());
    if !authz.session(&node, Need::Write) {
        return denied();
    }
    let behavior_delete = match c.behavior.as_str() {
        "" | "release" => false,
        "delete" => true,
        b => return Resp::text(500, format!("Invalid Behavior setting '{b}'")),
    };
    let mut ttl_dur = None;
    if !c.ttl.is_empty() {
        let ns = match parse_go_duration(&c.ttl) {
            Ok(ns) => ns,
            Err(e) => return Resp::text(500, format!("Session TTL '{}' invalid: {e}", c.ttl)),
        };
        let min = shared.config.session_ttl_min;
        let min_ns = min.as_nanos() as i64;
        let max_ns = SESSION_TTL_MAX.as_nanos() as i64;
        if ns != 0 && (ns < min_ns || ns > max_ns) {
            return Resp::text(
                500,
                format!(
                    "Invalid Session TTL '{ns}', must be between [{}={}]",
                    format_go_duration(min_ns),
                    format_go_duration(max_ns)
                ),
            );
        }
        if ns > 0 {
            ttl_dur = Some(Duration::from_nanos(ns as u64));
        }
    }
    if node != shared.config.node_name {
        return Resp::text(500, "apply failed: Missing node registration");
    }
    let node_checks = c
        .node_checks
        .unwrap_or_else(|| vec!["serfHealth".to_string()]);
    if let Some(bad) = node_checks
        .iter()
        .chain(c.service_checks.iter())
        .find(|ch| ch.as_str() != "serfHealth")
    {
        return Resp::text(
            500,
            format!("apply failed: Missing check '{bad}' registration"),
        );
    }
    let s = Session {
        id: uuid::Uuid::new_v4().to_string(),
        name: c.name,
        node,
        lock_delay_ns: c.lock_delay_ns,
        behavior_delete,
        ttl: c.ttl,
        ttl_dur,
        node_checks: Some(node_checks),
        create_index: 0,
        modify_index: 0,
        deadline: None,
    };
    let id = shared.write(|st| st.insert_session(s, Instant::now()));
    shared.ttl_notify.notify_one();
    Resp::json(200, &J::Obj(vec![("ID", J::Str(id))]))
}

async fn destroy(shared: &Shared, req: &Req, id: &str) -> Resp {
    if id.is_empty() {
        return Resp::text(400, "Missing session");
    }
    let authz = match shared.write_access(req).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if let Err(m) = check_uuid(id) {
        return Resp::text(500, format!("Session lookup failed: index error: {m}"));
    }
    let node = shared.store().sessions.get(id).map(|s| s.node.clone());
    let Some(node) = node else {
        return bool_resp(true);
    };
    if !authz.session(&node, Need::Write) {
        return denied();
    }
    shared.write(|st| st.invalidate_session(id, Instant::now()));
    bool_resp(true)
}

async fn renew(shared: &Shared, req: &Req, id: &str) -> Resp {
    if id.is_empty() {
        return Resp::text(400, "Missing session");
    }
    let authz = match shared.write_access(req).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if let Err(m) = check_uuid(id) {
        return Resp::text(500, format!("failed session lookup: index error: {m}"));
    }
    let node = shared.store().sessions.get(id).map(|s| s.node.clone());
    match node {
        None => Resp::text(404, format!("Session id '{id}' not found")),
        Some(n) if !authz.session(&n, Need::Write) => denied(),
        Some(_) => match shared.store().renew_session(id, Instant::now()) {
            Some(s) => Resp::json(200, &J::Arr(vec![s.to_json()])),
            None => Resp::text(404, format!("Session id '{id}' not found")),
        },
    }
}

enum Read<'a> {
    Info(&'a str),
    Node(&'a str),
    List,
}

async fn read(shared: &Shared, req: &Req, what: Read<'_>) -> Resp {
    let qo = match query_opts(req) {
        Ok(q) => q,
        Err(r) => return r,
    };
    if let Err(r) = shared.check_dc(req) {
        return r;
    }
    match what {
        Read::Info("") => return Resp::text(400, "Missing session"),
        Read::Node("") => return Resp::text(400, "Missing node name"),
        Read::Info(id) => {
            if let Err(m) = check_uuid(id) {
                return Resp::text(500, format!("failed session lookup: index error: {m}"));
            }
        }
        _ => {}
    }
    let meta = match shared.read_meta(&qo).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let authz = match shared.authz(req) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let (idx, list) = shared
        .blocking(&qo, |st| {
            let v: Vec<Session> = st
                .sessions
                .values()
                .filter(|s| match what {
                    Read::Info(id) => s.id == id,
                    Read::Node(n) => s.node == n,
                    Read::List => true,
                })
                .filter(|s| authz.session(&s.node, Need::Read))
                .cloned()
                .collect();
            (st.sessions_table_index(), v)
        })
        .await;
    Resp::json(200, &J::Arr(list.iter().map(Session::to_json).collect())).meta(Some(idx), meta)
}
