//! One `<...>` placeholder of a key template: a parameter or `self`, then fields, tuple
//! indices and methods called without arguments (getters), e.g. `<self.account().owner_id()>`.

use std::ops::Range;

/// A template error, with the byte range in the template it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TemplateError {
    /// What is wrong and how to fix it.
    pub(crate) message: String,
    /// Byte range in the template (may be empty for "at the end").
    pub(crate) range: Range<usize>,
}

impl TemplateError {
    pub(crate) fn new(message: impl Into<String>, range: Range<usize>) -> Self {
        TemplateError {
            message: message.into(),
            range,
        }
    }
}

/// A `<...>` placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placeholder {
    /// The text between `<` and `>`, e.g. `self.tenant`.
    pub(crate) text: String,
    /// The name the path starts with: a parameter or `self`.
    pub(crate) root: String,
    /// What follows the root, in order: fields and argument-less method calls.
    pub(crate) accesses: Vec<Access>,
    /// Byte range of the whole placeholder (`<` to `>`) in the template.
    pub(crate) range: Range<usize>,
}

impl Placeholder {
    /// The root without `r#`: the key of [`crate::func::parameter_names`].
    pub(crate) fn root_name(&self) -> &str {
        self.root.strip_prefix("r#").unwrap_or(&self.root)
    }
}

/// One step after a placeholder's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Access {
    /// `.name` or `.0`.
    Field(String),
    /// `.name()`: a method called without arguments (a getter).
    Method(String),
}

/// Parses the text between `<` and `>`; `range` is the placeholder's, for errors.
pub(crate) fn parse(text: &str, range: Range<usize>) -> Result<Placeholder, TemplateError> {
    if text.is_empty() {
        return Err(TemplateError::new(
            "empty placeholder `<>` in the key template: name a parameter, e.g. `<user_id>`",
            range,
        ));
    }
    let error = |message: String| TemplateError::new(message, range.clone());
    let mut segments = split_path(text).into_iter();
    let root = segments.next().unwrap_or_default();
    if !is_identifier(root) {
        let message = if root.contains('(') {
            format!(
                "`<{text}>` in the key template: a placeholder starts with a parameter name \
                 or `self`, not a call; call methods on it, e.g. `<order.customer_id()>`"
            )
        } else {
            format!(
                "`<{text}>` in the key template: a placeholder is a parameter name, \
                 optionally followed by fields and methods without arguments (`<param>`, \
                 `<param.field>`, `<self.field>`, `<param.getter()>`)"
            )
        };
        return Err(error(message));
    }
    let mut accesses = Vec::new();
    for segment in segments {
        accesses.push(parse_access(segment).map_err(|why| {
            error(match why {
                BadAccess::Arguments { method } => format!(
                    "`<{text}>` in the key template: `{segment}` passes arguments to \
                     `{method}`, and a placeholder may only call methods without arguments \
                     (`<order.customer_id()>`); compute the value before the call and pass \
                     it as a parameter"
                ),
                BadAccess::Other => format!(
                    "`<{text}>` in the key template: `{segment}` is not a field name or a \
                     method call (fields are identifiers or tuple indices, methods take no \
                     arguments: `<job.id>`, `<pair.0>`, `<job.owner_id()>`)"
                ),
            })
        })?);
    }
    Ok(Placeholder {
        text: text.to_owned(),
        root: root.to_owned(),
        accesses,
        range,
    })
}

