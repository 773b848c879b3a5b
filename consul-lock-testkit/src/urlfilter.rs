//! Consul's URL filter: a request whose decoded URL path holds a rune that Go's
//! `unicode.IsPrint` rejects is answered 400 with an empty body, before any handler (and
//! before Go's path-cleaning redirects). Only the path is checked, not the query. Bytes that
//! are not UTF-8 count as U+FFFD, which is printable (a symbol), as when Go ranges over a
//! string.

use crate::printable_table::PRINTABLE;

/// Go's `unicode.IsPrint` (by the generated table).
pub(crate) fn is_print(c: char) -> bool {
    let cp = c as u32;
    PRINTABLE
        .binary_search_by(|&(lo, hi)| {
            if hi < cp {
                std::cmp::Ordering::Less
            } else if lo > cp {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Whether Consul refuses this decoded path.
pub(crate) fn refuses(decoded_path: &[u8]) -> bool {
    String::from_utf8_lossy(decoded_path)
        .chars()
        .any(|c| !is_print(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_is_print() {
        for c in ['a', ' ', '~', 'é', '\u{fffd}', '€', '中', '\u{0301}'] {
            assert!(is_print(c), "{c:?} is printable");
        }
        for c in [
            '\0',
            '\t',
            '\n',
            '\u{7f}',
            '\u{a0}',
            '\u{ad}',
            '\u{200b}',
            '\u{202e}',
            '\u{2003}',
            '\u{3000}',
            '\u{e000}',
            '\u{378}',
            '\u{10ffff}',
        ] {
            assert!(!is_print(c), "{c:?} is not printable");
        }
        assert!(refuses("/v1/kv/a\u{202e}b".as_bytes()));
        assert!(!refuses(b"/v1/kv/a\xffb"));
    }
}
