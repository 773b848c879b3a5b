//! Go's `unicode.IsPrint`, by a table generated from the Unicode database
//! (`printable_table.rs`).

use super::printable_table::PRINTABLE;

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
    }
}