/// Splits `a.b(x.y).c` at the dots outside parentheses: `a`, `b(x.y)`, `c`.
fn split_path(text: &str) -> Vec<&str> {
    let mut segments = Vec::new();
    let (mut depth, mut start) = (0_usize, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '.' if depth == 0 => {
                segments.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    segments.push(&text[start..]);
    segments
}

/// Why a segment after the root is refused.
enum BadAccess {
    /// A method call with arguments.
    Arguments { method: String },
    /// Anything else that is not a field, a tuple index or `name()`.
    Other,
}

/// One segment after the root: `field`, `0` or `method()` (spaces allowed inside `()`).
fn parse_access(segment: &str) -> Result<Access, BadAccess> {
    let Some((name, rest)) = segment.split_once('(') else {
        return if (is_identifier(segment) || is_index(segment)) && segment != "self" {
            Ok(Access::Field(segment.to_owned()))
        } else {
            Err(BadAccess::Other)
        };
    };
    let Some(inside) = rest.strip_suffix(')') else {
        return Err(BadAccess::Other);
    };
    // The parentheses must be one balanced pair: `f(a)(b)` and `f(a))` are not calls.
    let mut depth = 0_i32;
    for c in inside.chars() {
        depth += match c {
            '(' => 1,
            ')' => -1,
            _ => 0,
        };
        if depth < 0 {
            return Err(BadAccess::Other);
        }
    }
    if depth != 0 || !is_identifier(name) || name == "self" {
        return Err(BadAccess::Other);
    }
    if inside.trim().is_empty() {
        Ok(Access::Method(name.to_owned()))
    } else {
        Err(BadAccess::Arguments {
            method: name.to_owned(),
        })
    }
}

fn is_identifier(s: &str) -> bool {
    let s = s.strip_prefix("r#").unwrap_or(s);
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c == '_' || c.is_ascii_alphabetic() => {}
        _ => return false,
    }
    s != "_" && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

fn is_index(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'))
        && s.parse::<u32>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::{parse, Part, Template};

    fn roots(t: &Template) -> Vec<String> {
        t.parts
            .iter()
            .filter_map(|p| match p {
                Part::Placeholder(p) => Some(
                    std::iter::once(p.root.clone())
                        .chain(p.accesses.iter().map(|a| match a {
                            Access::Field(f) => f.clone(),
                            Access::Method(m) => format!("{m}()"),
                        }))
                        .collect::<Vec<_>>()
                        .join("."),
                ),
                Part::Literal(_) => None,
            })
            .collect()
    }

    fn err(src: &str) -> TemplateError {
        parse(src).expect_err(src)
    }

    #[test]
    fn getters_at_any_depth() {
        let t = parse(
            "<order.customer_id()>/<self.account().owner_id()>/<order.items.first_id()>/<p.0.f()>",
        )
        .unwrap();
        assert_eq!(
            roots(&t),
            [
                "order.customer_id()",
                "self.account().owner_id()",
                "order.items.first_id()",
                "p.0.f()"
            ]
        );
        match &t.parts[2] {
            Part::Placeholder(p) => assert_eq!(
                p.accesses,
                [
                    Access::Method("account".into()),
                    Access::Method("owner_id".into())
                ]
            ),
            Part::Literal(_) => panic!("expected a placeholder"),
        }
        // The placeholder's text (its name in run-time errors) is kept as written.
        let t = parse("k/<a.r#type( )>").unwrap();
        match &t.parts[1] {
            Part::Placeholder(p) => {
                assert_eq!(p.text, "a.r#type( )");
                assert_eq!(p.accesses, [Access::Method("r#type".into())]);
            }
            Part::Literal(_) => panic!("expected a placeholder"),
        }
    }

    #[test]
    fn getters_take_no_arguments() {
        for (src, segment) in [
            ("<a.f(1)>", "`f(1)` passes arguments to `f`"),
            ("<a.f(x.y)>", "`f(x.y)` passes arguments to `f`"),
            ("<self.g().f(1, 2)>", "`f(1, 2)` passes arguments to `f`"),
            ("<a.f(g())>", "`f(g())` passes arguments to `f`"),
        ] {
            let e = err(src);
            assert!(e.message.contains(segment), "{src}: {}", e.message);
            assert!(
                e.message
                    .contains("may only call methods without arguments (`<order.customer_id()>`)"),
                "{src}: {}",
                e.message
            );
        }
    }

    #[test]
    fn malformed_calls() {
        for src in [
            "<a.f(>",
            "<a.f)>",
            "<a.f()()>",
            "<a.f())>",
            "<a.()>",
            "<a.0()>",
            "<a.self()>",
            "<a.f ()>",
            "<a.f().>",
            "<a.f()x>",
        ] {
            let e = err(src);
            assert!(
                e.message.contains("is not a field name or a method call"),
                "{src}: {}",
                e.message
            );
        }
        for src in ["<f()>", "<self()>", "<f().x>"] {
            let e = err(src);
            assert!(e.message.contains("not a call"), "{src}: {}", e.message);
        }
    }

    #[test]
    fn bad_placeholder_names() {
        for src in [
            "<1>", "<a b>", "<a.>", "<.a>", "<a..b>", "<a-b>", "<_>", "<a.self>", "<a.01>",
        ] {
            let e = err(src);
            assert!(
                e.message.contains("in the key template"),
                "{src}: {}",
                e.message
            );
        }
    }

    #[test]
    fn raw_identifiers_are_names() {
        let t = parse("k/<r#type>").unwrap();
        assert_eq!(roots(&t), ["r#type"]);
    }
}
