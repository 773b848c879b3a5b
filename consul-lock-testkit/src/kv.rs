//! The `/v1/kv/` endpoint: reads (single, `recurse`, `keys`, `raw`, blocking), writes
//! (`cas`, `flags`, `acquire`, `release`) and deletes (`recurse`, `cas`).

use std::time::Instant;

use hyper::Method;

use crate::acl::Need;
use crate::blocking;
use crate::go;
use crate::req::{query_opts, Req, MAX_BODY};
use crate::resp::{bool_resp, denied, method_not_allowed, Answer, Resp};
use crate::shared::Shared;
use crate::store::Entry;
use crate::wire::DirEntry;

pub(crate) async fn handle(shared: &Shared, req: &Req, key: &str) -> Answer {
    match req.method {
        Method::GET => get(shared, req, key).await,
        Method::PUT => put(shared, req, key).await,
        Method::DELETE => delete(shared, req, key).await,
        _ => Err(method_not_allowed(&req.method, &["GET", "PUT", "DELETE"])),
    }
}

fn missing_key() -> Resp {
    Resp::text(400, "Missing key name")
}

/// Consul's `conflictingFlags`: more than one of `flags` given is a 400 naming the query.
fn conflicting(req: &Req, flags: &[&str]) -> Result<(), Resp> {
    if flags.iter().filter(|k| req.has(k)).count() > 1 {
        return Err(Resp::text(
            400,
            format!("Conflicting flags: {}", req.encoded_query()),
        ));
    }
    Ok(())
}

/// A `?flags=` or `?cas=` value: Go's `strconv.ParseUint`, its error a 500 (as Consul's).
fn parse_u64(v: &str) -> Result<u64, Resp> {
    go::strconv::parse_uint(v).map_err(|e| Resp::text(500, e))
}

async fn get(shared: &Shared, req: &Req, key: &str) -> Answer {
    let qo = query_opts(req)?;
    shared.check_dc(req)?;
    let keys = req.has("keys");
    let recurse = req.has("recurse");
    if !keys && !recurse && key.is_empty() {
        return Err(missing_key());
    }
    let meta = shared.read_meta(&qo).await?;
    let authz = shared.authz(req)?;
    if keys {
        let sep = req.get("separator").unwrap_or("").to_string();
        let (idx, list) = blocking::query(shared, &qo, |st| {
            let (i, k) = st.kv.keys(key, &sep);
            (
                i,
                k.into_iter()
                    .filter(|k| authz.key(k, Need::Read))
                    .collect::<Vec<_>>(),
            )
        })
        .await;
        if list.is_empty() {
            return Ok(Resp::empty(404).meta(Some(idx), meta));
        }
        return Ok(Resp::json(200, &list).meta(Some(idx), meta));
    }
    if recurse {
        let (idx, list) = blocking::query(shared, &qo, |st| {
            let (i, v) = st.kv.list(key);
            (
                i,
                v.into_iter()
                    .filter(|e| authz.key(&e.key, Need::Read))
                    .collect::<Vec<_>>(),
            )
        })
        .await;
        if list.is_empty() {
            return Ok(Resp::empty(404).meta(Some(idx), meta));
        }
        return Ok(Resp::json(
            200,
            &list
                .iter()
                .map(|e| DirEntry::new(e, true))
                .collect::<Vec<_>>(),
        )
        .meta(Some(idx), meta));
    }
    if !authz.key(key, Need::Read) {
        return Err(denied());
    }
    let (idx, entry) = blocking::query(shared, &qo, |st| {
        let (i, e) = st.kv.get(key);
        (i, e.cloned())
    })
    .await;
    Ok(match entry {
        None => Resp::empty(404).meta(Some(idx), meta),
        Some(e) if req.has("raw") => Resp {
            status: 200,
            headers: vec![
                ("Content-Type", "text/plain".into()),
                // Consul's guard against a stored value being rendered as a page.
                ("Content-Security-Policy", "sandbox".into()),
                ("X-Content-Type-Options", "nosniff".into()),
            ],
            body: e.value,
            consul_headers: true,
            applied: false,
        }
        .meta(Some(idx), meta),
        Some(e) => Resp::json(200, &[DirEntry::new(&e, true)]).meta(Some(idx), meta),
    })
}

enum PutOp {
    Set,
    Cas(u64),
    Lock(String),
    Unlock(String),
}

async fn put(shared: &Shared, req: &Req, key: &str) -> Answer {
    if key.is_empty() {
        return Err(missing_key());
    }
    conflicting(req, &["cas", "acquire", "release"])?;
    let mut flags = 0;
    if let Some(f) = req.has("flags").then(|| req.get("flags").unwrap_or("")) {
        flags = parse_u64(f)?;
    }
    let mut op = PutOp::Set;
    if req.has("cas") {
        op = PutOp::Cas(parse_u64(req.get("cas").unwrap_or(""))?);
    }
    if req.has("acquire") {
        op = PutOp::Lock(req.get("acquire").unwrap_or("").to_string());
    }
    if req.has("release") {
        op = PutOp::Unlock(req.get("release").unwrap_or("").to_string());
    }
    if req.body.len() > MAX_BODY {
        return Err(crate::req::too_large("/v1/kv/", req.body.len()));
    }
    shared.check_dc(req)?;
    let authz = shared.write_access(req).await?;
    if !authz.key(key, Need::Write) {
        return Err(denied());
    }
    let value = req.body.to_vec();
    let now = Instant::now();
    let result: Result<bool, String> = shared.write(|st| {
        if let PutOp::Lock(_) = op {
            if st.lock_delay(key, now).is_some() {
                return Ok(false);
            }
        }
        let idx = st.next_index();
        match &op {
            PutOp::Set => {
                st.kv.set(idx, Entry::new(key, value, flags, ""), false);
                Ok(true)
            }
            PutOp::Cas(c) => Ok(st
                .kv
                .cas(idx, Entry::new(key, value, flags, ""), *c)
                .is_some()),
            PutOp::Lock(s) => {
                let sessions = &st.sessions;
                let mut kv = std::mem::take(&mut st.kv);
                let r = kv.lock(idx, Entry::new(key, value, flags, s), sessions);
                st.kv = kv;
                r.map(|o| o.is_some())
            }
            PutOp::Unlock(s) => st
                .kv
                .unlock(idx, Entry::new(key, value, flags, s))
                .map(|o| o.is_some()),
        }
    });
    match result {
        Ok(b) => Ok(bool_resp(b).applied()),
        Err(e) => Err(Resp::text(500, format!("raft apply failed: {e}"))),
    }
}

async fn delete(shared: &Shared, req: &Req, key: &str) -> Answer {
    conflicting(req, &["recurse", "cas"])?;
    let recurse = req.has("recurse");
    if !recurse && key.is_empty() {
        return Err(missing_key());
    }
    let mut cas = None;
    if req.has("cas") {
        cas = Some(parse_u64(req.get("cas").unwrap_or(""))?);
    }
    shared.check_dc(req)?;
    let authz = shared.write_access(req).await?;
    let allowed = if recurse && cas.is_none() {
        authz.key_write_prefix(key)
    } else {
        authz.key(key, Need::Write)
    };
    if !allowed {
        return Err(denied());
    }
    let ok = shared.write(|st| {
        let idx = st.next_index();
        match cas {
            Some(c) => st.kv.delete_cas(idx, key, c),
            None if recurse => {
                st.kv.delete_tree(idx, key);
                true
            }
            None => {
                st.kv.delete(idx, key);
                true
            }
        }
    });
    Ok(bool_resp(ok).applied())
}
