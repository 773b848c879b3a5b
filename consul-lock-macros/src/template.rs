//! Key templates: parsing and compile-time validation.
//!
//! A template such as `send/user-<user_id>/welcome-email` is a sequence of literal
//! parts and placeholders. A placeholder names a parameter (`<user_id>`), a field of a
//! parameter (`<job.id>`, `<pair.0>`) or a field of the receiver (`<self.tenant>`), and may
//! call methods without arguments at any step (`<order.customer_id()>`,
//! `<self.account().owner_id()>`): getters, for private fields (see `placeholder`).
//! The literal parts must keep the key well formed: no empty segment (`//`), no leading
//! or trailing `/`, no `.` or `..` segment and no character that Consul refuses in a URL
//! path (see `consul_lock_syntax`). Values are escaped at run time by the runtime's
//! `key::render`, so a value always stays inside its segment.

use crate::placeholder::{Placeholder, TemplateError};

/// A parsed key template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Template {
    /// The parts, in order. Two literals are never adjacent.
    pub(crate) parts: Vec<Part>,
}

/// One part of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    /// Text copied into the key as it is.
    Literal(String),
    /// A value rendered with `Display` and escaped at run time.
    Placeholder(Placeholder),
}

/// Parses and validates a key template.
pub(crate) fn parse(src: &str) -> Result<Template, TemplateError> {
    if src.is_empty() {
        return Err(TemplateError::new(
            "the key template is empty: give the lock a name, e.g. `key = \"jobs/<job_id>\"`",
            0..0,
        ));
    }
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut literal_start = 0;
    let mut iter = src.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        match c {
            '<' => {
                let mut end = None;
                for (j, d) in iter.by_ref() {
                    match d {
                        '>' => {
                            end = Some(j);
                            break;
                        }
                        '<' => {
                            return Err(TemplateError::new(
                                format!(
                                    "unclosed `<` at byte {i} of the key template: \
                                     close the placeholder with `>` before the next `<`"
                                ),
                                i..j,
                            ))
                        }
                        _ => {}
                    }
                }
                let Some(end) = end else {
                    return Err(TemplateError::new(
                        format!(
                            "unclosed `<` at byte {i} of the key template: \
                             close the placeholder with `>`, e.g. `<user_id>`"
                        ),
                        i..src.len(),
                    ));
                };
                if !literal.is_empty() {
                    check_literal(&literal, literal_start)?;
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                }
                parts.push(Part::Placeholder(crate::placeholder::parse(
                    &src[i + 1..end],
                    i..end + 1,
                )?));
                literal_start = end + 1;
            }
            '>' => {
                return Err(TemplateError::new(
                    format!(
                        "unmatched `>` at byte {i} of the key template: \
                         placeholders are written `<name>`"
                    ),
                    i..i + 1,
                ))
            }
            _ => {
                if literal.is_empty() {
                    literal_start = i;
                }
                literal.push(c);
            }
        }
    }
    if !literal.is_empty() {
        check_literal(&literal, literal_start)?;
        parts.push(Part::Literal(literal));
    }
    let template = Template { parts };
    check_segments(src, &template)?;
    Ok(template)
}

fn check_literal(literal: &str, start: usize) -> Result<(), TemplateError> {
    if let Some((i, c)) = consul_lock_syntax::first_unsafe(literal) {
        let at = start + i;
        let kind = if c.is_control() {
            "the control character"
        } else {
            "the character"
        };
        return Err(TemplateError::new(
            format!(
                "the key template contains {kind} U+{:04X} at byte {at}, which Consul refuses \
                 in a URL path (every read of the key would get 400); remove it, or pass it \
                 through a `<placeholder>` value, where it is escaped",
                u32::from(c)
            ),
            at..at + c.len_utf8(),
        ));
    }
    if let Some(i) = literal.find("//") {
        let at = start + i;
        return Err(TemplateError::new(
            format!(
                "the key template has an empty segment (`//`) at byte {at}: \
                 Consul redirects `//`, so remove one `/`"
            ),
            at..at + 2,
        ));
    }
    Ok(())
}

