//! Code generation: the function keeps its signature; only its body changes.
//!
//! An example (`expansion_example_is_true` checks it). This input:
//!
//! ```text
//! #[consul_lock(key = "jobs/<id>", guard = lock)]
//! async fn run(id: u64) -> Result<u64, AppError> {
//!     Ok(lock.fencing_token() + id)
//! }
//! ```
//!
//! becomes the following. The locals `consul_lock_*` have mixed-site hygiene, so the body
//! cannot name them; `FailHard` is spanned at the return type, so a type that cannot carry a
//! lock error is reported there; the `if false` return makes `?` and `.into()` in the body
//! infer against the return type as they did before; the body's statements go into the
//! `async move` block without the body's braces.
//!
//! ```text
//! async fn run(id: u64) -> Result<u64, AppError> {
//!     // `key::lock_result`: the key rendered (each value escaped) and the options; then
//!     // `Steps::lock_and_acquire`: the lock, or leave with the error.
//!     let consul_lock_lock = match match ::consul_lock::__private::render(
//!         "jobs/<id>",
//!         &[
//!             ::consul_lock::__private::KeyPart::Literal("jobs/"),
//!             ::consul_lock::__private::KeyPart::Value {
//!                 name: "id",
//!                 value: ::consul_lock::__private::display_value(&id),
//!             }
//!         ])
//!     {
//!         ::core::result::Result::Ok(consul_lock_key) => {
//!             // The metrics' `lock` label is the template, never the rendered key.
//!             ::core::result::Result::Ok(
//!                 ::consul_lock::__private::Lock::new(consul_lock_key).metrics_name("jobs/<id>")
//!             )
//!         }
//!         ::core::result::Result::Err(consul_lock_error) =>
//!             ::core::result::Result::Err(consul_lock_error),
//!     } {
//!         ::core::result::Result::Ok(consul_lock_lock) => consul_lock_lock,
//!         ::core::result::Result::Err(consul_lock_error) =>
//!             return ::consul_lock::__private::FailHard::lock_error(consul_lock_error),
//!     };
//!     // Acquired, or leave with the error (with `fail_soft`: or with "not acquired").
//!     let consul_lock_guard =
//!         match ::consul_lock::__private::Lock::acquire(&consul_lock_lock).await {
//!             ::core::result::Result::Ok(consul_lock_guard) => consul_lock_guard,
//!             ::core::result::Result::Err(consul_lock_error) =>
//!                 return ::consul_lock::__private::FailHard::lock_error(consul_lock_error),
//!         };
//!     // `guard = lock`.
//!     let lock: &::consul_lock::__private::LockGuard = &consul_lock_guard;
//!     // The body in its own block: `return` and `?` leave only the body.
//!     let consul_lock_output = async move {
//!         #[allow(
//!             unknown_lints,
//!             unreachable_code,
//!             clippy::diverging_sub_expression,
//!             clippy::empty_loop,
//!             clippy::let_unit_value,
//!             clippy::let_with_type_underscore,
//!             clippy::needless_return,
//!             clippy::unreachable
//!         )]
//!         if false {
//!             let consul_lock_fake_return: Result<u64, AppError> = loop {};
//!             return consul_lock_fake_return;
//!         }
//!         // The body's statements, without its braces (with them, a one-line body would
//!         // get rustc's "unnecessary braces" warning).
//!         Ok(lock.fencing_token() + id)
//!     }
//!     .await;
//!     // `Steps::run_and_release`: the release is awaited, then the body's value returned.
//!     ::consul_lock::__private::release(consul_lock_guard).await;
//!     consul_lock_output
//! }
//! ```
//!
//! The pieces: `check` refuses what cannot be locked, `shape` tells how the function gives
//! its result, `key` builds the `Result<Lock, Error>` expression, `steps` writes each step
//! once (lock, acquire, run, release); the four generators below put them in place.

