//! Code generation: the function keeps its signature; only its body changes.
//!
//! The generated body renders the key, acquires the lock, runs the original body so that
//! `return` and `?` leave only the body (an `async move` block for async code, a closure
//! for sync code), releases the lock explicitly and waits for it, and returns the body's
//! value. On a panic or a dropped future the guard's `Drop` releases in the background.

use std::collections::BTreeMap;

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{
    Attribute, Block, Expr, ExprAsync, FnArg, GenericArgument, Ident, Pat, PathArguments,
    ReturnType, Signature, Stmt, Token, Type, TypeParamBound, Visibility,
};

use crate::args::Args;
use crate::template::{self, Part};

/// A function as the attribute sees it: free, in an impl block, or in a trait (where the
/// body may be missing, which is an error).
pub(crate) struct LockedFn {
    attrs: Vec<Attribute>,
    vis: Visibility,
    sig: Signature,
    inner_attrs: Vec<Attribute>,
    body: Option<Block>,
    semi: Option<Token![;]>,
}

impl Parse for LockedFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let sig: Signature = input.parse()?;
        if input.peek(Token![;]) {
            let semi = input.parse()?;
            return Ok(LockedFn {
                attrs,
                vis,
                sig,
                inner_attrs: Vec::new(),
                body: None,
                semi: Some(semi),
            });
        }
        let content;
        let brace_token = syn::braced!(content in input);
        let inner_attrs = content.call(Attribute::parse_inner)?;
        let stmts = content.call(Block::parse_within)?;
        Ok(LockedFn {
            attrs,
            vis,
            sig,
            inner_attrs,
            body: Some(Block { brace_token, stmts }),
            semi: None,
        })
    }
}

