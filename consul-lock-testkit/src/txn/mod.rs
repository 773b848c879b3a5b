//! The `/v1/txn` endpoint, KV operations only: `set`, `cas`, `lock`, `unlock`, `get`,
//! `get-tree`, `check-index`, `check-session`, `check-not-exists`, `delete`, `delete-tree`,
//! `delete-cas`. All operations apply atomically or not at all; every error is reported.

mod catalog;
mod parse;

use std::collections::BTreeMap;
use std::time::Instant;

use hyper::Method;
use serde::Serialize;

use crate::acl::{Authz, Need};
use crate::go::quote::quote as go_quote;
use crate::req::{QueryOpts, Req, MAX_BODY};
use crate::resp::{method_not_allowed, Answer, Resp};
use crate::shared::Shared;
use crate::store::{Entry, Kv, Session, Store};
use crate::wire::DirEntry;
use catalog::Catalog;
use parse::{is_write, parse_ops, KvOp};

/// One result of a transaction: `{"KV": ...}`, `{"Node": ...}` or `{"Check": ...}`.
#[derive(Clone, Debug, Serialize)]
pub(crate) enum TxnResult {
    #[serde(rename = "KV")]
    Kv(DirEntry),
    Node(Box<catalog::Node>),
    Check(Box<catalog::Check>),
}

/// One error of a failed transaction.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct TxnErr {
    op_index: usize,
    what: String,
}

/// The answer to a transaction with writes.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TxnResponse {
    results: Option<Vec<TxnResult>>,
    errors: Option<Vec<TxnErr>>,
}

/// The answer to a read-only transaction, with its query metadata.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TxnReadResponse {
    results: Option<Vec<TxnResult>>,
    errors: Option<Vec<TxnErr>>,
    index: u64,
    last_contact: u64,
    known_leader: bool,
    consistency_level: &'static str,
    not_modified: bool,
    backend: u64,
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
            errs.push(TxnErr { op_index: i, what });
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
) -> Result<Vec<TxnResult>, String> {
    match &op.catalog {
        Some(Catalog::Get(Ok(r))) => return Ok(vec![r.clone()]),
        Some(Catalog::Get(Err(what)) | Catalog::BadVerb(what)) => return Err(what.clone()),
        Some(Catalog::Unsupported(what)) => return Err(what.clone()),
        None => {}
    }
    let q = go_quote(&op.key);
    let entry = || Entry::new(&op.key, op.value.clone(), op.flags, &op.session);
    let no_value = |e: Entry| vec![TxnResult::Kv(DirEntry::new(&e, false))];
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
            Some(e) => Ok(vec![TxnResult::Kv(DirEntry::new(e, true))]),
            None => Err(format!("key {q} doesn't exist")),
        },
        "get-tree" => Ok(kv
            .list(&op.key)
            .1
            .iter()
            .map(|e| TxnResult::Kv(DirEntry::new(e, true)))
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

/// The results the caller may read (Consul drops KV results its token cannot read).
fn filter_results(results: Vec<TxnResult>, authz: &Authz) -> Vec<TxnResult> {
    results
        .into_iter()
        .filter(|r| match r {
            TxnResult::Kv(e) => authz.key(&e.key, Need::Read),
            TxnResult::Node(_) | TxnResult::Check(_) => true,
        })
        .collect()
}

pub(crate) async fn handle(shared: &Shared, req: &Req) -> Answer {
    if req.method != Method::PUT {
        return Err(method_not_allowed(&req.method, &["PUT"]));
    }
    if req.body.len() > MAX_BODY {
        return Err(crate::req::too_large("/v1/txn", req.body.len()));
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
    let outcome: Result<Vec<TxnResult>, Vec<TxnErr>> = shared.write(|st| {
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
                Err(what) => errs.push(TxnErr { op_index: i, what }),
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
        Ok(r) => (200, Some(filter_results(r, &authz)), None),
        Err(e) => (409, None, Some(e)),
    };
    Ok(match meta {
        None => {
            let r = Resp::json(status, &TxnResponse { results, errors });
            if status == 200 {
                r.applied()
            } else {
                r
            }
        }
        Some(m) => Resp::json(
            status,
            &TxnReadResponse {
                results,
                errors,
                index: 1,
                last_contact: m.last_contact_ms,
                known_leader: m.known_leader,
                consistency_level: "",
                not_modified: false,
                backend: 0,
            },
        )
        .header(
            "X-Consul-KnownLeader",
            if m.known_leader { "true" } else { "false" },
        )
        .header("X-Consul-LastContact", m.last_contact_ms.to_string()),
    })
}
