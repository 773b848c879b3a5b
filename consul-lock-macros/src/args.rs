//! Parsing of the attribute's options: `#[consul_lock(key = "...", ...)]`.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Expr, Ident, Lit, LitBool, LitInt, LitStr, Path, Token};

use crate::suggest::did_you_mean;
use crate::template::{self, Template};

/// The options the attribute accepts, in the order the docs list them.
pub(crate) const OPTIONS: &[&str] = &[
    "key",
    "acquire_timeout_ms",
    "lock_timeout_seconds",
    "renew",
    "consul_cli",
    "client",
    "fail_soft",
    "guard",
    "crate",
    "limit",
];

/// The session TTL Consul accepts, in seconds (shared with the runtime).
pub(crate) const LOCK_TIMEOUT_MIN: u64 = consul_lock_syntax::SESSION_TTL_MIN_SECS;
pub(crate) const LOCK_TIMEOUT_MAX: u64 = consul_lock_syntax::SESSION_TTL_MAX_SECS;
/// The most `key`s one attribute may give: the lock on several keys writes one transaction
/// operation per key (shared with the runtime).
pub(crate) const MAX_KEYS: usize = consul_lock_syntax::MAX_LOCK_KEYS;
/// The largest `limit` (shared with the runtime).
pub(crate) const SEMAPHORE_LIMIT_MAX: u64 = consul_lock_syntax::MAX_SEMAPHORE_LIMIT as u64;
/// The longest acquire timeout the attribute accepts, in milliseconds (one day).
pub(crate) const ACQUIRE_TIMEOUT_MAX_MS: u64 = 86_400_000;

/// The key template, as written and parsed.
pub(crate) struct Key {
    /// The string literal in the attribute; errors about the key point at it.
    pub(crate) lit: LitStr,
    /// The template text.
    pub(crate) value: String,
    /// The parsed template.
    pub(crate) template: Template,
}

/// The parsed options. `None` means "omitted: use the runtime default at run time".
#[derive(Default)]
pub(crate) struct Args {
    /// `key = "..."` (required; repeated: a lock on all the keys at once).
    pub(crate) keys: Vec<Key>,
    /// `acquire_timeout_ms = N`.
    pub(crate) acquire_timeout_ms: Option<(u64, Span)>,
    /// `lock_timeout_seconds = N`, within 10..=86400.
    pub(crate) lock_timeout_seconds: Option<(u64, Span)>,
    /// `renew` or `renew = bool`.
    pub(crate) renew: Option<(bool, Span)>,
    /// `consul_cli` or `consul_cli = bool`: the key is `consul lock`'s PREFIX, the lock key
    /// `PREFIX/.lock` with no key prefix.
    pub(crate) consul_cli: Option<(bool, Span)>,
    /// `limit = N`, within 1..=[`SEMAPHORE_LIMIT_MAX`]: a semaphore of N slots in Consul's
    /// semaphore layout instead of a lock.
    pub(crate) limit: Option<(u64, Span)>,
    /// `client = <expr>`.
    pub(crate) client: Option<Expr>,
    /// `fail_soft` or `fail_soft = bool`.
    pub(crate) fail_soft: Option<(bool, Span)>,
    /// `guard = name`: the body sees `name: &LockGuard`.
    pub(crate) guard: Option<Ident>,
    /// `crate = "path"`: where the `consul_lock` crate is.
    pub(crate) krate: Option<Path>,
}

impl Args {
    /// Whether not acquiring the lock is a value rather than an error.
    pub(crate) fn is_fail_soft(&self) -> bool {
        self.fail_soft.is_some_and(|(on, _)| on)
    }

    /// The key templates, in the order written. Parsing fails without one, so parsed options
    /// always have at least one.
    pub(crate) fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// Whether the attribute locks several keys at once (`key` repeated).
    pub(crate) fn is_multi(&self) -> bool {
        self.keys.len() > 1
    }

