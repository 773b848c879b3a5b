//! Go's `strconv.ParseUint` with its error texts.

use super::quote::quote;

/// Go's `strconv.ParseUint(v, 10, 64)`: no sign allowed; the error is Go's text
/// (`strconv.ParseUint: parsing "x": invalid syntax`).
pub(crate) fn parse_uint(v: &str) -> Result<u64, String> {
    let parsed = if v.starts_with('+') {
        None
    } else {
        v.parse::<u64>().ok()
    };
    parsed.ok_or_else(|| {
        let why = if v.is_empty() || v.bytes().any(|b| !b.is_ascii_digit()) {
            "invalid syntax"
        } else {
            "value out of range"
        };
        format!("strconv.ParseUint: parsing {}: {why}", quote(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_go() {
        assert_eq!(parse_uint("42"), Ok(42));
        assert_eq!(
            parse_uint("+1"),
            Err("strconv.ParseUint: parsing \"+1\": invalid syntax".into())
        );
        assert_eq!(
            parse_uint("99999999999999999999"),
            Err("strconv.ParseUint: parsing \"99999999999999999999\": value out of range".into())
        );
    }
}
