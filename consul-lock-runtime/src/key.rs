//! Lock keys: validation, template rendering with escaping, and encoding for the URL path.
//!
//! Consul decodes `%2F` in a path to `/`, redirects `//`, and HTTP clients resolve `.` and `..`
//! segments before sending. A value placed into a key template must therefore stay inside its
//! segment: [`render`] escapes `/`, `%`, all-dot values and every character that Consul refuses
//! in a URL path (see [`consul_lock_syntax`]: controls, format characters such as U+202E,
//! non-ASCII spaces, private-use and unassigned code points) with percent-encoding *inside
//! the key itself* (a value `a/b` becomes the key text `a%2Fb`), and [`encode_path`]
//! percent-encodes the whole key again for the wire. The escaping is injective: two different
//! values never give the same key.
//!
//! ```
//! use consul_lock_runtime::key::{encode_path, escape_value, validate};
//!
//! let key = format!("reports/{}", escape_value("2024/05"));
//! assert_eq!(key, "reports/2024%2F05"); // the value stays one segment
//! assert!(validate(&key).is_ok());
//! assert_eq!(encode_path(&key), "reports/2024%252F05"); // on the wire
//! ```

use std::fmt::{self, Write as _};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::{Error, Result};

/// One piece of a key template: literal text, or a value to render with `Display` and escape.
///
/// ```
/// use consul_lock_runtime::key::{render, KeyPart};
///
/// let user_id = 42;
/// let key = render(
///     "send/user-<user_id>/welcome",
///     &[KeyPart::Literal("send/user-"), KeyPart::Value { name: "user_id", value: &user_id }, KeyPart::Literal("/welcome")],
/// )?;
/// assert_eq!(key, "send/user-42/welcome");
/// # Ok::<(), consul_lock_runtime::Error>(())
/// ```
#[derive(Clone, Copy)]
pub enum KeyPart<'a> {
    /// Text copied as it is (checked at compile time by the attribute).
    Literal(&'a str),
    /// A value rendered with `Display` and escaped so that it stays inside its segment.
    Value {
        /// The placeholder's name in the template, for error messages.
        name: &'a str,
        /// The value.
        value: &'a dyn fmt::Display,
    },
}

impl fmt::Debug for KeyPart<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyPart::Literal(text) => f.debug_tuple("Literal").field(text).finish(),
            KeyPart::Value { name, .. } => f.debug_struct("Value").field("name", name).finish(),
        }
    }
}

/// Renders a key template from its parts, escaping every value.
///
/// Escaping (inside the key): `/` → `%2F`, `%` → `%25`, a character Consul refuses in a URL
/// path (see [`consul_lock_syntax::is_path_safe`]) → its UTF-8 bytes as `%XX`, and a value made
/// only of dots → every dot as `%2E`. Everything else (the ASCII space, printable unicode, `?`,
/// `#`) is kept: the key is percent-encoded again on the wire.
///
/// # Errors
///
/// [`Error::InvalidKey`] when a value renders to an empty string (it would make `//`), naming
/// the template and the placeholder.
///
/// ```
/// use consul_lock_runtime::key::{render, KeyPart};
///
/// let path = "../etc/passwd";
/// let key = render("file/<path>", &[KeyPart::Literal("file/"), KeyPart::Value { name: "path", value: &path }])?;
/// assert_eq!(key, "file/..%2Fetc%2Fpasswd");
///
/// let empty = "";
/// let err = render("user/<id>", &[KeyPart::Literal("user/"), KeyPart::Value { name: "id", value: &empty }]).unwrap_err();
/// assert!(err.to_string().contains("<id>"));
/// # Ok::<(), consul_lock_runtime::Error>(())
/// ```
pub fn render(template: &str, parts: &[KeyPart<'_>]) -> Result<String> {
    let mut key = String::with_capacity(template.len() + 16);
    let mut scratch = String::new();
    for part in parts {
        match part {
            KeyPart::Literal(text) => key.push_str(text),
            KeyPart::Value { name, value } => {
                scratch.clear();
                // Writing into a String cannot fail unless the Display impl itself errors.
                if write!(scratch, "{value}").is_err() {
                    return Err(Error::InvalidKey {
                        key: template.to_owned(),
                        reason: format!("the value of <{name}> failed to format with Display"),
                    });
                }
                if scratch.is_empty() {
                    return Err(Error::InvalidKey {
                        key: template.to_owned(),
                        reason: format!(
                            "the value of <{name}> is empty, which would leave an empty key segment; \
                             pass a non-empty value"
                        ),
                    });
                }
                escape_value_into(&scratch, &mut key);
            }
        }
    }
    Ok(key)
}

/// Escapes one template value as described in [`render`].
///
/// ```
/// use consul_lock_runtime::key::escape_value;
/// assert_eq!(escape_value("a/b"), "a%2Fb");
/// assert_eq!(escape_value("100%"), "100%25");
/// assert_eq!(escape_value(".."), "%2E%2E");
/// assert_eq!(escape_value("ünïcode ok"), "ünïcode ok");
/// assert_eq!(escape_value("a\u{202E}b"), "a%E2%80%AEb"); // Consul refuses U+202E in a path
/// ```
#[must_use]
pub fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    escape_value_into(value, &mut out);
    out
}

fn escape_value_into(value: &str, out: &mut String) {
    if !value.is_empty() && value.bytes().all(|b| b == b'.') {
        for _ in 0..value.len() {
            out.push_str("%2E");
        }
        return;
    }
    for ch in value.chars() {
        match ch {
            '/' => out.push_str("%2F"),
            '%' => out.push_str("%25"),
            c if !consul_lock_syntax::is_path_safe(c) => {
                let mut buf = [0u8; 4];
                for byte in c.encode_utf8(&mut buf).bytes() {
                    // Infallible: writing to a String.
                    let _ = write!(out, "%{byte:02X}");
                }
            }
            c => out.push(c),
        }
    }
}

