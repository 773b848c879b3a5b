//! JSON as Consul writes and reads it: an ordered value type printed like Go's
//! `json.MarshalIndent(v, "", "    ")` plus a trailing newline, and a syntax checker that
//! reports errors with the texts of Go's `encoding/json` decoder.

use std::fmt::Write as _;

/// A JSON value whose object fields keep the order they were built in (Consul's field order).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum J {
    Null,
    Bool(bool),
    U(u64),
    I(i64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(&'static str, J)>),
}

impl J {
    pub(crate) fn str(s: impl Into<String>) -> J {
        J::Str(s.into())
    }

    /// Go-style indented output with a trailing newline.
    pub(crate) fn to_go_pretty(&self) -> String {
        let mut out = String::new();
        write_value(&mut out, self, 0);
        out.push('\n');
        out
    }
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("    ");
    }
}

fn write_value(out: &mut String, v: &J, level: usize) {
    match v {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::U(n) => {
            let _ = write!(out, "{n}");
        }
        J::I(n) => {
            let _ = write!(out, "{n}");
        }
        J::Str(s) => write_go_string(out, s),
        J::Arr(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                indent(out, level + 1);
                write_value(out, item, level + 1);
                if i + 1 < items.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            indent(out, level);
            out.push(']');
        }
        J::Obj(fields) => {
            if fields.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push_str("{\n");
            for (i, (k, item)) in fields.iter().enumerate() {
                indent(out, level + 1);
                write_go_string(out, k);
                out.push_str(": ");
                write_value(out, item, level + 1);
                if i + 1 < fields.len() {
                    out.push(',');
                }
                out.push('\n');
            }
            indent(out, level);
            out.push('}');
        }
    }
}

/// Writes a string the way Go's encoder does (HTML-safe escapes, `\u2028`/`\u2029`).
pub(crate) fn write_go_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's `quoteChar` for a byte in a syntax error message.
fn quote_char(c: u8) -> String {
    match c {
        b'\'' => "'\\''".to_string(),
        b'"' => "'\"'".to_string(),
        b'\n' => "'\\n'".to_string(),
        b'\r' => "'\\r'".to_string(),
        b'\t' => "'\\t'".to_string(),
        0x07 => "'\\a'".to_string(),
        0x08 => "'\\b'".to_string(),
        0x0c => "'\\f'".to_string(),
        0x0b => "'\\v'".to_string(),
        c if c < 0x20 || c == 0x7f => format!("'\\x{c:02x}'"),
        c if (0x80..0xa0).contains(&c) || c == 0xad => format!("'\\u{c:04x}'"),
        c => format!("'{}'", char::from(c)),
    }
}

