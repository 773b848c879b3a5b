//! The `/v1/session/` endpoint: create, destroy, info, node, list, renew.

use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::Value;

use crate::acl::Need;
use crate::blocking::{self, query_opts};
use crate::go::duration::{format as format_go_duration, parse as parse_go_duration};
use crate::go::json_decode::{
    decode_go_doc, decode_string_slice, decode_uint64, field, field_type_error, value_type_error,
    GoDoc,
};
use crate::go::uuid::check_uuid;
use crate::request::Req;
use crate::resp::{bool_resp, denied, method_not_allowed, not_found, Answer, Meta, Resp};
use crate::shared::Shared;
use crate::store::{Session, SERF_HEALTH};
use crate::wire::{SessionId, SessionJson};

const SESSION_TTL_MAX: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_LOCK_DELAY_NS: i64 = 15_000_000_000;

pub(crate) async fn handle(shared: &Shared, req: &Req, rest: &str) -> Answer {
    // Go's ServeMux patterns: `create` and `list` exact, the others subtrees (`info/`, ...).
    let (verb, arg) = match rest.split_once('/') {
        Some((v, a)) => (v, Some(a)),
        None => (rest, None),
    };
    match (verb, arg) {
        ("create" | "list", Some(_)) => Err(not_found()),
        ("destroy" | "renew" | "info" | "node", None) => Err(not_found()),
        ("create", None) if req.method == Method::PUT => create(shared, req).await,
        ("destroy", Some(id)) if req.method == Method::PUT => destroy(shared, req, id).await,
        ("renew", Some(id)) if req.method == Method::PUT => renew(shared, req, id).await,
        ("create" | "destroy" | "renew", _) => Err(method_not_allowed(&req.method, &["PUT"])),
        ("info" | "node" | "list", _) if req.method != Method::GET => {
            Err(method_not_allowed(&req.method, &["GET"]))
        }
        ("info", Some(id)) => read(shared, req, Read::Info(id)).await,
        ("node", Some(n)) => read(shared, req, Read::Node(n)).await,
        ("list", None) => read(shared, req, Read::List).await,
        _ => Err(not_found()),
    }
}

/// A session create request after decoding (the handler's defaults filled in first, as
/// Consul does before it decodes the body over them).
struct CreateReq {
    name: String,
    node: String,
    lock_delay_ns: i64,
    behavior: String,
    ttl: String,
    node_checks: Option<Vec<String>>,
    checks: Option<Vec<String>>,
    service_checks: Option<Vec<String>>,
    /// A `LockDelay` string that is not a duration (reported after type errors).
    lock_delay_err: Option<String>,
}

fn decode_err(m: impl std::fmt::Display) -> Resp {
    Resp::text(400, format!("Request decode failed: {m}"))
}

fn type_err(v: &Value, field: &str, ty: &str) -> Resp {
    decode_err(field_type_error(v, &format!(".{field}"), ty))
}

/// Decodes one member into `out`; a type error is returned (Go reports the first one).
fn decode_member(out: &mut CreateReq, key: &str, v: &Value) -> Result<(), Resp> {
    let string = |name: &str, ty: &str| -> Result<Option<String>, Resp> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s.clone())),
            v => Err(type_err(v, name, ty)),
        }
    };
    let serf = [SERF_HEALTH];
    match key.to_ascii_lowercase().as_str() {
        "id" => drop(string("ID", "string")?),
        "name" => out.name = string("Name", "string")?.unwrap_or(std::mem::take(&mut out.name)),
        "node" => out.node = string("Node", "string")?.unwrap_or(std::mem::take(&mut out.node)),
        "behavior" => {
            out.behavior = string("Behavior", "structs.SessionBehavior")?
                .unwrap_or(std::mem::take(&mut out.behavior))
        }
        "ttl" => out.ttl = string("TTL", "string")?.unwrap_or(std::mem::take(&mut out.ttl)),
        "createindex" => {
            decode_uint64(v, ".CreateIndex").map_err(decode_err)?;
        }
        "modifyindex" => {
            decode_uint64(v, ".ModifyIndex").map_err(decode_err)?;
        }
        // `LockDelay interface{}`: a string is a Go duration, a number nanoseconds, anything
        // else counts as 0; below 1000 ns the value is taken as seconds (FixupLockDelay).
        "lockdelay" => {
            // Only the last member counts (it is one `interface{}` field, decoded last).
            out.lock_delay_err = None;
            let ns = match v {
                Value::Null => {
                    out.lock_delay_ns = DEFAULT_LOCK_DELAY_NS;
                    return Ok(());
                }
                Value::String(s) => match parse_go_duration(s) {
                    Ok(ns) => ns,
                    // Parsed after the whole body decoded: type errors come first.
                    Err(e) => {
                        out.lock_delay_err = Some(e);
                        return Ok(());
                    }
                },
                Value::Number(n) => n.as_f64().map(|f| f as i64).unwrap_or(0),
                _ => 0,
            };
            out.lock_delay_ns = if ns < 1000 {
                ns.saturating_mul(1_000_000_000)
            } else {
                ns
            };
        }
        "nodechecks" => {
            out.node_checks =
                decode_string_slice(v, ".NodeChecks", "string", &serf).map_err(decode_err)?
        }
        "checks" => {
            out.checks =
                decode_string_slice(v, ".Checks", "types.CheckID", &serf).map_err(decode_err)?
        }
        "servicechecks" => {
            out.service_checks = match v {
                Value::Null => None,
                Value::Array(a) => {
                    let mut ids = Vec::new();
                    for c in a {
                        match c {
                            Value::Null => ids.push(String::new()),
                            Value::Object(o) => ids.push(match field(o, "ID") {
                                None | Some(Value::Null) => String::new(),
                                Some(Value::String(s)) => s.clone(),
                                Some(v) => return Err(type_err(v, "ServiceChecks.ID", "string")),
                            }),
                            v => return Err(type_err(v, "ServiceChecks", "structs.ServiceCheck")),
                        }
                    }
                    Some(ids)
                }
                v => return Err(type_err(v, "ServiceChecks", "[]structs.ServiceCheck")),
            }
        }
        _ => {}
    }
    Ok(())
}

