//! JSON as Consul writes it: Go's `json.MarshalIndent(v, "", "    ")` plus a trailing
//! newline. Values are serde types; [`GoFormatter`] gives them Go's indentation and Go's
//! string escaping (`<`, `>`, `&`, U+2028 and U+2029 as `\u003c`..., control characters
//! other than `\n`, `\r`, `\t` as `\u00XX`).

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter, PrettyFormatter};

/// A [`Formatter`] that writes what Go's `encoding/json` writes with a 4-space indent.
pub(crate) struct GoFormatter {
    pretty: PrettyFormatter<'static>,
}

impl GoFormatter {
    pub(crate) fn new() -> GoFormatter {
        GoFormatter {
            pretty: PrettyFormatter::with_indent(b"    "),
        }
    }
}

/// Writes `\u` and four lowercase hex digits, as Go's encoder does.
fn write_u_escape<W: ?Sized + io::Write>(w: &mut W, c: u32) -> io::Result<()> {
    write!(w, "\\u{c:04x}")
}

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // serde_json has escaped `"`, `\` and control characters already; Go also escapes
        // these so that JSON can be embedded in HTML and JavaScript.
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') {
                w.write_all(&fragment.as_bytes()[start..i])?;
                write_u_escape(w, c as u32)?;
                start = i + c.len_utf8();
            }
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        match escape {
            CharEscape::Quote => w.write_all(b"\\\""),
            CharEscape::ReverseSolidus => w.write_all(b"\\\\"),
            CharEscape::LineFeed => w.write_all(b"\\n"),
            CharEscape::CarriageReturn => w.write_all(b"\\r"),
            CharEscape::Tab => w.write_all(b"\\t"),
            // Go (before 1.22) has no short forms for these.
            CharEscape::Solidus => w.write_all(b"/"),
            CharEscape::Backspace => write_u_escape(w, 0x08),
            CharEscape::FormFeed => write_u_escape(w, 0x0c),
            CharEscape::AsciiControl(b) => write_u_escape(w, u32::from(b)),
        }
    }

    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.pretty.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.pretty.begin_object_key(w, first)
    }
    fn end_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_object_key(w)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.pretty.end_object_value(w)
    }
}

/// `v` as Consul prints it: Go's indented JSON with a trailing newline. The error is
/// serde's (a map with keys that are not strings, a failing `Serialize`).
pub(crate) fn to_go_pretty<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter::new());
    v.serialize(&mut ser)?;
    out.push(b'\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Sample {
        #[serde(rename = "ID")]
        id: &'static str,
        l: Vec<u64>,
        e: Vec<u64>,
        o: Option<u64>,
        m: std::collections::BTreeMap<String, String>,
    }

    #[test]
    fn go_indent_and_escapes() {
        let v = Sample {
            id: "a<b>&\u{2028}\u{2029}\"\\\n\r\t\u{1}\u{8}\u{c}\u{7f}/é",
            l: vec![1, 2],
            e: vec![],
            o: None,
            m: Default::default(),
        };
        assert_eq!(
            String::from_utf8(to_go_pretty(&v).unwrap()).unwrap(),
            "{\n    \"ID\": \"a\\u003cb\\u003e\\u0026\\u2028\\u2029\\\"\\\\\\n\\r\\t\\u0001\\u0008\\u000c\u{7f}/é\",\n    \"L\": [\n        1,\n        2\n    ],\n    \"E\": [],\n    \"O\": null,\n    \"M\": {}\n}\n"
        );
    }
}