    /// The path of the hidden module generated code calls.
    pub(crate) fn private_path(&self) -> TokenStream {
        match &self.krate {
            Some(path) => quote::quote!(#path::__private),
            None => quote::quote!(::consul_lock::__private),
        }
    }
}

pub(crate) fn already_set(name: &Ident) -> syn::Error {
    syn::Error::new(
        name.span(),
        format!("`{name}` is set more than once: keep one"),
    )
}

/// A value after `=`, or nothing for a bare flag.
pub(crate) enum Value {
    Flag,
    Expr(Expr),
}

impl Args {
    fn set(&mut self, name: &Ident, value: Value) -> syn::Result<()> {
        let name_str = name.unraw().to_string();
        match name_str.as_str() {
            "key" => {
                let lit = expect_str(name, value, "key = \"jobs/<job_id>\"")?;
                let value = lit.value();
                if self.keys.len() == MAX_KEYS {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!(
                            "more than {MAX_KEYS} `key`s: one Consul transaction locks at most \
                             {MAX_KEYS} keys (Consul 1.10 refuses larger transactions); lock \
                             fewer keys, or a coarser key that stands for several"
                        ),
                    ));
                }
                if self.keys.iter().any(|k| k.value == value) {
                    return Err(syn::Error::new(
                        lit.span(),
                        format!("the key template {value:?} is given twice: keep one"),
                    ));
                }
                let template = template::parse(&value)
                    .map_err(|e| syn::Error::new(subspan(&lit, &value, e.range), e.message))?;
                self.keys.push(Key {
                    lit,
                    value,
                    template,
                });
            }
            "acquire_timeout_ms" => {
                let (n, span) = expect_int(name, value, 0, ACQUIRE_TIMEOUT_MAX_MS, "milliseconds")?;
                if self.acquire_timeout_ms.is_some() {
                    return Err(already_set(name));
                }
                self.acquire_timeout_ms = Some((n, span));
            }
            "lock_timeout_seconds" => {
                let (n, span) = expect_int(
                    name,
                    value,
                    LOCK_TIMEOUT_MIN,
                    LOCK_TIMEOUT_MAX,
                    "seconds: the session TTLs Consul accepts",
                )?;
                if self.lock_timeout_seconds.is_some() {
                    return Err(already_set(name));
                }
                self.lock_timeout_seconds = Some((n, span));
            }
            "limit" => {
                let (n, span) = expect_int(
                    name,
                    value,
                    1,
                    SEMAPHORE_LIMIT_MAX,
                    "holders at once: a semaphore in Consul's layout",
                )?;
                if self.limit.is_some() {
                    return Err(already_set(name));
                }
                self.limit = Some((n, span));
            }
            "renew" => {
                let v = expect_bool(name, value)?;
                if self.renew.is_some() {
                    return Err(already_set(name));
                }
                self.renew = Some(v);
            }
            "consul_cli" => {
                let v = expect_bool(name, value)?;
                if self.consul_cli.is_some() {
                    return Err(already_set(name));
                }
                self.consul_cli = Some(v);
            }
            "fail_soft" => {
                let v = expect_bool(name, value)?;
                if self.fail_soft.is_some() {
                    return Err(already_set(name));
                }
                self.fail_soft = Some(v);
            }
            "client" => {
                let Value::Expr(expr) = value else {
                    return Err(syn::Error::new(
                        name.span(),
                        "`client` needs a value: an expression giving the `consul_lock::Client`, \
                         e.g. `client = self.consul`",
                    ));
                };
                if self.client.is_some() {
                    return Err(already_set(name));
                }
                self.client = Some(expr);
            }
            "guard" => {
                let ident = match value {
                    Value::Expr(Expr::Path(p)) if p.qself.is_none() && p.attrs.is_empty() => {
                        p.path.get_ident().cloned()
                    }
                    _ => None,
                };
                let Some(ident) = ident.filter(|i| i != "self") else {
                    return Err(syn::Error::new(
                        name.span(),
                        "`guard` needs a name for the body's `&LockGuard`, e.g. `guard = lock`",
                    ));
                };
                if self.guard.is_some() {
                    return Err(already_set(name));
                }
                self.guard = Some(ident);
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
                message.push_str(
                    &OPTIONS
                        .iter()
                        .map(|o| format!("`{o}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                );
                return Err(syn::Error::new(name.span(), message));
            }
        }
        Ok(())
    }
}

/// The options of an attribute, `name [= expr], ...`, each handed to `set`; every error
/// `set` returns is reported (combined), a malformed list at once. `options` names them in
/// the error for something that is not an option name.
pub(crate) fn parse_options(
    input: ParseStream<'_>,
    options: &[&str],
    mut set: impl FnMut(&Ident, Value) -> syn::Result<()>,
) -> syn::Result<()> {
    let mut errors: Option<syn::Error> = None;
    while !input.is_empty() {
        let name = input.call(Ident::parse_any).map_err(|e| {
            let names: Vec<String> = options.iter().map(|o| format!("`{o}`")).collect();
            syn::Error::new(
                e.span(),
                format!("expected an option name: one of {}", names.join(", ")),
            )
        })?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            Value::Expr(input.parse()?)
        } else {
            Value::Flag
        };
        if let Err(e) = set(&name, value) {
            match &mut errors {
                Some(all) => all.combine(e),
                None => errors = Some(e),
            }
        }
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    errors.map_or(Ok(()), Err)
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args::default();
        parse_options(input, OPTIONS, |name, value| args.set(name, value))?;
        if args.keys.is_empty() {
            return Err(syn::Error::new(
                Span::call_site(),
                "missing `key`: name the lock with a key template, \
                 e.g. `#[consul_lock(key = \"send/user-<user_id>/welcome-email\")]`",
            ));
        }
        Ok(args)
    }
}

fn lit_of(value: &Value) -> Option<&Lit> {
    match value {
        Value::Expr(Expr::Lit(e)) if e.attrs.is_empty() => Some(&e.lit),
        _ => None,
    }
}

fn value_span(name: &Ident, value: &Value) -> Span {
    match value {
        Value::Flag => name.span(),
        Value::Expr(e) => e.span(),
    }
}

pub(crate) fn expect_str(name: &Ident, value: Value, example: &str) -> syn::Result<LitStr> {
    match lit_of(&value) {
        Some(Lit::Str(s)) => Ok(s.clone()),
        _ => Err(syn::Error::new(
            value_span(name, &value),
            format!("`{name}` takes a string literal, e.g. `{example}`"),
        )),
    }
}

pub(crate) fn expect_int(
    name: &Ident,
    value: Value,
    min: u64,
    max: u64,
    unit: &str,
) -> syn::Result<(u64, Span)> {
    let range = format!("{min}..={max}");
    let Some(Lit::Int(lit)) = lit_of(&value) else {
        return Err(syn::Error::new(
            value_span(name, &value),
            format!(
                "`{name}` takes an integer literal in {range} ({unit}), e.g. `{name} = {}`",
                min.max(500).min(max)
            ),
        ));
    };
    let n = parse_int(lit)
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            syn::Error::new(
                lit.span(),
                format!(
                    "`{name} = {}` is out of range: expected {range} ({unit})",
                    lit.base10_digits()
                ),
            )
        })?;
    Ok((n, lit.span()))
}

