//! A JSON document as Go's decoder walks it: an object's members in document order,
//! duplicates included. Go's decoder assigns members one after the other (the last one naming
//! a field wins) and, on a type error, records the first and reads on; walking this form in
//! order finds the same error.

use serde_json::{Map, Number, Value};

use super::json_syntax::go_syntax_check;

/// One JSON value, objects kept as their members in document order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Doc {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Doc>),
    Object(Vec<(String, Doc)>),
}

impl Doc {
    /// The value as [`super::json_decode::decode_go`] gives it: of members whose keys differ
    /// only in ASCII case, the last one is kept.
    pub(crate) fn to_value(&self) -> Value {
        match self {
            Doc::Null => Value::Null,
            Doc::Bool(b) => Value::Bool(*b),
            Doc::Number(n) => Value::Number(n.clone()),
            Doc::String(s) => Value::String(s.clone()),
            Doc::Array(a) => Value::Array(a.iter().map(Doc::to_value).collect()),
            Doc::Object(members) => {
                let mut out = Map::new();
                for (k, v) in members {
                    out.retain(|old, _| !old.eq_ignore_ascii_case(k));
                    out.insert(k.clone(), v.to_value());
                }
                Value::Object(out)
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for Doc {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Doc, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Doc;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, b: bool) -> Result<Doc, E> {
                Ok(Doc::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Doc, E> {
                Ok(Doc::Number(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Doc, E> {
                Ok(Doc::Number(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Doc, E> {
                Ok(Number::from_f64(n).map_or(Doc::Null, Doc::Number))
            }
            fn visit_str<E>(self, s: &str) -> Result<Doc, E> {
                Ok(Doc::String(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> Result<Doc, E> {
                Ok(Doc::String(s))
            }
            fn visit_unit<E>(self) -> Result<Doc, E> {
                Ok(Doc::Null)
            }
            fn visit_none<E>(self) -> Result<Doc, E> {
                Ok(Doc::Null)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Doc, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = a.next_element::<Doc>()? {
                    out.push(v);
                }
                Ok(Doc::Array(out))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Doc, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Doc>()? {
                    out.push((k, v));
                }
                Ok(Doc::Object(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Decodes the first JSON value of a body as Go's decoder reads it (its syntax errors as
/// Go words them), keeping every object's members in document order.
pub(crate) fn decode_go_ordered(body: &[u8]) -> Result<Doc, String> {
    let end = go_syntax_check(body)?;
    let slice = &body[..end];
    serde_json::from_slice::<Doc>(slice)
        .or_else(|_| serde_json::from_str::<Doc>(&String::from_utf8_lossy(slice)))
        .map_err(|e| e.to_string())
}

/// Go's decoder's error bookkeeping (`saveError`): the first error is kept, later ones are
/// dropped, decoding reads on.
#[derive(Debug, Default)]
pub(crate) struct FirstError(Option<String>);

impl FirstError {
    /// Records `e` unless an earlier error was recorded.
    pub(crate) fn save(&mut self, e: String) {
        self.0.get_or_insert(e);
    }

    /// Records the error of `r`, if any, and gives its value.
    pub(crate) fn check<T>(&mut self, r: Result<T, String>) -> Option<T> {
        r.map_err(|e| self.save(e)).ok()
    }

    /// The first error recorded.
    pub(crate) fn into_result(self) -> Result<(), String> {
        self.0.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_document_order_and_duplicates() {
        let d = decode_go_ordered(br#"{"b":1,"a":[{"z":null,"Z":2}],"b":3}"#).unwrap();
        let Doc::Object(m) = &d else { unreachable!() };
        let keys: Vec<&str> = m.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b", "a", "b"]);
        assert_eq!(d.to_value(), serde_json::json!({"a":[{"Z":2}],"b":3}));
        let mut first = FirstError::default();
        first.save("one".into());
        assert_eq!(first.check::<u8>(Err("two".into())), None);
        assert_eq!(first.into_result(), Err("one".into()));
    }
}