fn parse_create(body: &[u8], node_name: &str) -> Result<CreateReq, Resp> {
    let mut out = CreateReq {
        name: String::new(),
        node: node_name.to_string(),
        lock_delay_ns: DEFAULT_LOCK_DELAY_NS,
        behavior: String::new(),
        ttl: String::new(),
        node_checks: Some(vec![SERF_HEALTH.to_string()]),
        checks: Some(vec![SERF_HEALTH.to_string()]),
        service_checks: None,
        lock_delay_err: None,
    };
    if !body.iter().all(|b| b.is_ascii_whitespace()) {
        match decode_go_doc(body).map_err(decode_err)? {
            GoDoc::Object(pairs) => {
                // Go assigns members in document order and reports the first type error.
                let mut first_err = None;
                for (k, v) in &pairs.0 {
                    if let Err(e) = decode_member(&mut out, k, v) {
                        first_err.get_or_insert(e);
                    }
                }
                if let Some(e) = first_err {
                    return Err(e);
                }
                if let Some(e) = out.lock_delay_err.take() {
                    return Err(decode_err(e));
                }
            }
            GoDoc::Other(Value::Null) => {}
            GoDoc::Other(v) => {
                return Err(decode_err(value_type_error(
                    &v,
                    "struct { LockDelay interface {}; *structs.Alias }",
                )))
            }
        }
    }
    // fixupEmptySessionChecks: the deprecated `Checks` and `NodeChecks` both default to
    // serfHealth; an empty `Checks` empties `NodeChecks`, a default `Checks` defers to
    // `NodeChecks`, an empty `NodeChecks` drops `Checks`.
    let checks_len = out.checks.as_ref().map_or(0, Vec::len);
    let default_checks = out.checks.as_deref() == Some(&[SERF_HEALTH.to_string()][..]);
    let no_node_checks = out.node_checks.as_ref().map_or(0, Vec::len) == 0;
    if checks_len == 0 {
        out.node_checks = Some(Vec::new());
    } else if default_checks || no_node_checks {
        out.checks = None;
    }
    Ok(out)
}

async fn create(shared: &Shared, req: &Req) -> Answer {
    let c = parse_create(&req.body, &shared.config.node_name)?;
    shared.check_dc(req)?;
    let authz = shared.write_access(req).await?;
    if c.node.is_empty() {
        return Err(Resp::text(500, "Must provide Node"));
    }
    let node = c.node.clone();
    if !authz.session(&node, Need::Write) {
        return Err(denied());
    }
    let behavior_delete = match c.behavior.as_str() {
        "" | "release" => false,
        "delete" => true,
        b => return Err(Resp::text(500, format!("Invalid Behavior setting '{b}'"))),
    };
    let mut ttl_dur = None;
    if !c.ttl.is_empty() {
        let ns = parse_go_duration(&c.ttl)
            .map_err(|e| Resp::text(500, format!("Session TTL '{}' invalid: {e}", c.ttl)))?;
        let min = shared.config.session_ttl_min;
        let min_ns = min.as_nanos() as i64;
        let max_ns = SESSION_TTL_MAX.as_nanos() as i64;
        if ns != 0 && (ns < min_ns || ns > max_ns) {
            return Err(Resp::text(
                500,
                format!(
                    "Invalid Session TTL '{ns}', must be between [{}={}]",
                    format_go_duration(min_ns),
                    format_go_duration(max_ns)
                ),
            ));
        }
        if ns > 0 {
            ttl_dur = Some(Duration::from_nanos(ns as u64));
        }
    }
    let registered = shared.store().node_registered;
    if node != shared.config.node_name || !registered {
        return Err(failed_apply(shared, "Missing node registration".into()));
    }
    let lookups = c.node_checks.iter().flatten();
    let lookups = lookups.chain(c.checks.iter().flatten());
    if let Some(bad) = lookups
        .chain(c.service_checks.iter().flatten())
        .find(|ch| ch.as_str() != SERF_HEALTH)
    {
        if bad.is_empty() {
            return Err(failed_apply(
                shared,
                "failed check lookup: index error: object is missing a value for this index".into(),
            ));
        }
        return Err(failed_apply(
            shared,
            format!("Missing check '{bad}' registration"),
        ));
    }
    // A session cannot be tied to a check that is critical now (`validateSessionChecksTxn`).
    let node_critical = shared.store().node_critical;
    if node_critical
        && c.node_checks
            .iter()
            .flatten()
            .chain(c.checks.iter().flatten())
            .any(|ch| ch.eq_ignore_ascii_case(SERF_HEALTH))
    {
        return Err(failed_apply(
            shared,
            format!("Check '{SERF_HEALTH}' is in critical state"),
        ));
    }
    let s = Session {
        id: uuid::Uuid::new_v4().to_string(),
        name: c.name,
        node,
        lock_delay_ns: c.lock_delay_ns,
        behavior_delete,
        ttl: c.ttl,
        ttl_dur,
        node_checks: c.node_checks,
        service_checks: c.service_checks,
        create_index: 0,
        modify_index: 0,
        deadline: None,
    };
    let id = shared.write(|st| st.insert_session(s, Instant::now()));
    shared.ttl_notify.notify_one();
    Ok(Resp::json(200, &SessionId { id: &id }).applied())
}

