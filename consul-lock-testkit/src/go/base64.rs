//! Go's `encoding/base64` (standard alphabet, padded) as `encoding/json` decodes a `[]byte`.

use ::base64::Engine as _;

/// Decodes standard base64; the error is Go's text (`illegal base64 data at input byte N`).
pub(crate) fn decode(s: &str) -> Result<Vec<u8>, String> {
    ::base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|e| {
            let at = match e {
                ::base64::DecodeError::InvalidByte(i, _) => i,
                ::base64::DecodeError::InvalidLength(i) => i,
                ::base64::DecodeError::InvalidLastSymbol(i, _) => i,
                ::base64::DecodeError::InvalidPadding => 0,
            };
            format!("illegal base64 data at input byte {at}")
        })
}

/// Encodes standard base64, as Go's `encoding/json` writes a `[]byte`.
pub(crate) fn encode(b: &[u8]) -> String {
    ::base64::engine::general_purpose::STANDARD.encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        assert_eq!(decode(&encode(b"hi")).unwrap(), b"hi");
        assert_eq!(
            decode("aGk*").unwrap_err(),
            "illegal base64 data at input byte 3"
        );
    }
}