use std::collections::BTreeMap;

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Block, Expr, ExprAsync, Ident, Stmt};

use crate::args::Args;
use crate::check::{self, Checked};
use crate::func::LockedFn;
use crate::key;
use crate::shape::{self, Shape};
use crate::steps::{Io, Steps};
use crate::template::Part;

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

/// Checks the function, classifies its shape and generates the new body for that shape.
fn generate(args: &Args, func: &LockedFn) -> syn::Result<TokenStream> {
    let Checked { body, ret, names } = check::check(args, func)?;
    let shape = shape::classify(args, &func.sig, ret, body)?;
    let steps = Steps::new(args, shape.result_type(ret));
    let lock_result = key::lock_result(args, &names, &steps.p, &steps.l);
    let new_body = match &shape {
        Shape::Async => async_fn(&steps, lock_result, body),
        Shape::Sync => sync_fn(&steps, lock_result, body),
        Shape::FutureInline { call, block, .. } => {
            let block = touch_key_names(block, args, &names);
            future_inline(&steps, lock_result, call.as_ref(), &block)
        }
        Shape::FutureOpaque { boxed, .. } => future_opaque(&steps, lock_result, *boxed, body),
    };
    Ok(func.with_body(body, new_body))
}

/// The body's statements, without its braces, to go into a block of the expansion's own.
/// Emitted with its braces, the body would be the tail of that block, and rustc's
/// `unused_braces` lint would call the braces of a one-line body (`{ Ok(id) }`) unnecessary
/// ("help: remove these braces", which breaks the code); the statements alone are the same
/// code in the same scope (the block before them, the fake return, binds nothing).
fn statements(body: &Block) -> TokenStream {
    let stmts = &body.stmts;
    quote!(#(#stmts)*)
}

/// `async fn`: lock, run the body as `async move { body }.await` (so `return` and `?` leave
/// only the body), release.
fn async_fn(s: &Steps, lock_result: TokenStream, body: &Block) -> TokenStream {
    let lock_and_acquire = s.lock_and_acquire(lock_result, Io::Async);
    let fake_return = s.fake_return();
    let body = statements(body);
    let run = quote! {
        async move {
            #fake_return
            #body
        }
        .await
    };
    let run_and_release = s.run_and_release(run, Io::Async);
    quote!(#lock_and_acquire #run_and_release)
}

/// A plain `fn`: lock (blocking), run the body as a `move` closure called once, release.
fn sync_fn(s: &Steps, lock_result: TokenStream, body: &Block) -> TokenStream {
    let p = &s.p;
    let lock_and_acquire = s.lock_and_acquire(lock_result, Io::Blocking);
    let fake_return = s.fake_return();
    let body = statements(body);
    let run = quote! {
        #p::call_once(move || {
            #fake_return
            #body
        })
    };
    let run_and_release = s.run_and_release(run, Io::Blocking);
    quote!(#lock_and_acquire #run_and_release)
}

/// A fn returning `[call(]async move { .. }[)]`: the key is rendered when the function is
/// called; a new `async move` block, in the same `call`, locks when first polled, awaits the
/// original block and releases.
fn future_inline(
    s: &Steps,
    lock_result: TokenStream,
    call: Option<&Expr>,
    block: &ExprAsync,
) -> TokenStream {
    let lock = &s.l.lock;
    let fake_return = s.fake_return();
    let lock_and_acquire = s.lock_and_acquire(quote!(#lock), Io::Async);
    let run_and_release = s.run_and_release(quote!(#block.await), Io::Async);
    let inner = quote! {
        async move {
            #fake_return
            #lock_and_acquire
            #run_and_release
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

/// A fn returning a future built any other way: the key is rendered and the body is called
/// (building the future) when the function is called; a new `async move` block (boxed if
/// the return type is) locks when first polled, awaits that future and releases.
fn future_opaque(s: &Steps, lock_result: TokenStream, boxed: bool, body: &Block) -> TokenStream {
    let (p, lock, future) = (&s.p, &s.l.lock, &s.l.future);
    let fake_return = s.fake_return();
    let lock_and_acquire = s.lock_and_acquire(quote!(#lock), Io::Async);
    let run_and_release = s.run_and_release(quote!(#future.await), Io::Async);
    let inner = quote! {
        async move {
            #fake_return
            #lock_and_acquire
            #run_and_release
        }
    };
    let wrapped = if boxed {
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

/// `#[async_trait]` rebinds every parameter inside its async block (`let id = id;`). A
/// parameter used only in the key is then an unused variable there: mark those used, after
/// the leading rebindings.
fn touch_key_names(block: &ExprAsync, args: &Args, names: &BTreeMap<String, Ident>) -> ExprAsync {
    let mut block = block.clone();
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
    for part in args.keys().iter().flat_map(|key| &key.template.parts) {
        let Part::Placeholder(p) = part else { continue };
        let root = p.root_name();
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
    fn getters_are_called_once_where_the_key_is_rendered() {
        let out = compact(&expand(
            "key = \"o/<order.customer_id()>/<self.account().owner_id()>/<order.items.first()>\"",
            "async fn f(&self, order: Order) -> Result<(), E> { Ok(()) }",
        ));
        for needle in [
            "name:\"order.customer_id()\",value:::consul_lock::__private::display_value(&order.customer_id())",
            "display_value(&self.account().owner_id())",
            "display_value(&order.items.first())",
        ] {
            assert_eq!(out.matches(needle).count(), 1, "{needle} once in {out}");
        }
        // Rendered before the lock is acquired, not in the body.
        let render = out.find("__private::render(").unwrap();
        let acquire = out.find("Lock::acquire(").unwrap();
        assert!(render < acquire, "{out}");
        let error = error_of(
            "key = \"o/<order.line(1)>\"",
            "fn f(order: Order) -> Result<(), E> { Ok(()) }",
        );
        assert!(error.contains("passes arguments to `line`"), "{error}");
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

    /// The module documentation's example: its input expands to exactly its expansion
    /// (comments aside).
    #[test]
    fn expansion_example_is_true() {
        let doc: String = include_str!("expand.rs")
            .lines()
            .take_while(|line| line.starts_with("//!"))
            .map(|line| format!("{}\n", line.trim_start_matches("//!")))
            .collect();
        let blocks: Vec<&str> = doc
            .split("```text\n")
            .skip(1)
            .map(|b| b.split("```").next().unwrap())
            .collect();
        let [input, expansion] = blocks[..] else {
            panic!("the documentation has an input and an expansion: {blocks:?}")
        };
        let (attr, item) = input.split_once(")]").unwrap();
        let attr = attr.trim().strip_prefix("#[consul_lock(").unwrap();
        let expected: TokenStream = expansion.parse().unwrap();
        // Compared without whitespace: the printer spaces some punctuation differently.
        assert_eq!(compact(&expand(attr, item)), compact(&expected.to_string()));
    }

    #[test]
    fn repeated_keys_make_one_multi_lock() {
        let out = expand(
            "key = \"a/<x>\", key = \"b/<y>\", guard = lock",
            "async fn f(x: u32, y: u32) -> Result<u32, E> { Ok(x + y) }",
        );
        assert!(!out.contains("compile_error"), "unexpected error: {out}");
        let out = compact(&out);
        for expected in [
            "MultiLock::new([consul_lock_key,consul_lock_key_1])",
            "MultiLock::acquire(&consul_lock_lock).await",
            "letlock:&::consul_lock::__private::MultiLockGuard=&consul_lock_guard;",
            "release_multi(consul_lock_guard).await",
        ] {
            assert!(out.contains(expected), "{expected} in {out}");
        }
        assert_eq!(out.matches("__private::render(").count(), 2, "{out}");
    }
}