fn parse_int(lit: &LitInt) -> Option<u64> {
    match lit.suffix() {
        "" | "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16" | "i32" | "i64"
        | "i128" | "isize" => lit.base10_parse::<u64>().ok(),
        _ => None,
    }
}

pub(crate) fn expect_bool(name: &Ident, value: Value) -> syn::Result<(bool, Span)> {
    match (&value, lit_of(&value)) {
        (Value::Flag, _) => Ok((true, name.span())),
        (_, Some(Lit::Bool(LitBool { value: b, span }))) => Ok((*b, *span)),
        _ => Err(syn::Error::new(
            value_span(name, &value),
            format!("`{name}` takes `true` or `false`, or is written alone: `{name}`"),
        )),
    }
}

/// The span of `range` (bytes of the template value) inside the string literal, where the
/// compiler can give one; the whole literal otherwise.
pub(crate) fn subspan(lit: &LitStr, value: &str, range: std::ops::Range<usize>) -> Span {
    let token = lit.token();
    // Only a plain literal (no escapes, not raw) maps value bytes to source bytes 1:1.
    if token.to_string() == format!("\"{value}\"") && range.end <= value.len() {
        let range = range.start + 1..range.end.max(range.start + 1) + 1;
        if let Some(span) = token.subspan(range) {
            return span;
        }
    }
    lit.span()
}

