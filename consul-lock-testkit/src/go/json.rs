//! JSON as Consul writes it: an ordered value type printed like Go's
//! `json.MarshalIndent(v, "", "    ")` plus a trailing newline.

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

#[cfg(test)]
mod tests {
    use super::*;

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