/// Checks the `/`-separated segments: no leading or trailing `/`, no `.` or `..`.
fn check_segments(src: &str, template: &Template) -> Result<(), TemplateError> {
    if src.starts_with('/') {
        return Err(TemplateError::new(
            "the key template starts with `/`: keys are relative to the configured prefix \
             (by default `locks/ephemeral/`), so remove the leading `/`",
            0..1,
        ));
    }
    if src.ends_with('/') {
        return Err(TemplateError::new(
            "the key template ends with `/`: a key ending in `/` names a folder in Consul's KV \
             store, so remove the trailing `/`",
            src.len() - 1..src.len(),
        ));
    }
    // Walk the segments; a segment made only of literal text must not be `.` or `..`.
    let mut offset = 0;
    let mut segment = String::new();
    let mut segment_start = 0;
    let mut has_value = false;
    let check = |segment: &str, has_value: bool, start: usize| {
        if !has_value && (segment == "." || segment == "..") {
            Err(TemplateError::new(
                format!(
                    "the key template has a `{segment}` segment at byte {start}: HTTP clients \
                     and proxies resolve dot segments, so name the segment differently"
                ),
                start..start + segment.len(),
            ))
        } else {
            Ok(())
        }
    };
    for part in &template.parts {
        match part {
            Part::Literal(text) => {
                for (i, c) in text.char_indices() {
                    if c == '/' {
                        check(&segment, has_value, segment_start)?;
                        segment.clear();
                        has_value = false;
                        segment_start = offset + i + 1;
                    } else {
                        segment.push(c);
                    }
                }
                offset += text.len();
            }
            Part::Placeholder(p) => {
                has_value = true;
                offset = p.range.end;
            }
        }
    }
    check(&segment, has_value, segment_start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placeholder::Access;

    fn lit(s: &str) -> Part {
        Part::Literal(s.to_owned())
    }

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
    fn literal_only() {
        let t = parse("jobs/nightly").unwrap();
        assert_eq!(t.parts, vec![lit("jobs/nightly")]);
    }

    #[test]
    fn placeholders_and_literals() {
        let t = parse("send/user-<user_id>/welcome-email").unwrap();
        assert_eq!(t.parts.len(), 3);
        assert_eq!(t.parts[0], lit("send/user-"));
        assert_eq!(t.parts[2], lit("/welcome-email"));
        match &t.parts[1] {
            Part::Placeholder(p) => {
                assert_eq!(p.root, "user_id");
                assert!(p.accesses.is_empty());
                assert_eq!(p.range, 10..19);
                assert_eq!(
                    &"send/user-<user_id>/welcome-email"[p.range.clone()],
                    "<user_id>"
                );
            }
            Part::Literal(_) => panic!("expected a placeholder"),
        }
    }

    #[test]
    fn fields_and_adjacent_placeholders() {
        let t = parse("<self.tenant>/<job.id><pair.0>").unwrap();
        assert_eq!(roots(&t), ["self.tenant", "job.id", "pair.0"]);
        assert_eq!(t.parts.len(), 4);
    }

    #[test]
    fn empty_template() {
        assert!(err("").message.contains("empty"));
    }

    #[test]
    fn empty_placeholder() {
        let e = err("a/<>/b");
        assert!(e.message.contains("empty placeholder"), "{}", e.message);
        assert_eq!(e.range, 2..4);
    }

    #[test]
    fn unclosed_placeholder() {
        let e = err("a/<user_id");
        assert!(e.message.contains("unclosed `<`"), "{}", e.message);
        assert_eq!(e.range, 2..10);
        assert!(err("a/<b<c>").message.contains("unclosed `<`"));
    }

    #[test]
    fn unmatched_close() {
        assert!(err("a/b>").message.contains("unmatched `>`"));
    }

    #[test]
    fn empty_segments() {
        let e = err("a//b");
        assert!(e.message.contains("`//`"), "{}", e.message);
        assert_eq!(e.range, 1..3);
        assert!(err("<a>//<b>").message.contains("`//`"));
    }

    #[test]
    fn leading_and_trailing_slash() {
        assert!(err("/a").message.contains("starts with `/`"));
        assert!(err("a/<b>/").message.contains("ends with `/`"));
    }

    #[test]
    fn dot_segments() {
        for src in [".", "..", "a/./b", "a/../b", "<x>/..", "../<x>"] {
            let e = err(src);
            assert!(e.message.contains("segment"), "{src}: {}", e.message);
        }
        // Dots next to a value or inside a longer segment are fine.
        for src in ["a/.<x>", "a/<x>..", "a/.../b", "v1.2/<x>", ".hidden"] {
            parse(src).unwrap_or_else(|e| panic!("{src}: {}", e.message));
        }
    }

    #[test]
    fn dot_segment_range() {
        let e = err("a/../b");
        assert_eq!(e.range, 2..4);
    }

    #[test]
    fn control_characters() {
        let e = err("a\nb");
        assert!(e.message.contains("U+000A"), "{}", e.message);
        assert_eq!(e.range, 1..2);
        assert!(err("<x>\t").message.contains("U+0009"));
    }

    #[test]
    fn characters_consul_refuses_in_a_path() {
        for (src, code) in [
            ("a\u{202E}b", "U+202E"),
            ("a\u{A0}b", "U+00A0"),
            ("x/\u{E000}", "U+E000"),
        ] {
            let e = err(src);
            assert!(e.message.contains(code), "{}", e.message);
            assert!(e.message.contains("400"), "{}", e.message);
        }
        assert!(parse("日本/<x>/ü").is_ok());
    }

    #[test]
    fn unicode_is_kept() {
        let t = parse("café/<x>").unwrap();
        assert_eq!(t.parts[0], lit("café/"));
    }
}
