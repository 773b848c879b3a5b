//! Go's `net/url`: strict percent-decoding, `url.ParseQuery`, `url.QueryEscape`, the path
//! escaping of a URL built from a decoded path, and `url.Values.Encode`.

/// Go's `url.QueryEscape`.
pub(crate) fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Go's path escaping for a URL built from a decoded path.
pub(crate) fn path_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'$'
            | b'&'
            | b'+'
            | b','
            | b'/'
            | b':'
            | b';'
            | b'='
            | b'@' => out.push(b as char),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Decodes `%XX` escapes strictly, as Go's URL parser (an invalid escape is an error).
pub(crate) fn percent_decode_strict(s: &str, plus_is_space: bool) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(h).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Go's `url.ParseQuery`, skipping pairs that do not decode.
pub(crate) fn parse_query(q: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in q.split('&') {
        if part.is_empty() || part.contains(';') {
            continue;
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let (Some(k), Some(v)) = (
            percent_decode_strict(k, true),
            percent_decode_strict(v, true),
        ) else {
            continue;
        };
        out.push((
            String::from_utf8_lossy(&k).into_owned(),
            String::from_utf8_lossy(&v).into_owned(),
        ));
    }
    out
}

/// Go's `url.Values.Encode()`: the pairs sorted by key (stable), each escaped.
pub(crate) fn encode_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<&(String, String)> = query.iter().collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_and_queries() {
        assert_eq!(percent_decode_strict("a%2Fb", false).unwrap(), b"a/b");
        assert!(percent_decode_strict("a%zz", false).is_none());
        assert_eq!(
            parse_query("recurse&separator=/&x=a+b"),
            vec![
                ("recurse".to_string(), String::new()),
                ("separator".into(), "/".into()),
                ("x".into(), "a b".into())
            ]
        );
        let q = parse_query("b=1&a=x y&cas=%2B");
        assert_eq!(encode_query(&q), "a=x+y&b=1&cas=%2B");
        assert_eq!(path_escape("/v1/kv/a b?"), "/v1/kv/a%20b%3F");
    }
}
