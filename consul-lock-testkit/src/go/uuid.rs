//! go-memdb's UUID index check (`uuid.ParseUUID`), with its error texts.

use super::printable::is_print;

/// go-memdb's UUID index check, with its texts.
pub(crate) fn check_uuid(s: &str) -> Result<(), String> {
    if s.len() != 36 {
        return Err("UUID must be 36 characters".into());
    }
    let hyphens = s.matches('-').count();
    if hyphens > 4 {
        return Err(format!(
            "UUID should have maximum of 4 \"-\"; got {hyphens}"
        ));
    }
    let clean: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
    if clean.len() % 2 != 0 {
        return Err("Input (without hyphens) must be even length".into());
    }
    if let Some(b) = clean.iter().find(|b| !b.is_ascii_hexdigit()) {
        // Go's `%#U`: the character follows in single quotes, unescaped, when printable.
        let c = char::from(*b);
        let shown = if is_print(c) {
            format!(" '{c}'")
        } else {
            String::new()
        };
        return Err(format!(
            "Invalid UUID: encoding/hex: invalid byte: U+{b:04X}{shown}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts() {
        assert_eq!(check_uuid("x"), Err("UUID must be 36 characters".into()));
        assert!(check_uuid("7e1f4b2c-0000-4000-8000-00000000c0de").is_ok());
        assert_eq!(
            check_uuid("7e1f4b2c-0000-4000-8000-00000000c0dz"),
            Err("Invalid UUID: encoding/hex: invalid byte: U+007A 'z'".into())
        );
        assert_eq!(
            check_uuid("7e1f4b2c-0000-4000-8000-00000000c0d\""),
            Err("Invalid UUID: encoding/hex: invalid byte: U+0022 '\"'".into())
        );
        assert_eq!(
            check_uuid("7e1f4b2c-0000-4000-8000-00000000c0d\u{1}"),
            Err("Invalid UUID: encoding/hex: invalid byte: U+0001".into())
        );
    }
}