/// Checks that `input` starts with one syntactically valid JSON value, as Go's streaming
/// `json.Decoder` does (data after the first value is ignored). On success returns the
/// length of the value; on failure the error text Go would give.
pub(crate) fn go_syntax_check(input: &[u8]) -> Result<usize, String> {
    let mut p = Parser { s: input, i: 0 };
    p.ws();
    if p.i >= p.s.len() {
        return Err("EOF".into());
    }
    p.value(0)?;
    Ok(p.i)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

const EOF: &str = "unexpected EOF";

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn bad(&self, c: u8, ctx: &str) -> String {
        format!("invalid character {} {ctx}", quote_char(c))
    }
    fn value(&mut self, depth: usize) -> Result<(), String> {
        if depth > 10000 {
            return Err("exceeded max depth".into());
        }
        let c = self.peek().ok_or(EOF)?;
        match c {
            b'{' => {
                self.i += 1;
                self.ws();
                if self.peek().ok_or(EOF)? == b'}' {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    let c = self.peek().ok_or(EOF)?;
                    if c != b'"' {
                        return Err(self.bad(c, "looking for beginning of object key string"));
                    }
                    self.string()?;
                    self.ws();
                    let c = self.peek().ok_or(EOF)?;
                    if c != b':' {
                        return Err(self.bad(c, "after object key"));
                    }
                    self.i += 1;
                    self.ws();
                    self.value(depth + 1)?;
                    self.ws();
                    let c = self.peek().ok_or(EOF)?;
                    match c {
                        b',' => {
                            self.i += 1;
                            self.ws();
                        }
                        b'}' => {
                            self.i += 1;
                            return Ok(());
                        }
                        c => return Err(self.bad(c, "after object key:value pair")),
                    }
                }
            }
            b'[' => {
                self.i += 1;
                self.ws();
                if self.peek().ok_or(EOF)? == b']' {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.value(depth + 1)?;
                    self.ws();
                    let c = self.peek().ok_or(EOF)?;
                    match c {
                        b',' => {
                            self.i += 1;
                            self.ws();
                        }
                        b']' => {
                            self.i += 1;
                            return Ok(());
                        }
                        c => return Err(self.bad(c, "after array element")),
                    }
                }
            }
            b'"' => self.string(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            c => Err(self.bad(c, "looking for beginning of value")),
        }
    }
    fn literal(&mut self, lit: &[u8]) -> Result<(), String> {
        let name = String::from_utf8_lossy(lit).into_owned();
        for (k, want) in lit.iter().enumerate() {
            let c = self.peek().ok_or(EOF)?;
            if c != *want {
                return Err(format!(
                    "invalid character {} in literal {name} (expecting {})",
                    quote_char(c),
                    quote_char(*want)
                ));
            }
            let _ = k;
            self.i += 1;
        }
        Ok(())
    }
    fn string(&mut self) -> Result<(), String> {
        self.i += 1; // opening quote
        loop {
            let c = self.peek().ok_or(EOF)?;
            self.i += 1;
            match c {
                b'"' => return Ok(()),
                b'\\' => {
                    let e = self.peek().ok_or(EOF)?;
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            for _ in 0..4 {
                                let h = self.peek().ok_or(EOF)?;
                                if !h.is_ascii_hexdigit() {
                                    return Err(self.bad(h, "in \\u hexadecimal character escape"));
                                }
                                self.i += 1;
                            }
                        }
                        e => return Err(self.bad(e, "in string escape code")),
                    }
                }
                c if c < 0x20 => return Err(self.bad(c, "in string literal")),
                _ => {}
            }
        }
    }
    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
    }
    fn number(&mut self) -> Result<(), String> {
        if self.peek() == Some(b'-') {
            self.i += 1;
            let c = self.peek().ok_or(EOF)?;
            if !c.is_ascii_digit() {
                return Err(self.bad(c, "in numeric literal"));
            }
        }
        if self.peek() == Some(b'0') {
            self.i += 1;
        } else {
            self.digits();
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            let c = self.peek().ok_or(EOF)?;
            if !c.is_ascii_digit() {
                return Err(self.bad(c, "after decimal point in numeric literal"));
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            let c = self.peek().ok_or(EOF)?;
            if !c.is_ascii_digit() {
                return Err(self.bad(c, "in exponent of numeric literal"));
            }
            self.digits();
        }
        // A number at the very end of the stream is complete only for a top-level value,
        // which the decoder accepts; inside containers the caller reports the EOF.
        Ok(())
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_errors() {
        assert_eq!(
            go_syntax_check(b"not json").unwrap_err(),
            "invalid character 'o' in literal null (expecting 'u')"
        );
        assert_eq!(
            go_syntax_check(b"{\"TTL\": ").unwrap_err(),
            "unexpected EOF"
        );
        assert_eq!(go_syntax_check(b"").unwrap_err(), "EOF");
        assert_eq!(
            go_syntax_check(b"{x").unwrap_err(),
            "invalid character 'x' looking for beginning of object key string"
        );
        assert_eq!(go_syntax_check(b"[1,2] trailing").unwrap(), 5);
    }

    #[test]
    fn go_pretty() {
        let v = J::Obj(vec![
            ("ID", J::str("a<b")),
            ("L", J::Arr(vec![J::U(1)])),
            ("E", J::Arr(vec![])),
        ]);
        assert_eq!(
            v.to_go_pretty(),
            "{\n    \"ID\": \"a\\u003cb\",\n    \"L\": [\n        1\n    ],\n    \"E\": []\n}\n"
        );
    }
}