/// The entry point: never fails, so the function is always emitted (with the errors next
/// to it) and IDEs keep seeing it.
pub(crate) fn consul_lock(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func = match syn::parse2::<LockedFn>(item.clone()) {
        Ok(func) => func,
        Err(e) => {
            let error = syn::Error::new(
                e.span(),
                format!("`#[consul_lock]` goes on a function: {e}"),
            )
            .to_compile_error();
            return quote!(#error #item);
        }
    };
    let result = syn::parse2::<Args>(attr).and_then(|args| generate(&args, &func));
    match result {
        Ok(tokens) => tokens,
        Err(e) => {
            let error = e.to_compile_error();
            quote!(#error #item)
        }
    }
}

/// How the function gives its result.
enum Shape {
    /// `async fn`.
    Async,
    /// A plain function.
    Sync,
    /// A sync function returning a future whose body is one `async move` block, bare or
    /// inside a call such as `Box::pin(..)` (what `#[async_trait]` generates).
    FutureInline {
        call: Option<Expr>,
        block: Box<ExprAsync>,
        output: Type,
    },
    /// A sync function returning a future built some other way.
    FutureOpaque { boxed: bool, output: Type },
}

/// The future type of a sync function's return type, if it is one: whether it is boxed,
/// and its `Output`.
fn future_output(ty: &Type) -> Option<(bool, Type)> {
    match ty {
        Type::ImplTrait(t) => t.bounds.iter().find_map(|b| match b {
            TypeParamBound::Trait(t) => future_bound_output(&t.path),
            _ => None,
        }),
        Type::Paren(t) => future_output(&t.elem),
        Type::Group(t) => future_output(&t.elem),
        Type::Path(p) if p.qself.is_none() => {
            let last = p.path.segments.last()?;
            match last.ident.to_string().as_str() {
                // Pin<Box<dyn Future<Output = T> + ..>>
                "Pin" => {
                    let inner = single_type_arg(&last.arguments)?;
                    let Type::Path(boxed) = inner else {
                        return None;
                    };
                    let last = boxed.path.segments.last()?;
                    if last.ident != "Box" {
                        return None;
                    }
                    let Type::TraitObject(obj) = single_type_arg(&last.arguments)? else {
                        return None;
                    };
                    obj.bounds
                        .iter()
                        .find_map(|b| match b {
                            TypeParamBound::Trait(t) => future_bound_output(&t.path),
                            _ => None,
                        })
                        .map(|(_, out)| (true, out))
                }
                // futures' BoxFuture<'a, T> and LocalBoxFuture<'a, T>
                "BoxFuture" | "LocalBoxFuture" => {
                    let PathArguments::AngleBracketed(args) = &last.arguments else {
                        return None;
                    };
                    args.args
                        .iter()
                        .filter_map(|a| match a {
                            GenericArgument::Type(t) => Some(t.clone()),
                            _ => None,
                        })
                        .last()
                        .map(|t| (true, t))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

fn single_type_arg(args: &PathArguments) -> Option<&Type> {
    let PathArguments::AngleBracketed(args) = args else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|a| match a {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    });
    let first = types.next()?;
    types.next().is_none().then_some(first)
}

/// `Future<Output = T>` (any path ending in `Future`): `(false, T)`.
fn future_bound_output(path: &syn::Path) -> Option<(bool, Type)> {
    let last = path.segments.last()?;
    if last.ident != "Future" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    args.args.iter().find_map(|a| match a {
        GenericArgument::AssocType(assoc) if assoc.ident == "Output" => {
            Some((false, assoc.ty.clone()))
        }
        _ => None,
    })
}

/// The body's single tail expression, if the body is only that.
fn single_tail(block: &Block) -> Option<&Expr> {
    match block.stmts.as_slice() {
        [Stmt::Expr(expr, None)] => Some(expr),
        _ => None,
    }
}

/// `async move { .. }`, bare or as the only argument of a call (`Box::pin(async move {..})`).
fn inline_async(block: &Block) -> Option<(Option<Expr>, ExprAsync)> {
    match single_tail(block)? {
        Expr::Async(a) if a.capture.is_some() => Some((None, a.clone())),
        Expr::Call(call) if call.args.len() == 1 => match call.args.first() {
            Some(Expr::Async(a)) if a.capture.is_some() => {
                let is_pin = matches!(&*call.func, Expr::Path(p)
                    if p.path.segments.last().is_some_and(|s| s.ident == "pin"));
                is_pin.then(|| (Some((*call.func).clone()), a.clone()))
            }
            _ => None,
        },
        _ => None,
    }
}

/// Replaces `impl Trait` with `_`, so that the type can annotate a `let`.
struct EraseImplTrait;

impl VisitMut for EraseImplTrait {
    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::ImplTrait(t) = ty {
            *ty = Type::Infer(syn::TypeInfer {
                underscore_token: Token![_](t.span()),
            });
        } else {
            syn::visit_mut::visit_type_mut(self, ty);
        }
    }
}

fn erase_impl_trait(ty: &Type) -> Type {
    let mut ty = ty.clone();
    EraseImplTrait.visit_type_mut(&mut ty);
    ty
}

/// The names a template may start with: every binding in the parameters, and `self`.
fn parameter_names(sig: &Signature) -> BTreeMap<String, Ident> {
    fn walk(pat: &Pat, names: &mut BTreeMap<String, Ident>) {
        match pat {
            Pat::Ident(p) => {
                let name = syn::ext::IdentExt::unraw(&p.ident).to_string();
                names.insert(name, p.ident.clone());
                if let Some((_, sub)) = &p.subpat {
                    walk(sub, names);
                }
            }
            Pat::Tuple(t) => t.elems.iter().for_each(|p| walk(p, names)),
            Pat::TupleStruct(t) => t.elems.iter().for_each(|p| walk(p, names)),
            Pat::Struct(s) => s.fields.iter().for_each(|f| walk(&f.pat, names)),
            Pat::Slice(s) => s.elems.iter().for_each(|p| walk(p, names)),
            Pat::Reference(r) => walk(&r.pat, names),
            Pat::Type(t) => walk(&t.pat, names),
            Pat::Paren(p) => walk(&p.pat, names),
            Pat::Or(o) => {
                if let Some(first) = o.cases.first() {
                    walk(first, names);
                }
            }
            _ => {}
        }
    }
    let mut names = BTreeMap::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => {
                names.insert("self".to_owned(), Ident::new("self", r.self_token.span));
            }
            FnArg::Typed(t) => walk(&t.pat, &mut names),
        }
    }
    names
}

/// Checks the template's names against the parameters.
fn check_names(args: &Args, names: &BTreeMap<String, Ident>) -> syn::Result<()> {
    let key = args.key.as_ref().expect("parsed args have a key");
    let mut errors: Option<syn::Error> = None;
    for part in &key.template.parts {
        let Part::Placeholder(p) = part else { continue };
        let root = p.root.strip_prefix("r#").unwrap_or(&p.root);
        if names.contains_key(root) {
            continue;
        }
        let span = crate::args::subspan(&key.lit, &key.value, p.range.clone());
        let message = if root == "self" {
            format!(
                "`<{}>` in the key template needs a method with a `self` receiver",
                p.text
            )
        } else {
            let mut m = format!("unknown name `{root}` in the key template");
            let candidates = names.keys().map(String::as_str);
            if let Some(close) = template::did_you_mean(root, candidates) {
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

/// Generated locals: invisible to the user's code (mixed-site hygiene).
struct Locals {
    lock: Ident,
    guard: Ident,
    error: Ident,
    output: Ident,
    future: Ident,
    key: Ident,
    fake: Ident,
}

impl Locals {
    fn new() -> Self {
        let ident = |name: &str| Ident::new(name, Span::mixed_site());
        Locals {
            lock: ident("consul_lock_lock"),
            guard: ident("consul_lock_guard"),
            error: ident("consul_lock_error"),
            output: ident("consul_lock_output"),
            future: ident("consul_lock_future"),
            key: ident("consul_lock_key"),
            fake: ident("consul_lock_fake_return"),
        }
    }
}

fn generate(args: &Args, func: &LockedFn) -> syn::Result<TokenStream> {
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

    let names = parameter_names(sig);
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

    let shape = if sig.asyncness.is_some() {
        Shape::Async
    } else if let Some((boxed, output)) = future_output(ret) {
        match inline_async(body) {
            Some((call, block)) if boxed == call.is_some() => Shape::FutureInline {
                call,
                block: Box::new(block),
                output,
            },
            _ => Shape::FutureOpaque { boxed, output },
        }
    } else {
        Shape::Sync
    };
    if let (Shape::FutureOpaque { .. }, Some(guard)) = (&shape, &args.guard) {
        return Err(syn::Error::new(
            guard.span(),
            "`guard` needs the body to be an `async move { .. }` block (or \
             `Box::pin(async move { .. })`) when the function returns a future: \
             the body runs before the lock is taken otherwise",
        ));
    }

    let p = args.private_path();
    let l = Locals::new();
    // The type that reports lock errors: the function's result, or the future's output.
    let result_ty: &Type = match &shape {
        Shape::Async | Shape::Sync => ret,
        Shape::FutureInline { output, .. } | Shape::FutureOpaque { output, .. } => output,
    };
    let ret_span = result_ty.span();
    let result_ty = erase_impl_trait(result_ty);

    // Spanned at the return type (every token, so that the compiler's joined spans stay
    // there): a return type that cannot carry the outcome is reported at it.
    let fail = if args.is_fail_soft() {
        respan(quote!(#p::FailSoft), ret_span)
    } else {
        respan(quote!(#p::FailHard), ret_span)
    };
    let error = &l.error;
    let error_at_ret = Ident::new(
        &l.error.to_string(),
        Span::mixed_site().located_at(ret_span),
    );
    let on_error = quote_spanned!(ret_span=> return #fail::lock_error(#error_at_ret));
    let lock_result = lock_result(args, &names, &p, &l);
    let lock = &l.lock;
    let guard = &l.guard;
    let output = &l.output;
    let future = &l.future;
    let take_lock = quote! {
        let #lock = match #lock_result {
            ::core::result::Result::Ok(#lock) => #lock,
            ::core::result::Result::Err(#error) => #on_error,
        };
    };
    let acquire = |blocking: bool| {
        let (hard, soft) = if blocking {
            (
                quote!(#p::Lock::acquire_blocking(&#lock)),
                quote!(#p::Lock::try_acquire_blocking(&#lock)),
            )
        } else {
            (
                quote!(#p::Lock::acquire(&#lock).await),
                quote!(#p::Lock::try_acquire(&#lock).await),
            )
        };
        if args.is_fail_soft() {
            let not_acquired = quote_spanned!(ret_span=> return #fail::not_acquired());
            quote! {
                let #guard = match #soft {
                    ::core::result::Result::Ok(::core::option::Option::Some(#guard)) => #guard,
                    ::core::result::Result::Ok(::core::option::Option::None) => #not_acquired,
                    ::core::result::Result::Err(#error) => #on_error,
                };
            }
        } else {
            quote! {
                let #guard = match #hard {
                    ::core::result::Result::Ok(#guard) => #guard,
                    ::core::result::Result::Err(#error) => #on_error,
                };
            }
        }
    };
    let guard_binding = args.guard.as_ref().map(|name| {
        quote! {
            let #name: &#p::LockGuard = &#guard;
        }
    });
    let fake = &l.fake;
    let fake_return = quote_spanned! {ret_span=>
        #[allow(
            unknown_lints,
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::empty_loop,
            clippy::let_unit_value,
            clippy::let_with_type_underscore,
            clippy::needless_return,
            clippy::unreachable
        )]
        if false {
            let #fake: #result_ty = loop {};
            return #fake;
        }
    };

    let body_tokens = match &shape {
        Shape::Async => {
            let acquire = acquire(false);
            quote! {
                #take_lock
                #acquire
                #guard_binding
                let #output = async move {
                    #fake_return
                    #body
                }
                .await;
                #p::release(#guard).await;
                #output
            }
        }
        Shape::Sync => {
            let acquire = acquire(true);
            quote! {
                #take_lock
                #acquire
                #guard_binding
                let #output = #p::call_once(move || {
                    #fake_return
                    #body
                });
                #p::release_blocking(#guard);
                #output
            }
        }
        Shape::FutureInline { call, block, .. } => {
            let acquire = acquire(false);
            let block = touch_key_names(block, args, &names);
            let inner = quote! {
                async move {
                    #fake_return
                    let #lock = match #lock {
                        ::core::result::Result::Ok(#lock) => #lock,
                        ::core::result::Result::Err(#error) => #on_error,
                    };
                    #acquire
                    #guard_binding
                    let #output = #block.await;
                    #p::release(#guard).await;
                    #output
                }
            };
            let wrapped = match call {
                Some(call) => quote!(#call(#inner)),
                None => inner,
            };
            quote! {
                let #lock = #lock_result;
                #wrapped
            }
        }
        Shape::FutureOpaque { boxed, output: _ } => {
            let acquire = acquire(false);
            let inner = quote! {
                async move {
                    #fake_return
                    let #lock = match #lock {
                        ::core::result::Result::Ok(#lock) => #lock,
                        ::core::result::Result::Err(#error) => #on_error,
                    };
                    #acquire
                    let #output = #future.await;
                    #p::release(#guard).await;
                    #output
                }
            };
            let wrapped = if *boxed {
                quote!(::std::boxed::Box::pin(#inner))
            } else {
                inner
            };
            quote! {
                let #lock = #lock_result;
                let #future = #p::call_once(move || #body);
                #wrapped
            }
        }
    };

    let LockedFn {
        attrs,
        vis,
        sig,
        inner_attrs,
        ..
    } = func;
    let brace = body.brace_token;
    let mut out = quote!(#(#attrs)* #vis #sig);
    brace.surround(&mut out, |tokens| {
        tokens.extend(quote!(#(#inner_attrs)*));
        tokens.extend(body_tokens);
    });
    Ok(out)
}

/// `#[async_trait]` rebinds every parameter inside its async block (`let id = id;`). A
/// parameter used only in the key is then an unused variable there: mark those used, after
/// the leading rebindings.
fn touch_key_names(block: &ExprAsync, args: &Args, names: &BTreeMap<String, Ident>) -> ExprAsync {
    let mut block = block.clone();
    let key = args.key.as_ref().expect("parsed args have a key");
    let is_rebinding = |stmt: &Stmt| match stmt {
        Stmt::Local(local) => local.init.as_ref().is_some_and(
            |init| matches!(&*init.expr, Expr::Path(p) if p.path.get_ident().is_some()),
        ),
        // `if let Some(__ret) = None::<R> { return __ret; }`
        Stmt::Expr(Expr::If(e), _) => matches!(&*e.cond, Expr::Let(_)),
        _ => false,
    };
    let at = block
        .block
        .stmts
        .iter()
        .take_while(|s| is_rebinding(s))
        .count();
    if at == 0 {
        return block;
    }
    let mut touched = Vec::new();
    for part in &key.template.parts {
        let Part::Placeholder(p) = part else { continue };
        let root = p.root.strip_prefix("r#").unwrap_or(&p.root);
        if root == "self" || touched.iter().any(|t: &Ident| t == root) {
            continue;
        }
        if let Some(ident) = names.get(root) {
            touched.push(ident.clone());
        }
    }
    let stmts = touched
        .iter()
        .map(|ident| -> Stmt { syn::parse_quote!(let _ = &#ident;) });
    let tail = block.block.stmts.split_off(at);
    block.block.stmts.extend(stmts);
    block.block.stmts.extend(tail);
    block
}

/// Gives every token of `tokens` the location `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|tt| match tt {
            TokenTree::Group(g) => {
                let mut group = Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                TokenTree::Group(group)
            }
            mut tt => {
                tt.set_span(span);
                tt
            }
        })
        .collect()
}

/// An expression of type `Result<Lock, Error>`: the rendered key and the options.
fn lock_result(
    args: &Args,
    names: &BTreeMap<String, Ident>,
    p: &TokenStream,
    l: &Locals,
) -> TokenStream {
    let key = args.key.as_ref().expect("parsed args have a key");
    let lit = &key.lit;
    let span = lit.span();
    let parts = key.template.parts.iter().map(|part| match part {
        Part::Literal(text) => quote_spanned!(span=> #p::KeyPart::Literal(#text)),
        Part::Placeholder(ph) => {
            let root = ph.root.strip_prefix("r#").unwrap_or(&ph.root);
            let mut ident = names
                .get(root)
                .cloned()
                .unwrap_or_else(|| Ident::new(root, span));
            ident.set_span(span);
            let fields = ph.fields.iter().map(|f| {
                if f.bytes().all(|b| b.is_ascii_digit()) {
                    let index = syn::Index {
                        index: f.parse().unwrap_or_default(),
                        span,
                    };
                    quote_spanned!(span=> .#index)
                } else {
                    let field = syn::parse_str::<Ident>(f).map_or_else(
                        |_| Ident::new(f, span),
                        |mut i| {
                            i.set_span(span);
                            i
                        },
                    );
                    quote_spanned!(span=> .#field)
                }
            });
            let name = &ph.text;
            quote_spanned! {span=>
                #p::KeyPart::Value {
                    name: #name,
                    value: #p::display_value(&#ident #(#fields)*),
                }
            }
        }
    });
    let mut options = TokenStream::new();
    if let Some(client) = &args.client {
        let cspan = client.span();
        options.extend(quote_spanned!(cspan=> .client(#p::AsClient::to_client(&(#client)))));
    }
    if let Some((ms, span)) = args.acquire_timeout_ms {
        options.extend(quote_spanned!(span=> .acquire_timeout(#p::Duration::from_millis(#ms))));
    }
    if let Some((secs, span)) = args.lock_timeout_seconds {
        options.extend(quote_spanned!(span=> .lock_timeout(#p::Duration::from_secs(#secs))));
    }
    if let Some((on, span)) = args.renew {
        options.extend(quote_spanned!(span=> .renew(#on)));
    }
    let key_local = &l.key;
    let error = &l.error;
    quote! {
        match #p::render(#lit, &[#(#parts),*]) {
            ::core::result::Result::Ok(#key_local) => {
                ::core::result::Result::Ok(#p::Lock::new(#key_local) #options)
            }
            ::core::result::Result::Err(#error) => ::core::result::Result::Err(#error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(attr: &str, item: &str) -> String {
        consul_lock(attr.parse().unwrap(), item.parse().unwrap()).to_string()
    }

    fn expand_fn(attr: &str, item: &str) -> syn::ItemFn {
        let out = expand(attr, item);
        assert!(!out.contains("compile_error"), "unexpected error: {out}");
        syn::parse_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    fn compact(s: &str) -> String {
        s.chars().filter(|c| !c.is_whitespace()).collect()
    }

    #[test]
    fn the_signature_and_attributes_are_kept() {
        let item =
            "#[doc = \"d\"] #[inline] pub(crate) async fn f<'a, T: Clone>(x: &'a T, n: u32) \
                    -> Result<&'a T, E> where T: Send { Ok(x) }";
        let out = expand_fn("key = \"k/<n>\"", item);
        let original: syn::ItemFn = syn::parse_str(item).unwrap();
        let (a, b) = (&original.attrs, &out.attrs);
        assert_eq!(quote!(#(#a)*).to_string(), quote!(#(#b)*).to_string());
        let (a, b) = (&original.sig, &out.sig);
        assert_eq!(quote!(#a).to_string(), quote!(#b).to_string());
        let (a, b) = (&original.vis, &out.vis);
        assert_eq!(quote!(#a).to_string(), quote!(#b).to_string());
    }

    #[test]
    fn async_fn_awaits_acquire_and_release() {
        let out = compact(&expand(
            "key = \"jobs/<id>\", acquire_timeout_ms = 500, lock_timeout_seconds = 30, renew",
            "async fn f(id: u32) -> Result<(), E> { Ok(()) }",
        ));
        for needle in [
            "::consul_lock::__private::Lock::acquire(&consul_lock_lock).await",
            "::consul_lock::__private::release(consul_lock_guard).await",
            "asyncmove{",
            ".acquire_timeout(::consul_lock::__private::Duration::from_millis(500u64))",
            ".lock_timeout(::consul_lock::__private::Duration::from_secs(30u64))",
            ".renew(true)",
            "::consul_lock::__private::FailHard::lock_error",
            "KeyPart::Literal(\"jobs/\")",
            "name:\"id\",value:::consul_lock::__private::display_value(&id)",
        ] {
            assert!(out.contains(needle), "missing {needle} in {out}");
        }
        assert!(!out.contains("blocking"), "{out}");
        assert!(
            !out.contains(".client("),
            "no client option: the default client"
        );
    }

    #[test]
    fn sync_fn_blocks_and_runs_the_body_in_a_closure() {
        let out = compact(&expand(
            "key = \"jobs/<self.tenant>\", client = self.consul",
            "fn f(&self) -> Result<(), E> { Ok(()) }",
        ));
        for needle in [
            "Lock::acquire_blocking(&consul_lock_lock)",
            "release_blocking(consul_lock_guard)",
            "call_once(move||{",
            ".client(::consul_lock::__private::AsClient::to_client(&(self.consul)))",
            "display_value(&self.tenant)",
        ] {
            assert!(out.contains(needle), "missing {needle} in {out}");
        }
        assert!(!out.contains(".await"), "{out}");
    }

    #[test]
    fn fail_soft_tries_and_reports_not_acquired() {
        let out = compact(&expand(
            "key = \"k\", fail_soft",
            "async fn f() -> Option<u32> { Some(1) }",
        ));
        assert!(
            out.contains("Lock::try_acquire(&consul_lock_lock).await"),
            "{out}"
        );
        assert!(out.contains("FailSoft::not_acquired()"), "{out}");
        assert!(!out.contains("FailHard"), "{out}");
    }

    #[test]
    fn guard_binds_a_reference_for_the_body() {
        let out = compact(&expand(
            "key = \"k\", guard = lock",
            "async fn f() -> Result<u64, E> { Ok(lock.fencing_token()) }",
        ));
        assert!(
            out.contains("letlock:&::consul_lock::__private::LockGuard=&consul_lock_guard;"),
            "{out}"
        );
    }

    #[test]
    fn renamed_crate_path() {
        let out = compact(&expand(
            "key = \"k\", crate = \"locks\"",
            "fn f() -> Result<(), E> { Ok(()) }",
        ));
        assert!(out.contains("locks::__private::Lock::new"), "{out}");
        assert!(!out.contains("::consul_lock::"), "{out}");
    }

    #[test]
    fn boxed_async_block_is_wrapped_in_place() {
        let out = compact(&expand(
            "key = \"k/<id>\", guard = lock",
            "fn run<'a>(&'a self, id: u32) -> Pin<Box<dyn Future<Output = Result<u32, E>> + Send + 'a>> \
             { Box::pin(async move { let __self = self; Ok(id) }) }",
        ));
        // One box: the original call wraps the new async block, which awaits the original.
        assert_eq!(out.matches("Box::pin").count(), 1, "{out}");
        assert!(out.contains("Box::pin(asyncmove{"), "{out}");
        // `id` is used by the key: marked used after `#[async_trait]`'s rebinding.
        assert!(
            out.contains("letconsul_lock_output=asyncmove{let__self=self;let_=&id;Ok(id)}.await;"),
            "{out}"
        );
        assert!(out.contains("letlock:&"), "{out}");
    }

    #[test]
    fn other_future_bodies_are_built_then_awaited_under_the_lock() {
        let out = compact(&expand(
            "key = \"k\"",
            "fn f() -> impl Future<Output = Result<u32, E>> { let x = 1; ready(Ok(x)) }",
        ));
        assert!(
            out.contains("letconsul_lock_future=::consul_lock::__private::call_once(move||{letx=1;ready(Ok(x))});"),
            "{out}"
        );
        assert!(out.contains("consul_lock_future.await"), "{out}");
        let out = compact(&expand(
            "key = \"k\"",
            "fn f() -> BoxFuture<'static, Result<u32, E>> { make() }",
        ));
        assert!(out.contains("::std::boxed::Box::pin(asyncmove{"), "{out}");
    }

    #[test]
    fn impl_trait_in_the_result_is_erased_for_inference() {
        let out = compact(&expand(
            "key = \"k\"",
            "async fn f() -> Result<impl Display, E> { Ok(1) }",
        ));
        assert!(
            out.contains("letconsul_lock_fake_return:Result<_,E>=loop{};"),
            "{out}"
        );
    }

    fn error_of(attr: &str, item: &str) -> String {
        let out = expand(attr, item);
        assert!(out.contains("compile_error"), "expected an error: {out}");
        // The function is still emitted, unchanged, next to the error.
        let name = syn::parse_str::<LockedFn>(item)
            .unwrap()
            .sig
            .ident
            .to_string();
        assert!(
            out.contains(&format!("fn {name}")),
            "the function is kept: {out}"
        );
        out
    }

    #[test]
    fn unsupported_shapes() {
        assert!(
            error_of("key = \"k\"", "const fn f() -> Result<(), E> { Ok(()) }")
                .contains("const fn")
        );
        assert!(error_of("key = \"k\"", "extern \"C\" fn f() -> u32 { 1 }").contains("extern"));
        assert!(error_of("key = \"k\"", "fn f(&self) -> Result<(), E>;")
            .contains("needs a function body"));
        assert!(error_of("key = \"k\"", "fn f() { }").contains("needs a return type"));
        let out = expand("key = \"k\"", "struct S;");
        assert!(
            out.contains("goes on a function") && out.contains("struct S"),
            "{out}"
        );
    }

    #[test]
    fn bad_attributes_keep_the_function() {
        assert!(error_of("", "fn f() -> Result<(), E> { Ok(()) }").contains("missing `key`"));
        assert!(error_of(
            "key = \"<nope>\"",
            "fn f(id: u32) -> Result<(), E> { Ok(()) }"
        )
        .contains("unknown name `nope`"));
        assert!(error_of(
            "key = \"<self.x>\"",
            "fn f(id: u32) -> Result<(), E> { Ok(()) }"
        )
        .contains("needs a method with a `self` receiver"));
    }

    #[test]
    fn names_come_from_patterns() {
        let sig: Signature = syn::parse_str(
            "fn f(&self, (a, mut b): (u8, u8), S { x, y: ref z, .. }: S, [c, _]: [u8; 2], _: u8)",
        )
        .unwrap();
        let names: Vec<_> = parameter_names(&sig).into_keys().collect();
        assert_eq!(names, ["a", "b", "c", "self", "x", "z"]);
    }

    #[test]
    fn generated_locals_are_mixed_site() {
        let l = Locals::new();
        for ident in [
            &l.lock, &l.guard, &l.error, &l.output, &l.future, &l.key, &l.fake,
        ] {
            assert!(ident.to_string().starts_with("consul_lock_"));
        }
    }
}
