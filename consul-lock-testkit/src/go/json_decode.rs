//! Decoding request bodies as Go's `encoding/json` does: only the first value counts,
//! object members whose keys differ only in ASCII case name the same struct field (the last
//! one wins), fields match case-insensitively, and type errors name Go's JSON kinds.

use super::json_syntax::go_syntax_check;
use super::quote::quote;

/// Decodes the first JSON value of a body the way Go's decoder would accept it. Members of
/// an object whose keys differ only in ASCII case name the same Go struct field, which keeps
/// the last one: only that one is kept.
pub(crate) fn decode_go(body: &[u8]) -> Result<serde_json::Value, String> {
    let end = go_syntax_check(body)?;
    let slice = &body[..end];
    match serde_json::from_slice::<GoValue>(slice) {
        Ok(v) => Ok(v.0),
        Err(_) => {
            let lossy = String::from_utf8_lossy(slice);
            serde_json::from_str::<GoValue>(&lossy)
                .map(|v| v.0)
                .map_err(|e| e.to_string())
        }
    }
}

/// A JSON value read with Go's rule for duplicate members (see [`decode_go`]).
pub(crate) struct GoValue(pub serde_json::Value);

impl<'de> serde::Deserialize<'de> for GoValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<GoValue, D::Error> {
        use serde_json::Value;
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = GoValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, b: bool) -> Result<GoValue, E> {
                Ok(GoValue(Value::Bool(b)))
            }
            fn visit_i64<E>(self, n: i64) -> Result<GoValue, E> {
                Ok(GoValue(Value::from(n)))
            }
            fn visit_u64<E>(self, n: u64) -> Result<GoValue, E> {
                Ok(GoValue(Value::from(n)))
            }
            fn visit_f64<E>(self, n: f64) -> Result<GoValue, E> {
                Ok(GoValue(
                    serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number),
                ))
            }
            fn visit_str<E>(self, s: &str) -> Result<GoValue, E> {
                Ok(GoValue(Value::String(s.to_string())))
            }
            fn visit_string<E>(self, s: String) -> Result<GoValue, E> {
                Ok(GoValue(Value::String(s)))
            }
            fn visit_unit<E>(self) -> Result<GoValue, E> {
                Ok(GoValue(Value::Null))
            }
            fn visit_none<E>(self) -> Result<GoValue, E> {
                Ok(GoValue(Value::Null))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<GoValue, A::Error> {
                let mut out = Vec::new();
                while let Some(GoValue(v)) = a.next_element::<GoValue>()? {
                    out.push(v);
                }
                Ok(GoValue(Value::Array(out)))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<GoValue, A::Error> {
                let mut out = serde_json::Map::new();
                while let Some((k, GoValue(v))) = m.next_entry::<String, GoValue>()? {
                    out.retain(|old, _| !old.eq_ignore_ascii_case(&k));
                    out.insert(k, v);
                }
                Ok(GoValue(Value::Object(out)))
            }
        }
        d.deserialize_any(V)
    }
}

