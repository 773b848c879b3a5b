//! Decoding a transaction body as Consul does: Go's JSON rules (first value only, fields
//! matched case-insensitively, unknown fields refused), its type errors, and the cap on the
//! number of operations.

use serde_json::Value;

use super::catalog::{catalog_op, field_str, Catalog};
use crate::config::ServerConfig;
use crate::go::json_decode::{
    decode_go, decode_uint64, field, field_type_error, unknown_field_error, value_type_error,
};
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

fn type_err(v: &Value, path: &str, ty: &str) -> Resp {
    parse_err(field_type_error(v, path, ty))
}

pub(super) fn parse_ops(body: &[u8], config: &ServerConfig) -> Result<Vec<KvOp>, Resp> {
    let v = decode_go(body).map_err(parse_err)?;
    let arr = match v {
        Value::Array(a) => a,
        Value::Null => Vec::new(),
        v => return Err(parse_err(value_type_error(&v, "api.TxnOps"))),
    };
    let mut ops = Vec::with_capacity(arr.len());
    for item in arr.iter() {
        let obj = match item {
            Value::Object(o) => o,
            v => return Err(parse_err(value_type_error(v, "api.TxnOp"))),
        };
        // Consul decodes the operations strictly: an unknown member is a 400.
        if let Some(k) = obj.keys().find(|k| {
            !["KV", "Node", "Service", "Check"]
                .iter()
                .any(|f| k.eq_ignore_ascii_case(f))
        }) {
            return Err(parse_err(unknown_field_error(k)));
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
            return Err(parse_err(unknown_field_error(k)));
        }
        let s = |name: &str| -> Result<String, Resp> {
            match field(kv, name) {
                None | Some(Value::Null) => Ok(String::new()),
                Some(Value::String(s)) => Ok(s.clone()),
                Some(v) => Err(type_err(v, &format!("KVTxnOp.KV.{name}"), "string")),
            }
        };
        let n = |name: &str| -> Result<u64, Resp> {
            let v = field(kv, name).unwrap_or(&Value::Null);
            decode_uint64(v, &format!("KVTxnOp.KV.{name}")).map_err(parse_err)
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
