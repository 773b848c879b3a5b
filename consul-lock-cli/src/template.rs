//! Keys given as the attribute's template (`send/user-<user_id>/welcome-email`) with
//! `--set user_id=42`: rendered by the runtime's `key::render`, so that values are escaped
//! exactly as the application escapes them (`a/b` becomes `a%2Fb`).

use consul_lock_runtime::key::{render, KeyPart};

use crate::exit::{Failure, USAGE};

/// One `--set NAME=VALUE`.
pub type Assignment = (String, String);

/// Parses `NAME=VALUE` (clap's value parser for `--set`).
pub fn parse_assignment(text: &str) -> Result<Assignment, String> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!(
            "`{text}` is not NAME=VALUE; write it like `--set user_id=42` for a key `send/user-<user_id>/…`"
        )),
    }
}

enum Piece<'a> {
    Literal(&'a str),
    Placeholder(&'a str),
}

fn pieces(template: &str) -> Result<Vec<Piece<'_>>, Failure> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('<') {
        if open > 0 {
            out.push(Piece::Literal(&rest[..open]));
        }
        let after = &rest[open + 1..];
        let close = after.find('>').ok_or_else(|| {
            Failure::new(
                USAGE,
                format!(
                    "key `{template}` has a `<` without its `>`; write placeholders as `<name>`"
                ),
            )
        })?;
        let name = after[..close].trim();
        if name.is_empty() || name.contains('<') {
            return Err(Failure::new(
                USAGE,
                format!("key `{template}` has an empty or nested placeholder; write `<name>`"),
            ));
        }
        out.push(Piece::Placeholder(name));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Literal(rest));
    }
    Ok(out)
}

/// The key for `template` with `values` put in its placeholders; a key without placeholders
/// is returned as it is (and then no `--set` may be given).
pub fn expand(template: &str, values: &[Assignment]) -> Result<String, Failure> {
    let pieces = pieces(template)?;
    let value_of = |name: &str| values.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v);
    let missing: Vec<&str> = pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Placeholder(name) if value_of(name).is_none() => Some(*name),
            _ => None,
        })
        .collect();
    if !missing.is_empty() {
        let sets: Vec<String> = missing.iter().map(|n| format!("--set {n}=VALUE")).collect();
        return Err(Failure::new(
            USAGE,
            format!(
                "key `{template}` has placeholders without values: give {}",
                sets.join(" ")
            ),
        ));
    }
    if let Some((unused, _)) = values.iter().find(|(n, _)| {
        !pieces
            .iter()
            .any(|p| matches!(p, Piece::Placeholder(name) if name == n))
    }) {
        return Err(Failure::new(
            USAGE,
            format!("--set {unused}=…: key `{template}` has no placeholder `<{unused}>`"),
        ));
    }
    let values: Vec<(&str, &String)> = pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Placeholder(name) => value_of(name).map(|v| (*name, v)),
            Piece::Literal(_) => None,
        })
        .collect();
    let mut next_value = values.iter();
    let parts: Vec<KeyPart<'_>> = pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Literal(text) => Some(KeyPart::Literal(text)),
            Piece::Placeholder(_) => next_value.next().map(|(name, value)| KeyPart::Value {
                name,
                value: *value as &dyn std::fmt::Display,
            }),
        })
        .collect();
    Ok(render(template, &parts)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, value: &str) -> Assignment {
        (name.to_owned(), value.to_owned())
    }

    #[test]
    fn templates_render_as_the_library_renders_them() {
        let key = "send/user-<user_id>/welcome-email";
        assert_eq!(
            expand(key, &[set("user_id", "42")]).unwrap(),
            "send/user-42/welcome-email"
        );
        assert_eq!(
            expand("files/<path>", &[set("path", "a/b")]).unwrap(),
            "files/a%2Fb"
        );
        assert_eq!(
            expand(
                "<order.id>-<kind>",
                &[set("order.id", "7"), set("kind", "x")]
            )
            .unwrap(),
            "7-x"
        );
        assert_eq!(expand("plain/key", &[]).unwrap(), "plain/key");
    }

    #[test]
    fn mistakes_say_what_to_write() {
        let missing = expand("send/user-<user_id>/x", &[]).unwrap_err();
        assert!(
            missing.message.contains("give --set user_id=VALUE"),
            "{}",
            missing.message
        );
        let unused = expand("plain", &[set("user_id", "1")]).unwrap_err();
        assert!(unused.message.contains("no placeholder `<user_id>`"));
        assert!(expand("a/<b", &[])
            .unwrap_err()
            .message
            .contains("without its `>`"));
        assert!(expand("a/<>", &[]).is_err());
        assert!(
            expand("a/<id>", &[set("id", "")]).is_err(),
            "empty values are refused"
        );
        assert!(parse_assignment("user_id").is_err());
        assert_eq!(parse_assignment("a=b=c").unwrap(), set("a", "b=c"));
    }
}
