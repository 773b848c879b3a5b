//! What the attribute refuses before generating anything: functions it cannot lock
//! (`const`, `extern`, no body, no return type), template names that are not parameters, and
//! a `guard` name that would hide a parameter. Every error points at the user's tokens.

use std::collections::BTreeMap;

use syn::spanned::Spanned;
use syn::{Block, Ident, ReturnType, Type};

use crate::args::{self, Args};
use crate::func::{self, LockedFn};
use crate::suggest::did_you_mean;
use crate::template::Part;

/// A function the attribute can lock: its body, its return type and its parameter names.
pub(crate) struct Checked<'a> {
    pub(crate) body: &'a Block,
    pub(crate) ret: &'a Type,
    /// See [`func::parameter_names`].
    pub(crate) names: BTreeMap<String, Ident>,
}

/// Checks, in this order: the function's form, then the template's names, then `guard`.
pub(crate) fn check<'a>(args: &Args, func: &'a LockedFn) -> syn::Result<Checked<'a>> {
    let sig = &func.sig;
    if let Some(constness) = &sig.constness {
        return Err(syn::Error::new(
            constness.span,
            "`#[consul_lock]` cannot lock a `const fn`: the lock is taken at run time, \
             so remove `const`",
        ));
    }
    if let Some(abi) = &sig.abi {
        return Err(syn::Error::new(
            abi.span(),
            "`#[consul_lock]` cannot lock an `extern` function: wrap a Rust function \
             that has the attribute instead",
        ));
    }
    let Some(body) = &func.body else {
        return Err(syn::Error::new(
            func.semi.map_or_else(|| sig.ident.span(), |s| s.span),
            "`#[consul_lock]` needs a function body: put it on the implementations of this \
             trait method, or give the method a default body",
        ));
    };
    let ReturnType::Type(_, ret) = &sig.output else {
        let hint = if args.is_fail_soft() {
            "return `Option<()>` or `Result<Option<()>, E>`"
        } else {
            "return `Result<(), E>` with `E: From<consul_lock::Error>`, \
             or add `fail_soft` and return `Option<()>`"
        };
        return Err(syn::Error::new(
            sig.ident.span(),
            format!(
                "`#[consul_lock]` needs a return type that can report that the lock was not \
                 acquired: {hint}"
            ),
        ));
    };

    let names = func::parameter_names(sig);
    check_names(args, &names)?;
    if let Some(guard) = &args.guard {
        if names.contains_key(&syn::ext::IdentExt::unraw(guard).to_string()) {
            return Err(syn::Error::new(
                guard.span(),
                format!(
                    "`guard = {guard}` would hide the parameter `{guard}` in the body: \
                     choose another name, e.g. `guard = lock`"
                ),
            ));
        }
    }
    Ok(Checked { body, ret, names })
}

/// Checks that every placeholder starts with a parameter (or `self` in a method); all the
/// unknown names are reported at once.
fn check_names(args: &Args, names: &BTreeMap<String, Ident>) -> syn::Result<()> {
    let mut errors: Option<syn::Error> = None;
    let parts = args
        .keys()
        .iter()
        .flat_map(|key| key.template.parts.iter().map(move |part| (key, part)));
    for (key, part) in parts {
        let Part::Placeholder(p) = part else { continue };
        let root = p.root_name();
        if names.contains_key(root) {
            continue;
        }
        let span = args::subspan(&key.lit, &key.value, p.range.clone());
        let message = if root == "self" {
            format!(
                "`<{}>` in the key template needs a method with a `self` receiver",
                p.text
            )
        } else {
            let mut m = format!("unknown name `{root}` in the key template");
            let candidates = names.keys().map(String::as_str);
            if let Some(close) = did_you_mean(root, candidates) {
                m.push_str(&format!(": did you mean `{close}`?"));
            } else if names.is_empty() {
                m.push_str(": the function has no parameters to name");
            } else {
                m.push_str(": placeholders name parameters (");
                m.push_str(
                    &names
                        .keys()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                );
                m.push(')');
            }
            m
        };
        let e = syn::Error::new(span, message);
        match &mut errors {
            Some(all) => all.combine(e),
            None => errors = Some(e),
        }
    }
    errors.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(attr: &str, item: &str) -> String {
        let args: Args = syn::parse_str(attr).unwrap();
        let func: LockedFn = syn::parse_str(item).unwrap();
        match check(&args, &func) {
            Ok(_) => panic!("expected an error for {attr} on {item}"),
            Err(e) => e.into_compile_error().to_string(),
        }
    }

    #[test]
    fn unknown_names_suggest_or_list_the_parameters() {
        let e = error("key = \"<usr_id>\"", "fn f(user_id: u8) -> R { x }");
        assert!(e.contains("did you mean `user_id`?"), "{e}");
        let e = error("key = \"<tenant>\"", "fn f(a: u8, b: u8) -> R { x }");
        assert!(e.contains("placeholders name parameters (`a`, `b`)"), "{e}");
        let e = error("key = \"<tenant>\"", "fn f() -> R { x }");
        assert!(e.contains("has no parameters to name"), "{e}");
    }

    #[test]
    fn every_unknown_name_is_reported() {
        let e = error("key = \"<a>/<b>\"", "fn f() -> R { x }");
        assert!(e.contains("`a`") && e.contains("`b`"), "{e}");
    }

    #[test]
    fn guard_must_not_hide_a_parameter() {
        let e = error("key = \"k\", guard = id", "fn f(id: u8) -> R { x }");
        assert!(e.contains("would hide the parameter `id`"), "{e}");
    }
}
