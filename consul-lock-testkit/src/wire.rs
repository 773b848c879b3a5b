//! The JSON shapes the KV and session endpoints answer with, field for field and in
//! Consul's order (`structs.DirEntry`, `structs.Session`), printed by [`crate::go::json`].

use serde::Serialize;

use crate::go;
use crate::store::{Entry, Session};

/// A KV entry as Consul prints it (`structs.DirEntry`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DirEntry {
    lock_index: u64,
    /// The key (read by the transaction endpoint to filter results by ACL).
    pub key: String,
    flags: u64,
    /// Base64, or `null` for an empty value and for writes' answers.
    value: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    session: String,
    create_index: u64,
    modify_index: u64,
}

impl DirEntry {
    /// `e` as Consul prints it; the value only when `with_value` (reads, not writes).
    pub(crate) fn new(e: &Entry, with_value: bool) -> DirEntry {
        DirEntry {
            lock_index: e.lock_index,
            key: e.key.clone(),
            flags: e.flags,
            value: (with_value && !e.value.is_empty()).then(|| go::base64::encode(&e.value)),
            session: e.session.clone(),
            create_index: e.create_index,
            modify_index: e.modify_index,
        }
    }
}

/// A session as Consul prints it (`structs.Session`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SessionJson<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    name: &'a str,
    node: &'a str,
    lock_delay: i64,
    behavior: &'static str,
    #[serde(rename = "TTL")]
    ttl: &'a str,
    node_checks: Option<&'a [String]>,
    service_checks: Option<Vec<ServiceCheck<'a>>>,
    create_index: u64,
    modify_index: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceCheck<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    namespace: &'static str,
}

impl<'a> SessionJson<'a> {
    pub(crate) fn new(s: &'a Session) -> SessionJson<'a> {
        SessionJson {
            id: &s.id,
            name: &s.name,
            node: &s.node,
            lock_delay: s.lock_delay_ns,
            behavior: if s.behavior_delete {
                "delete"
            } else {
                "release"
            },
            ttl: &s.ttl,
            node_checks: s.node_checks.as_deref(),
            service_checks: s.service_checks.as_ref().map(|ids| {
                ids.iter()
                    .map(|id| ServiceCheck { id, namespace: "" })
                    .collect()
            }),
            create_index: s.create_index,
            modify_index: s.modify_index,
        }
    }
}

/// The answer to a session create: `{"ID": ...}`.
#[derive(Debug, Serialize)]
pub(crate) struct SessionId<'a> {
    #[serde(rename = "ID")]
    pub id: &'a str,
}

/// An empty JSON object, `{}` (a Go map or struct with nothing in it).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Empty {}
