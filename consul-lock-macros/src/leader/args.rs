//! The options of `#[leader(name = "...", ...)]`, named like the lock attribute's.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, Ident, LitStr, Path};

use crate::args::{
    already_set, expect_int, expect_str, parse_options, Value, LOCK_TIMEOUT_MAX, LOCK_TIMEOUT_MIN,
};
use crate::suggest::did_you_mean;

/// The options, in the order the docs list them.
pub(crate) const OPTIONS: &[&str] = &[
    "name",
    "key",
    "lock_timeout_seconds",
    "grace_ms",
    "value",
    "client",
    "crate",
];

/// The election's default TTL in seconds (the runtime's `DEFAULT_ELECTION_TTL`).
const DEFAULT_TTL_SECONDS: u64 = 15;

/// The parsed options; `None`: the runtime's default.
#[derive(Default)]
pub(crate) struct LeaderArgs {
    /// `name = "..."` (required).
    pub(crate) name: Option<LitStr>,
    /// `key = "..."`: the whole leader key.
    pub(crate) key: Option<LitStr>,
    /// `lock_timeout_seconds = N`: the lease (session TTL).
    pub(crate) lock_timeout_seconds: Option<(u64, Span)>,
    /// `grace_ms = N`.
    pub(crate) grace_ms: Option<(u64, Span)>,
    /// `value = <expr>`.
    pub(crate) value: Option<Expr>,
    /// `client = <expr>`.
    pub(crate) client: Option<Expr>,
    /// `crate = "path"`.
    pub(crate) krate: Option<Path>,
}

