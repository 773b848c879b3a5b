//! Go's quoting of strings and bytes in error texts: `strconv.Quote` (`%q`), and the JSON
//! scanner's `quoteChar` for the offending byte of a syntax error.

use super::printable::is_print;

/// Go's `strconv.Quote` (`%q`): `"` and `\` escaped, runes `unicode.IsPrint` accepts kept,
/// the others escaped as Go does (`\a \b \f \n \r \t \v`, `\xNN` below U+0020 and for
/// U+007F, `\uNNNN`, `\UNNNNNNNN` above the Basic Multilingual Plane).
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if is_print(c) => out.push(c),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c => {
                let n = c as u32;
                if n < 0x20 || n == 0x7f {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n < 0x10000 {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

/// Go's `encoding/json` `quoteChar`: a byte of a syntax error message in single quotes.
pub(crate) fn quote_char(c: u8) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_as_go() {
        assert_eq!(
            quote("a\"b\\c\n\u{1}\u{85}é"),
            "\"a\\\"b\\\\c\\n\\x01\\u0085é\""
        );
        assert_eq!(
            quote("rlo\u{202e}x/\u{a0}\u{7f}\u{7}\u{f0000}中"),
            "\"rlo\\u202ex/\\u00a0\\x7f\\a\\U000f0000中\""
        );
        assert_eq!(quote_char(b'x'), "'x'");
        assert_eq!(quote_char(b'\''), "'\\''");
        assert_eq!(quote_char(0x01), "'\\x01'");
    }
}
