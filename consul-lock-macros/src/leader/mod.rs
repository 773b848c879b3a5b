//! `#[leader(name = "...")]`: an `async fn` whose body runs only while this process leads an
//! election. The `Leadership` parameter is taken out of the signature (the election hands it
//! to the body); the other parameters are cloned for each leadership, as the body runs once
//! per leadership.
//!
//! This input:
//!
//! ```text
//! #[leader(name = "scheduler", grace_ms = 2000)]
//! async fn schedule(leadership: Leadership, jobs: Jobs) -> Result<(), AppError> {
//!     jobs.run_until(leadership.stopping()).await
//! }
//! ```
//!
//! becomes:
//!
//! ```text
//! async fn schedule(jobs: Jobs) -> Result<(), AppError> {
//!     let consul_lock_election =
//!         ::consul_lock::__private::election("scheduler", None, None, Some(2000));
//!     // The return type's conversions, checked where the type is written.
//!     let consul_lock_conversions =
//!         ::consul_lock::__private::leader_result::<Result<(), AppError>>();
//!     ::consul_lock::__private::run_leader(consul_lock_election, consul_lock_conversions, move |leadership: Leadership| {
//!         let jobs = ::core::clone::Clone::clone(&jobs);
//!         async move {
//!             if false { /* a never-taken `return` of the result type, for inference */ }
//!             { jobs.run_until(leadership.stopping()).await }
//!         }
//!     })
//!     .await
//! }
//! ```

mod args;

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, Ident, Pat, ReturnType, Type};

use crate::func::LockedFn;
use args::LeaderArgs;

/// The entry point: never fails, so the function is always emitted (with the errors next to
/// it) and IDEs keep seeing it.
pub(crate) fn leader(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func = match syn::parse2::<LockedFn>(item.clone()) {
        Ok(func) => func,
        Err(e) => {
            let error =
                syn::Error::new(e.span(), format!("`#[leader]` goes on an `async fn`: {e}"))
                    .to_compile_error();
            return quote!(#error #item);
        }
    };
    match syn::parse2::<LeaderArgs>(attr).and_then(|args| generate(&args, &func)) {
        Ok(tokens) => tokens,
        Err(e) => {
            let error = e.to_compile_error();
            let item = fallback(&func).unwrap_or(item);
            quote!(#error #item)
        }
    }
}

/// The function as callers will see it (without its `Leadership` parameter), its body kept
/// for IDEs, so that a wrong option is one error, not one more at every call.
fn fallback(func: &LockedFn) -> Option<TokenStream> {
    let body = func.body.as_ref()?;
    let Params {
        leadership,
        without_leadership,
        ..
    } = params(func).ok()?;
    let FnArg::Typed(t) = leadership else {
        return None;
    };
    let (pat, ty) = (&t.pat, &t.ty);
    let mut sig = func.sig.clone();
    sig.inputs = without_leadership;
    let LockedFn {
        attrs,
        vis,
        inner_attrs,
        ..
    } = func;
    let mut out = quote!(#(#attrs)* #[allow(unreachable_code, unused_variables)] #vis #sig);
    body.brace_token.surround(&mut out, |tokens| {
        tokens.extend(quote!(#(#inner_attrs)* let #pat: #ty = loop {}; #body));
    });
    Some(out)
}

/// The parameters after the checks: the leadership's, and the others (cloned per term).
struct Params {
    leadership: FnArg,
    cloned: Vec<(Option<syn::token::Mut>, Ident, Span)>,
    without_leadership: syn::punctuated::Punctuated<FnArg, syn::token::Comma>,
}

fn is_leadership(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "Leadership" && s.arguments.is_none()),
        _ => false,
    }
}

fn params(func: &LockedFn) -> syn::Result<Params> {
    let sig = &func.sig;
    let mut leadership = None;
    let mut cloned = Vec::new();
    let mut without = syn::punctuated::Punctuated::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) if r.reference.is_some() && r.mutability.is_none() => {
                without.push(input.clone());
            }
            FnArg::Receiver(r) => {
                return Err(syn::Error::new(
                    r.span(),
                    "a `#[leader]` method takes `&self`: the body runs once per leadership, so \
                     it cannot consume `self` or hold `&mut self` across them",
                ))
            }
            FnArg::Typed(t) if is_leadership(&t.ty) => {
                if leadership.is_some() {
                    return Err(syn::Error::new(
                        t.span(),
                        "only one parameter may be the `Leadership`",
                    ));
                }
                leadership = Some(input.clone());
            }
            FnArg::Typed(t) => match &*t.pat {
                Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                    cloned.push((p.mutability, p.ident.clone(), t.span()));
                    // The clone is `mut` where the parameter was; the parameter itself is
                    // only read.
                    let mut param = t.clone();
                    if let Pat::Ident(p) = &mut *param.pat {
                        p.mutability = None;
                    }
                    without.push(FnArg::Typed(param));
                }
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        "a `#[leader]` function's parameters are plain names (`jobs: Jobs`): \
                         each is cloned for every leadership; destructure inside the body",
                    ))
                }
            },
        }
    }
    let Some(leadership) = leadership else {
        return Err(syn::Error::new(
            sig.paren_token.span.join(),
            "a `#[leader]` function takes the leadership as a parameter, \
             e.g. `leadership: consul_lock::Leadership`: the election hands it to the body, \
             which watches `leadership.stopping()` to stop in time",
        ));
    };
    Ok(Params {
        leadership,
        cloned,
        without_leadership: without,
    })
}

