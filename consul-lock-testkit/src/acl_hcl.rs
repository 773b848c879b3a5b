//! The tokens of Consul's ACL rules in HCL (`key_prefix "locks/" { policy = "write" }`), as
//! far as [`AclToken::from_rules`](crate::AclToken::from_rules) reads them.

use crate::error::Error;

/// Splits `s` into quoted strings (kept with their opening quote), braces, `=` and words.
pub(crate) fn tokenize(s: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '{' || c == '}' || c == '=' {
            out.push(c.to_string());
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut v = String::from("\"");
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => {
                        if let Some(n) = chars.next() {
                            v.push(n);
                        }
                    }
                    Some(ch) => v.push(ch),
                    None => {
                        return Err(Error::Config(format!(
                            "ACL rules: unterminated string in {s:?}"
                        )))
                    }
                }
            }
            out.push(v);
        } else if c.is_alphanumeric() || c == '_' {
            let mut v = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_alphanumeric() || ch == '_' {
                    v.push(ch);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(v);
        } else {
            return Err(Error::Config(format!(
                "ACL rules: unexpected {c:?} in {s:?}"
            )));
        }
    }
    Ok(out)
}