impl ToTokens for Key {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.lit.to_tokens(tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> syn::Result<Args> {
        syn::parse_str::<Args>(s)
    }

    fn error(s: &str) -> String {
        match parse(s) {
            Ok(_) => panic!("expected an error for {s}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn limit_is_checked() {
        assert_eq!(
            parse("key = \"k\", limit = 4").unwrap().limit.map(|l| l.0),
            Some(4)
        );
        assert!(error("key = \"k\", limit = 0").contains("1..=1024"));
        assert!(error("key = \"k\", limit = 1025").contains("out of range"));
        assert!(error("key = \"k\", limit = 2, limit = 3").contains("more than once"));
    }

    #[test]
    fn all_options() {
        let args = parse(
            "key = \"send/user-<user_id>\", acquire_timeout_ms = 500, lock_timeout_seconds = 60, \
             renew, client = self.consul, fail_soft, guard = lock, crate = \"my_lock\"",
        )
        .unwrap();
        let key = &args.keys()[0];
        assert_eq!(key.value, "send/user-<user_id>");
        assert_eq!(args.acquire_timeout_ms.unwrap().0, 500);
        assert_eq!(args.lock_timeout_seconds.unwrap().0, 60);
        assert!(args.renew.unwrap().0);
        assert!(args.is_fail_soft());
        assert_eq!(args.guard.as_ref().unwrap(), "lock");
        assert_eq!(
            args.client.as_ref().unwrap().to_token_stream().to_string(),
            "self . consul"
        );
        assert_eq!(args.private_path().to_string(), "my_lock :: __private");
    }

    #[test]
    fn defaults() {
        let args = parse("key = \"jobs\"").unwrap();
        assert!(args.acquire_timeout_ms.is_none());
        assert!(args.lock_timeout_seconds.is_none());
        assert!(args.renew.is_none());
        assert!(args.client.is_none());
        assert!(!args.is_fail_soft());
        assert!(args.guard.is_none());
        assert_eq!(
            args.private_path().to_string(),
            ":: consul_lock :: __private"
        );
    }

    #[test]
    fn explicit_bools() {
        let args = parse("key = \"k\", renew = false, fail_soft = false,").unwrap();
        assert!(!args.renew.unwrap().0);
        assert!(!args.is_fail_soft());
        assert!(error("key = \"k\", renew = 1").contains("`true` or `false`"));
    }

    #[test]
    fn missing_key() {
        assert!(error("acquire_timeout_ms = 5").contains("missing `key`"));
        assert!(error("").contains("missing `key`"));
    }

    #[test]
    fn repeated_options() {
        assert_eq!(
            parse("key = \"a\", key = \"b/<x>\"").unwrap().keys().len(),
            2
        );
        assert!(error("key = \"a\", key = \"a\"").contains("given twice"));
        assert!(error("key = \"a\", renew, renew").contains("`renew` is set more than once"));
        assert!(
            parse("key = \"jobs/x\", consul_cli")
                .unwrap()
                .consul_cli
                .unwrap()
                .0
        );
        assert!(error("key = \"a\", consul_cli = 1").contains("`true` or `false`"));
    }

    #[test]
    fn at_most_sixty_four_keys() {
        let keys = |n: usize| {
            (0..n)
                .map(|i| format!("key = \"k/{i}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        assert_eq!(parse(&keys(64)).unwrap().keys().len(), 64);
        assert!(error(&keys(65)).contains("more than 64 `key`s"));
    }

    #[test]
    fn unknown_option() {
        let e = error("key = \"a\", acquire_timeout = 5");
        assert!(e.contains("unknown option `acquire_timeout`"), "{e}");
        assert!(e.contains("did you mean `acquire_timeout_ms`"), "{e}");
        assert!(e.contains("expected one of `key`"), "{e}");
        let e = error("key = \"a\", bananas");
        assert!(!e.contains("did you mean"), "{e}");
    }

    #[test]
    fn ranges() {
        assert!(error("key = \"a\", lock_timeout_seconds = 9")
            .contains("out of range: expected 10..=86400"));
        assert!(error("key = \"a\", lock_timeout_seconds = 86401").contains("out of range"));
        parse("key = \"a\", lock_timeout_seconds = 10").unwrap();
        parse("key = \"a\", lock_timeout_seconds = 86400u32").unwrap();
        parse("key = \"a\", acquire_timeout_ms = 0").unwrap();
        assert!(
            error("key = \"a\", acquire_timeout_ms = 99999999999999999999")
                .contains("out of range")
        );
        assert!(error("key = \"a\", acquire_timeout_ms = 1.5").contains("integer literal"));
        assert!(error("key = \"a\", acquire_timeout_ms = \"5\"").contains("integer literal"));
        assert!(error("key = \"a\", acquire_timeout_ms").contains("integer literal"));
    }

    #[test]
    fn template_errors_surface() {
        assert!(error("key = \"a/<>\"").contains("empty placeholder"));
        assert!(error("key = 5").contains("string literal"));
    }

    #[test]
    fn guard_and_crate_values() {
        assert!(error("key = \"a\", guard = \"lock\"").contains("`guard` needs a name"));
        assert!(error("key = \"a\", guard = self").contains("`guard` needs a name"));
        assert!(error("key = \"a\", guard").contains("`guard` needs a name"));
        assert!(error("key = \"a\", crate = \"not a path\"").contains("is not a path"));
        assert!(error("key = \"a\", client").contains("`client` needs a value"));
    }
}