fn generate(args: &LeaderArgs, func: &LockedFn) -> syn::Result<TokenStream> {
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        return Err(syn::Error::new(
            sig.fn_token.span,
            "`#[leader]` goes on an `async fn`: the body runs while this process leads and is \
             cancelled (dropped at an `.await`) when the leadership ends",
        ));
    }
    let Some(body) = &func.body else {
        return Err(syn::Error::new(
            sig.span(),
            "`#[leader]` needs a function with a body",
        ));
    };
    let ReturnType::Type(_, ret) = &sig.output else {
        return Err(syn::Error::new(
            sig.span(),
            "a `#[leader]` function returns `Result<T, E>` with `E: From<consul_lock::Error>`: \
             an election error (an invalid key, a token without permission) has to go somewhere",
        ));
    };
    let params = params(func)?;
    let p = args.private_path();
    let election = Ident::new("consul_lock_election", Span::mixed_site());
    let fake = Ident::new("consul_lock_fake_return", Span::mixed_site());
    let name = args.name.as_ref().map(|n| quote!(#n));
    let key = match &args.key {
        Some(k) => quote!(::core::option::Option::Some(#k)),
        None => quote!(::core::option::Option::None),
    };
    let some_u64 = |v: Option<(u64, Span)>| match v {
        Some((n, _)) => quote!(::core::option::Option::Some(#n)),
        None => quote!(::core::option::Option::None),
    };
    let ttl = some_u64(args.lock_timeout_seconds);
    let grace = some_u64(args.grace_ms);
    let client = args.client.as_ref().map(|c| {
        quote_spanned! {c.span()=>
            let #election = #election.client(#p::AsClient::to_client(&(#c)));
        }
    });
    let value = args.value.as_ref().map(|v| {
        quote_spanned! {v.span()=>
            let #election = #election.value(#p::leader_value(#v));
        }
    });
    let conversions = Ident::new("consul_lock_conversions", Span::mixed_site());
    // Every token of the check at the return type, so that a wrong type is reported there once.
    let p_at_ret = respan(p.clone(), ret.span());
    let assert_ret = quote_spanned! {ret.span()=>
        let #conversions = #p_at_ret::leader_result::<#ret>();
    };
    let leadership_pat = match &params.leadership {
        FnArg::Typed(t) => {
            let (pat, ty) = (&t.pat, &t.ty);
            quote!(#pat: #ty)
        }
        FnArg::Receiver(_) => unreachable!("the leadership is a typed parameter"),
    };
    let clones = params.cloned.iter().map(|(mutability, ident, span)| {
        quote_spanned! {*span=>
            let #mutability #ident = ::core::clone::Clone::clone(&#ident);
        }
    });
    let fake_return = quote_spanned! {ret.span()=>
        #[allow(
            unknown_lints,
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::empty_loop,
            clippy::let_unit_value,
            clippy::needless_return,
            clippy::unreachable
        )]
        if false {
            let #fake: #ret = loop {};
            return #fake;
        }
    };
    // The body's statements without its braces (same scope: the fake return binds nothing), so
    // that a one-line body draws no `unused_braces`.
    let stmts = &body.stmts;
    let new_body = quote! {
        let #election = #p::election(#name, #key, #ttl, #grace);
        #client
        #value
        #assert_ret
        #p::run_leader(#election, #conversions, move |#leadership_pat| {
            #(#clones)*
            async move {
                #fake_return
                #(#stmts)*
            }
        })
        .await
    };
    let mut new_sig = sig.clone();
    new_sig.inputs = params.without_leadership;
    let LockedFn {
        attrs,
        vis,
        inner_attrs,
        ..
    } = func;
    let mut out = quote!(#(#attrs)* #vis #new_sig);
    body.brace_token.surround(&mut out, |tokens| {
        tokens.extend(quote!(#(#inner_attrs)*));
        tokens.extend(new_body);
    });
    Ok(out)
}

/// `tokens` with every span set to `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let proc_macro2::TokenTree::Group(g) = &tree {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                tree = proc_macro2::TokenTree::Group(group);
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}