/// Checks a key for what Consul or the HTTP path would change: empty, a leading `/`, `//`,
/// `.` or `..` segments, characters that Consul refuses in a URL path (controls, format
/// characters, non-ASCII spaces, private-use or unassigned code points: see
/// [`consul_lock_syntax::is_path_safe`]).
///
/// # Errors
///
/// [`Error::InvalidKey`] saying what is wrong.
///
/// ```
/// use consul_lock_runtime::key::validate;
/// assert!(validate("jobs/nightly").is_ok());
/// assert!(validate("jobs//nightly").is_err());
/// assert!(validate("/jobs").is_err());
/// assert!(validate("jobs/../x").is_err());
/// assert!(validate("").is_err());
/// ```
pub fn validate(key: &str) -> Result<()> {
    check(key, Checked::Key)
}

/// Checks a key prefix as [`validate`] checks a key, except that a prefix may be empty (it
/// should end with `/` when it names a folder).
///
/// # Errors
///
/// [`Error::InvalidKey`] saying what is wrong.
///
/// ```
/// use consul_lock_runtime::key::validate_prefix;
/// assert!(validate_prefix("locks/").is_ok());
/// assert!(validate_prefix("").is_ok());
/// assert!(validate_prefix("/locks/").is_err());
/// ```
pub fn validate_prefix(prefix: &str) -> Result<()> {
    check(prefix, Checked::Prefix)
}

/// What [`check`] checks: a key must not be empty, a prefix may be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Checked {
    Key,
    Prefix,
}

fn check(key: &str, checked: Checked) -> Result<()> {
    let what = match checked {
        Checked::Key => "key",
        Checked::Prefix => "key prefix",
    };
    let fail = |reason: String| {
        Err(Error::InvalidKey {
            key: key.to_owned(),
            reason,
        })
    };
    if key.is_empty() {
        return if checked == Checked::Prefix {
            Ok(())
        } else {
            fail(format!(
                "the {what} is empty; give a non-empty key such as `jobs/nightly`"
            ))
        };
    }
    if key.starts_with('/') {
        return fail(format!(
            "the {what} starts with `/`; remove the leading slash"
        ));
    }
    if key.contains("//") {
        return fail(format!(
            "the {what} contains `//`, which Consul redirects to a different key; use single slashes"
        ));
    }
    if let Some((at, c)) = consul_lock_syntax::first_unsafe(key) {
        return fail(format!(
            "the {what} contains U+{:04X} at byte {at}, a character Consul refuses in a URL path \
             (it would answer 400 to every read of the key); remove it, or pass it through a \
             key template value, where it is escaped",
            u32::from(c)
        ));
    }
    let segments: Vec<&str> = key.split('/').collect();
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        if *segment == "." || *segment == ".." {
            return fail(format!(
                "the {what} has a `{segment}` segment, which HTTP clients resolve away; rename the segment"
            ));
        }
        if segment.is_empty() && i != last {
            return fail(format!("the {what} has an empty segment"));
        }
    }
    Ok(())
}

/// Characters left as they are in a URL path: unreserved characters and `/`.
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Percent-encodes a key for the URL path of `/v1/kv/<key>`: everything but unreserved
/// characters and `/` is encoded, so that Consul's single decode gives back the key exactly.
///
/// ```
/// use consul_lock_runtime::key::encode_path;
/// assert_eq!(encode_path("a%2Fb/with space?x"), "a%252Fb/with%20space%3Fx");
/// ```
#[must_use]
pub fn encode_path(key: &str) -> String {
    utf8_percent_encode(key, PATH).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn render_one(value: &str) -> Result<String> {
        render(
            "t/<v>/end",
            &[
                KeyPart::Literal("t/"),
                KeyPart::Value {
                    name: "v",
                    value: &value,
                },
                KeyPart::Literal("/end"),
            ],
        )
    }

    #[test]
    fn hostile_values_stay_in_their_segment() {
        for value in [
            "/",
            "%",
            ".",
            "..",
            "...",
            " ",
            "a b",
            "ünïcødé",
            "\0",
            "\u{202E}",
            "\u{A0}",
            "\u{E000}",
            "?acquire=x",
            "#",
            "a//b",
            "%2F",
        ] {
            let key = render_one(value).unwrap();
            let segments: Vec<&str> = key.split('/').collect();
            assert_eq!(segments.len(), 3, "{value:?} gave {key:?}");
            assert!(validate(&key).is_ok(), "{value:?} gave invalid {key:?}");
        }
        assert!(render_one("").is_err());
    }

    #[test]
    fn ten_kilobyte_value_renders() {
        let big = "x".repeat(10 * 1024);
        assert_eq!(render_one(&big).unwrap().len(), 10 * 1024 + 6);
    }

    proptest! {
        #[test]
        fn distinct_values_give_distinct_keys(a in "\\PC{1,12}|[./%]{1,4}", b in "\\PC{1,12}|[./%]{1,4}") {
            prop_assume!(a != b);
            prop_assert_ne!(render_one(&a).unwrap(), render_one(&b).unwrap());
        }

        #[test]
        fn values_never_leave_their_segment(v in any::<String>()) {
            prop_assume!(!v.is_empty());
            let key = render_one(&v).unwrap();
            prop_assert_eq!(key.split('/').count(), 3);
            prop_assert!(validate(&key).is_ok());
        }

        #[test]
        fn wire_encoding_round_trips(v in any::<String>()) {
            let encoded = encode_path(&v);
            let decoded = percent_encoding::percent_decode_str(&encoded).decode_utf8().unwrap();
            prop_assert_eq!(decoded, v);
        }
    }
}