impl LeaderArgs {
    /// The path of the hidden module generated code calls.
    pub(crate) fn private_path(&self) -> TokenStream {
        match &self.krate {
            Some(path) => quote::quote!(#path::__private),
            None => quote::quote!(::consul_lock::__private),
        }
    }

    fn set(&mut self, name: &Ident, value: Value) -> syn::Result<()> {
        let name_str = name.unraw().to_string();
        match name_str.as_str() {
            "name" | "key" => {
                let lit = expect_str(name, value, &format!("{name_str} = \"scheduler\""))?;
                check_name(&lit, &name_str)?;
                let slot = if name_str == "name" {
                    &mut self.name
                } else {
                    &mut self.key
                };
                if slot.is_some() {
                    return Err(already_set(name));
                }
                *slot = Some(lit);
            }
            "lock_timeout_seconds" => {
                let v = expect_int(
                    name,
                    value,
                    LOCK_TIMEOUT_MIN,
                    LOCK_TIMEOUT_MAX,
                    "seconds: the session TTLs Consul accepts",
                )?;
                if self.lock_timeout_seconds.is_some() {
                    return Err(already_set(name));
                }
                self.lock_timeout_seconds = Some(v);
            }
            "grace_ms" => {
                let v = expect_int(
                    name,
                    value,
                    0,
                    LOCK_TIMEOUT_MAX * 1000 / 3,
                    "milliseconds, at most a third of the lock timeout",
                )?;
                if self.grace_ms.is_some() {
                    return Err(already_set(name));
                }
                self.grace_ms = Some(v);
            }
            "value" | "client" => {
                let Value::Expr(expr) = value else {
                    return Err(syn::Error::new(
                        name.span(),
                        format!(
                            "`{name_str}` needs a value: {}",
                            if name_str == "value" {
                                "an expression giving the leader's value (a `String` or `&str`), e.g. `value = self.address()`"
                            } else {
                                "an expression giving the `consul_lock::Client`, e.g. `client = self.consul`"
                            }
                        ),
                    ));
                };
                let slot = if name_str == "value" {
                    &mut self.value
                } else {
                    &mut self.client
                };
                if slot.is_some() {
                    return Err(already_set(name));
                }
                *slot = Some(expr);
            }
            "crate" => {
                let lit = expect_str(name, value, "crate = \"consul_lock\"")?;
                let path: Path = lit.parse().map_err(|_| {
                    syn::Error::new(
                        lit.span(),
                        format!(
                            "`crate = {:?}` is not a path, e.g. `crate = \"consul_lock\"`",
                            lit.value()
                        ),
                    )
                })?;
                if self.krate.is_some() {
                    return Err(already_set(name));
                }
                self.krate = Some(path);
            }
            _ => {
                let mut message = format!("unknown option `{name_str}`");
                if let Some(close) = did_you_mean(&name_str, OPTIONS.iter().copied()) {
                    message.push_str(&format!(" (did you mean `{close}`?)"));
                }
                message.push_str(": expected one of ");
                message.push_str(&list());
                return Err(syn::Error::new(name.span(), message));
            }
        }
        Ok(())
    }

    /// Checks what the options say together: a grace of at most a third of the TTL.
    fn check(&self) -> syn::Result<()> {
        if let Some((grace, span)) = self.grace_ms {
            let ttl = self
                .lock_timeout_seconds
                .map_or(DEFAULT_TTL_SECONDS, |(t, _)| t);
            let max = ttl * 1000 / 3;
            if grace > max {
                return Err(syn::Error::new(
                    span,
                    format!(
                        "`grace_ms = {grace}` is more than a third of the lock timeout ({ttl} s): \
                         the work would be told to stop before the renewal at half the lease; \
                         give at most {max}, or a longer `lock_timeout_seconds`"
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn list() -> String {
    OPTIONS
        .iter()
        .map(|o| format!("`{o}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A name or key that Consul's key rules refuse is an error at the literal.
fn check_name(lit: &LitStr, what: &str) -> syn::Result<()> {
    let value = lit.value();
    let problem = if value.is_empty() {
        Some("is empty")
    } else if value.starts_with('/') {
        Some("starts with `/`")
    } else if value.ends_with('/') {
        Some("ends with `/`")
    } else if value.contains("//") {
        Some("has an empty segment (`//`)")
    } else if value.split('/').any(|s| s == "." || s == "..") {
        Some("has a `.` or `..` segment")
    } else if value.contains('<') || value.contains('>') {
        Some("has a placeholder: an election's name is fixed, not a template")
    } else if value.chars().any(char::is_control) {
        Some("has a control character")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(syn::Error::new(
            lit.span(),
            format!("the election's `{what}` {value:?} {problem}"),
        )),
        None => Ok(()),
    }
}

impl Parse for LeaderArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = LeaderArgs::default();
        parse_options(input, OPTIONS, |name, value| args.set(name, value))?;
        if args.name.is_none() {
            return Err(syn::Error::new(
                Span::call_site(),
                "missing `name`: name the election, e.g. `#[leader(name = \"scheduler\")]` \
                 (its key is service/<name>/leader)",
            ));
        }
        args.check()?;
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(s: &str) -> String {
        match syn::parse_str::<LeaderArgs>(s) {
            Ok(_) => panic!("expected an error for {s}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn all_options() {
        let args = syn::parse_str::<LeaderArgs>(
            "name = \"billing/scheduler\", key = \"jobs/x/.lock\", lock_timeout_seconds = 30, \
             grace_ms = 5000, value = self.addr(), client = &self.consul, crate = \"locks\"",
        )
        .unwrap();
        assert_eq!(args.name.unwrap().value(), "billing/scheduler");
        assert_eq!(args.lock_timeout_seconds.unwrap().0, 30);
        assert_eq!(args.grace_ms.unwrap().0, 5000);
        assert!(args.value.is_some() && args.client.is_some());
    }

    #[test]
    fn errors() {
        assert!(error("").contains("missing `name`"));
        assert!(error("name = \"a\", name = \"b\"").contains("more than once"));
        assert!(error("name = \"a//b\"").contains("empty segment"));
        assert!(error("name = \"jobs/<id>\"").contains("not a template"));
        assert!(error("name = \"a\", lock_timeout_seconds = 5").contains("out of range"));
        assert!(error("name = \"a\", grace_ms = 6000").contains("more than a third"));
        let e = error("name = \"a\", lock_timeout_second = 20");
        assert!(e.contains("did you mean `lock_timeout_seconds`"), "{e}");
        assert!(error("name = \"a\", value").contains("`value` needs a value"));
    }
}