/// The members of a JSON object in document order, duplicates kept (Go's decoder assigns
/// them one after the other, so the last one naming a field wins).
pub(crate) struct Pairs(pub Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Pairs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Pairs, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Pairs, A::Error> {
                let mut out = Vec::new();
                while let Some((k, GoValue(v))) = m.next_entry::<String, GoValue>()? {
                    out.push((k, v));
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A decoded body: an object's members in document order, or any other value.
pub(crate) enum GoDoc {
    Object(Pairs),
    Other(serde_json::Value),
}

/// Decodes the first JSON value of a body as Go would, keeping an object's member order.
pub(crate) fn decode_go_doc(body: &[u8]) -> Result<GoDoc, String> {
    let v = decode_go(body)?;
    if !v.is_object() {
        return Ok(GoDoc::Other(v));
    }
    let end = go_syntax_check(body)?;
    let slice = &body[..end];
    let pairs = serde_json::from_slice::<Pairs>(slice)
        .or_else(|_| serde_json::from_str::<Pairs>(&String::from_utf8_lossy(slice)))
        .map_err(|e| e.to_string())?;
    Ok(GoDoc::Object(pairs))
}

/// Go's name for the JSON kind of a value in "cannot unmarshal X into ..." errors.
pub(crate) fn go_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// Looks a field up case-insensitively, as Go's decoder matches struct fields.
pub(crate) fn field<'a>(
    obj: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Option<&'a serde_json::Value> {
    // Go prefers an exact match, then a case-insensitive one; the last duplicate wins.
    if let Some(v) = obj.get(name) {
        return Some(v);
    }
    obj.iter()
        .rev()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Go's `UnmarshalTypeError` text for a JSON value `v` whose kind cannot go into a field
/// (`field` as Go names it: `Struct.Field`, or `.Field` in an anonymous struct) of Go type
/// `ty`.
pub(crate) fn field_type_error(v: &serde_json::Value, field: &str, ty: &str) -> String {
    format!(
        "json: cannot unmarshal {} into Go struct field {field} of type {ty}",
        go_kind(v)
    )
}

/// Go's `UnmarshalTypeError` text for a number out of the range of a field's type (Go
/// names the number itself).
pub(crate) fn field_range_error(n: &serde_json::Number, field: &str, ty: &str) -> String {
    format!("json: cannot unmarshal number {n} into Go struct field {field} of type {ty}")
}

/// Go's `UnmarshalTypeError` text for a whole value (not a struct field) of Go type `ty`.
pub(crate) fn value_type_error(v: &serde_json::Value, ty: &str) -> String {
    format!(
        "json: cannot unmarshal {} into Go value of type {ty}",
        go_kind(v)
    )
}

/// Go's error for a member that names no field, when unknown fields are refused
/// (`DisallowUnknownFields`).
pub(crate) fn unknown_field_error(name: &str) -> String {
    format!("json: unknown field {}", quote(name))
}

/// Go's decoding into a `uint64` field: `null` leaves it (0 here), a non-negative integer
/// fits; the error is Go's text for `field` (as [`field_type_error`] names it).
pub(crate) fn decode_uint64(v: &serde_json::Value, field: &str) -> Result<u64, String> {
    match v {
        serde_json::Value::Null => Ok(0),
        serde_json::Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| field_range_error(n, field, "uint64")),
        v => Err(field_type_error(v, field, "uint64")),
    }
}

/// Go's decoding of a JSON array into a `[]elem` of strings that already holds `old`:
/// element `i` decoded from `null` keeps the old element `i` (or `""` past its end); `null`
/// for the whole array makes it nil (`None`). The error is Go's text for `field`.
pub(crate) fn decode_string_slice(
    v: &serde_json::Value,
    field: &str,
    elem: &str,
    old: &[&str],
) -> Result<Option<Vec<String>>, String> {
    use serde_json::Value;
    match v {
        Value::Null => Ok(None),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Null => Ok(old.get(i).map(|d| d.to_string()).unwrap_or_default()),
                v => Err(field_type_error(v, field, elem)),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        v => Err(field_type_error(v, field, &format!("[]{elem}"))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn go_error_texts() {
        assert_eq!(
            field_type_error(&json!("x"), ".TTL", "int"),
            "json: cannot unmarshal string into Go struct field .TTL of type int"
        );
        assert_eq!(
            field_type_error(&json!(1), ".Name", "string"),
            "json: cannot unmarshal number into Go struct field .Name of type string"
        );
        let serde_json::Value::Number(n) = json!(-1) else {
            unreachable!()
        };
        assert_eq!(
            field_range_error(&n, "KVTxnOp.KV.Flags", "uint64"),
            "json: cannot unmarshal number -1 into Go struct field KVTxnOp.KV.Flags of type uint64"
        );
        assert_eq!(
            value_type_error(&json!([]), "api.TxnOp"),
            "json: cannot unmarshal array into Go value of type api.TxnOp"
        );
        assert_eq!(unknown_field_error("X"), "json: unknown field \"X\"");
        assert_eq!(
            decode_string_slice(&json!([null, "b", null]), ".C", "string", &["a"]),
            Ok(Some(vec!["a".into(), "b".into(), String::new()]))
        );
        assert_eq!(
            decode_string_slice(&json!([1]), ".C", "types.CheckID", &[]),
            Err(
                "json: cannot unmarshal number into Go struct field .C of type types.CheckID"
                    .into()
            )
        );
        assert_eq!(
            decode_string_slice(&json!("x"), ".C", "string", &[]),
            Err("json: cannot unmarshal string into Go struct field .C of type []string".into())
        );
        assert_eq!(decode_uint64(&json!(null), ".I"), Ok(0));
        assert_eq!(decode_uint64(&json!(7), ".I"), Ok(7));
        assert_eq!(
            decode_uint64(&json!(1.5), ".I"),
            Err("json: cannot unmarshal number 1.5 into Go struct field .I of type uint64".into())
        );
    }
}
