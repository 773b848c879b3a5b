//! Decoding a transaction body as Consul does: Go's JSON rules (first value only, fields
//! matched case-insensitively, unknown fields refused), its type errors, and the cap on the
//! number of operations.

use serde_json::Value;

use super::catalog::{catalog_op, field_str, Catalog};
use crate::config::ServerConfig;
use crate::go::json_decode::{
    decode_uint64, field, field_range_error, field_type_error, unknown_field_error,
    value_type_error,
};
use crate::go::json_doc::{decode_go_ordered, Doc, FirstError};
use crate::resp::Resp;

/// One operation of a transaction: a KV operation, or a catalog read of something the test
/// server does not hold (it registers no catalog), which fails as in Consul.
#[derive(Debug, Clone)]
pub(super) struct KvOp {
    /// Set for a catalog operation (`Node`, `Service`, `Check`): its result or error.
    pub catalog: Option<Catalog>,
    pub verb: String,
    pub key: String,
    pub value: Vec<u8>,
    pub flags: u64,
    pub index: u64,
    pub session: String,
}

pub(super) fn is_write(verb: &str) -> bool {
    matches!(
        verb,
        "set" | "delete" | "delete-cas" | "delete-tree" | "cas" | "lock" | "unlock"
    )
}

fn parse_err(m: impl std::fmt::Display) -> Resp {
    Resp::text(400, format!("Failed to parse body: {m}"))
}

/// The members of an operation's `KV` object as decoded so far.
#[derive(Default)]
struct KvFields {
    verb: String,
    key: String,
    value: Vec<u8>,
    flags: u64,
    index: u64,
    session: String,
}

const KV_FIELDS: [&str; 7] = [
    "Verb",
    "Key",
    "Value",
    "Flags",
    "Index",
    "Session",
    "Namespace",
];

/// The struct field a member names, as Go matches it (exact, else ignoring ASCII case).
fn field_name(key: &str, fields: &[&'static str]) -> Option<&'static str> {
    fields
        .iter()
        .find(|f| **f == key)
        .or_else(|| fields.iter().find(|f| f.eq_ignore_ascii_case(key)))
        .copied()
}

/// Go's decoding of a `[]byte` field: `null` empties it, a string is base64, an array holds
/// the bytes as numbers.
fn decode_bytes(v: &Doc, path: &str, first: &mut FirstError) -> Vec<u8> {
    match v {
        Doc::Null => Vec::new(),
        Doc::String(b64) => first
            .check(crate::go::base64::decode(b64))
            .unwrap_or_default(),
        Doc::Array(items) => items
            .iter()
            .map(|item| match item {
                Doc::Null => 0,
                Doc::Number(n) => {
                    let b = n.as_u64().and_then(|n| u8::try_from(n).ok());
                    first
                        .check(b.ok_or_else(|| field_range_error(n, path, "uint8")))
                        .unwrap_or(0)
                }
                d => {
                    first.save(field_type_error(&d.to_value(), path, "uint8"));
                    0
                }
            })
            .collect(),
        d => {
            first.save(field_type_error(&d.to_value(), path, "[]uint8"));
            Vec::new()
        }
    }
}

/// Decodes a `KV` object's members, in document order, into `kv`.
fn decode_kv(members: &[(String, Doc)], kv: &mut KvFields, first: &mut FirstError) {
    for (k, v) in members {
        let Some(name) = field_name(k, &KV_FIELDS) else {
            first.save(unknown_field_error(k));
            continue;
        };
        let path = format!("KVTxnOp.KV.{name}");
        match name {
            "Value" => kv.value = decode_bytes(v, &path, first),
            "Flags" | "Index" => {
                if *v == Doc::Null {
                    continue;
                }
                if let Some(n) = first.check(decode_uint64(&v.to_value(), &path)) {
                    if name == "Flags" {
                        kv.flags = n;
                    } else {
                        kv.index = n;
                    }
                }
            }
            _ => match v {
                // `null` leaves a string field as it was.
                Doc::Null => {}
                Doc::String(s) => match name {
                    "Verb" => kv.verb = s.clone(),
                    "Key" => kv.key = s.clone(),
                    "Session" => kv.session = s.clone(),
                    _ => {}
                },
                d => first.save(field_type_error(&d.to_value(), &path, "string")),
            },
        }
    }
}

/// Decodes one operation; `None` for an operation that does nothing.
fn decode_op(
    members: &[(String, Doc)],
    config: &ServerConfig,
    first: &mut FirstError,
) -> Option<KvOp> {
    let mut kv: Option<KvFields> = None;
    let mut catalog: [Option<Value>; 3] = [None, None, None];
    const OP_FIELDS: [&str; 4] = ["KV", "Node", "Service", "Check"];
    for (k, v) in members {
        match field_name(k, &OP_FIELDS) {
            None => first.save(unknown_field_error(k)),
            Some("KV") => match v {
                Doc::Null => kv = None,
                // A second `KV` member decodes into the same struct, as Go's pointer does.
                Doc::Object(m) => decode_kv(m, kv.get_or_insert_with(Default::default), first),
                d => first.save(field_type_error(&d.to_value(), "TxnOp.KV", "api.KVTxnOp")),
            },
            Some(name) => {
                let i = OP_FIELDS.iter().position(|f| *f == name).unwrap_or(1) - 1;
                catalog[i] = Some(v.to_value());
            }
        }
    }
    if let Some(kv) = kv {
        return Some(KvOp {
            catalog: None,
            verb: kv.verb,
            key: kv.key,
            value: kv.value,
            flags: kv.flags,
            index: kv.index,
            session: kv.session,
        });
    }
    // The first catalog member present decides; an empty operation does nothing.
    let (kind, op) = ["Node", "Service", "Check"]
        .into_iter()
        .zip(catalog.iter())
        .find_map(|(k, v)| match v {
            Some(Value::Object(o)) => Some((k, o)),
            _ => None,
        })?;
    let verb = field_str(field(op, "Verb"));
    Some(KvOp {
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
    })
}

/// Decodes a transaction body as Consul does (Go's decoder into `api.TxnOps`, unknown fields
/// refused): the error is the first one in document order, as Go's decoder records it.
pub(super) fn parse_ops(body: &[u8], config: &ServerConfig) -> Result<Vec<KvOp>, Resp> {
    let items = match decode_go_ordered(body).map_err(parse_err)? {
        Doc::Array(a) => a,
        Doc::Null => Vec::new(),
        d => return Err(parse_err(value_type_error(&d.to_value(), "api.TxnOps"))),
    };
    let mut first = FirstError::default();
    let mut ops = Vec::with_capacity(items.len());
    for item in &items {
        match item {
            Doc::Object(members) => ops.extend(decode_op(members, config, &mut first)),
            d => first.save(value_type_error(&d.to_value(), "api.TxnOp")),
        }
    }
    first.into_result().map_err(parse_err)?;
    let max_ops = config.txn_max_ops;
    if items.len() > max_ops {
        return Err(Resp::text(
            413,
            format!(
                "Transaction contains too many operations ({} > {max_ops})",
                items.len()
            ),
        ));
    }
    Ok(ops)
}