/// A session write that Consul's state store refuses after Raft logged it: the index it took
/// is used up, and the answer is Consul's 500 `apply failed: ...`.
fn failed_apply(shared: &Shared, why: String) -> Resp {
    shared.write(|st| st.next_index());
    Resp::text(500, format!("apply failed: {why}"))
}

async fn destroy(shared: &Shared, req: &Req, id: &str) -> Answer {
    if id.is_empty() {
        return Err(Resp::text(400, "Missing session"));
    }
    let authz = shared.write_access(req).await?;
    check_uuid(id)
        .map_err(|m| failed_apply(shared, format!("failed session lookup: index error: {m}")))?;
    let node = shared.store().session(id).map(|s| s.node.clone());
    let Some(node) = node else {
        // Still a raft apply: it consumes an index, though no table changes.
        shared.write(|st| st.next_index());
        return Ok(bool_resp(true).applied());
    };
    if !authz.session(&node, Need::Write) {
        return Err(denied());
    }
    shared.write(|st| st.invalidate_session(id, Instant::now()));
    Ok(bool_resp(true).applied())
}

async fn renew(shared: &Shared, req: &Req, id: &str) -> Answer {
    if id.is_empty() {
        return Err(Resp::text(400, "Missing session"));
    }
    let authz = shared.write_access(req).await?;
    check_uuid(id)
        .map_err(|m| Resp::text(500, format!("failed session lookup: index error: {m}")))?;
    let not_found = || Resp::text(404, format!("Session id '{id}' not found"));
    let node = shared.store().session(id).map(|s| s.node.clone());
    let node = node.ok_or_else(not_found)?;
    if !authz.session(&node, Need::Write) {
        return Err(denied());
    }
    let renewed = shared.store().renew_session(id, Instant::now());
    let s = renewed.ok_or_else(not_found)?;
    Ok(Resp::json(200, &[SessionJson::new(&s)]).applied())
}

enum Read<'a> {
    Info(&'a str),
    Node(&'a str),
    List,
}

async fn read(shared: &Shared, req: &Req, what: Read<'_>) -> Answer {
    let qo = query_opts(req)?;
    match what {
        Read::Info("") => return Err(Resp::text(400, "Missing session")),
        Read::Node("") => return Err(Resp::text(400, "Missing node name")),
        _ => {}
    }
    // From here on the errors come from the RPC, and Consul still sets the query metadata
    // (its zero value) on the answer.
    let rpc_err = |r: Resp| {
        r.meta(
            Some(1),
            Meta {
                known_leader: false,
                last_contact_ms: 0,
            },
        )
    };
    shared.check_dc(req).map_err(rpc_err)?;
    if let Read::Info(id) = what {
        check_uuid(id).map_err(|m| {
            rpc_err(Resp::text(
                500,
                format!("failed session lookup: index error: {m}"),
            ))
        })?;
    }
    let meta = shared.read_meta(&qo).await.map_err(rpc_err)?;
    let authz = shared.authz(req).map_err(rpc_err)?;
    let (idx, list) = blocking::query(shared, &qo, |st| {
        let v: Vec<Session> = st
            .sessions
            .values()
            .filter(|s| match what {
                Read::Info(id) => s.id.eq_ignore_ascii_case(id),
                Read::Node(n) => s.node == n,
                Read::List => true,
            })
            .filter(|s| authz.session(&s.node, Need::Read))
            .cloned()
            .collect();
        (st.sessions_table_index(), v)
    })
    .await;
    Ok(
        Resp::json(200, &list.iter().map(SessionJson::new).collect::<Vec<_>>())
            .meta(Some(idx), meta),
    )
}
