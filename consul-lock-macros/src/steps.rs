//! The steps every shape of locked function is built from, each written once: take the
//! rendered lock or leave with the error, acquire it (leaving with "not acquired" or the
//! error), bind `guard`, run the body, release. The shapes in `expand.rs` only decide where
//! these steps go.

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{Ident, Token, Type};

use crate::args::Args;

/// Generated locals: invisible to the user's code (mixed-site hygiene).
pub(crate) struct Locals {
    /// The `Lock` or `MultiLock` (or, in a future-returning fn, the `Result<_, Error>` of
    /// rendering).
    pub(crate) lock: Ident,
    /// The `LockGuard` (or `MultiLockGuard`) once acquired.
    pub(crate) guard: Ident,
    /// A lock error on its way out.
    pub(crate) error: Ident,
    /// The body's value, kept while the lock is released.
    pub(crate) output: Ident,
    /// The future an opaque future-returning body built.
    pub(crate) future: Ident,
    /// The rendered key (with several keys, the first; the others add `_1`, `_2`, …).
    pub(crate) key: Ident,
    /// The never-assigned value that makes the return type drive inference.
    pub(crate) fake: Ident,
}

impl Locals {
    pub(crate) fn new() -> Self {
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

/// Whether the generated code awaits or blocks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Io {
    Async,
    Blocking,
}

/// The steps for one function.
pub(crate) struct Steps<'a> {
    /// The hidden module's path, `::consul_lock::__private` or the renamed crate's.
    pub(crate) p: TokenStream,
    pub(crate) l: Locals,
    args: &'a Args,
    /// `FailHard` or `FailSoft`, spanned at the type that reports lock errors.
    fail: TokenStream,
    /// Where that type is written: errors about it point there.
    ret_span: Span,
    /// That type with `impl Trait` erased to `_`.
    result_ty: Type,
}

impl<'a> Steps<'a> {
    /// `result_ty` is the type that reports lock errors: the function's result, or the
    /// output of the future it returns.
    pub(crate) fn new(args: &'a Args, result_ty: &Type) -> Self {
        let p = args.private_path();
        let ret_span = result_ty.span();
        // Spanned at the return type (every token, so that the compiler's joined spans stay
        // there): a return type that cannot carry the outcome is reported at it.
        let fail = if args.is_fail_soft() {
            respan(quote!(#p::FailSoft), ret_span)
        } else {
            respan(quote!(#p::FailHard), ret_span)
        };
        Steps {
            p,
            l: Locals::new(),
            args,
            fail,
            ret_span,
            result_ty: erase_impl_trait(result_ty),
        }
    }

    /// `let lock = <source or return>; let guard = <acquired or return>; let name = &guard;`.
    /// `source` is an expression of type `Result<Lock, Error>`.
    pub(crate) fn lock_and_acquire(&self, source: TokenStream, io: Io) -> TokenStream {
        let Steps { l, .. } = self;
        let lock = &l.lock;
        let take = self.unwrap_or_return(lock, source, false);
        let fail_soft = self.args.is_fail_soft();
        // Several keys: the same steps with `MultiLock` and `MultiLockGuard`.
        let (lock_ty, guard_ty) = self.kind();
        let acquire = match (io, fail_soft) {
            (Io::Blocking, false) => quote!(#lock_ty::acquire_blocking(&#lock)),
            (Io::Blocking, true) => quote!(#lock_ty::try_acquire_blocking(&#lock)),
            (Io::Async, false) => quote!(#lock_ty::acquire(&#lock).await),
            (Io::Async, true) => quote!(#lock_ty::try_acquire(&#lock).await),
        };
        let acquire = self.unwrap_or_return(&l.guard, acquire, fail_soft);
        let guard = &l.guard;
        let binding = self.args.guard.as_ref().map(|name| {
            quote! {
                let #name: &#guard_ty = &#guard;
            }
        });
        quote! {
            #take
            #acquire
            #binding
        }
    }

    /// What is taken and its guard: `Lock`/`LockGuard`, or with `limit = N`
    /// `Semaphore`/`SemaphoreGuard`.
    /// The lock type and its guard: a lock on several keys, a semaphore (`limit = N`), or a lock.
    fn kind(&self) -> (TokenStream, TokenStream) {
        let p = &self.p;
        if self.args.is_multi() {
            (quote!(#p::MultiLock), quote!(#p::MultiLockGuard))
        } else if self.args.limit.is_some() {
            (quote!(#p::Semaphore), quote!(#p::SemaphoreGuard))
        } else {
            (quote!(#p::Lock), quote!(#p::LockGuard))
        }
    }

    /// The one lock-outcome `match`: `let bind = match result { Ok(v) => v, .. }`, leaving
    /// the function with `Fail*::lock_error(error)` on an error and, when `maybe_none` (a
    /// fail-soft try), with `FailSoft::not_acquired()` on `Ok(None)`.
    fn unwrap_or_return(&self, bind: &Ident, result: TokenStream, maybe_none: bool) -> TokenStream {
        let (fail, ret_span, error) = (&self.fail, self.ret_span, &self.l.error);
        let error_at_ret = Ident::new(&error.to_string(), Span::mixed_site().located_at(ret_span));
        let on_error = quote_spanned!(ret_span=> return #fail::lock_error(#error_at_ret));
        let ok = if maybe_none {
            let not_acquired = quote_spanned!(ret_span=> return #fail::not_acquired());
            quote! {
                ::core::result::Result::Ok(::core::option::Option::Some(#bind)) => #bind,
                ::core::result::Result::Ok(::core::option::Option::None) => #not_acquired,
            }
        } else {
            quote!(::core::result::Result::Ok(#bind) => #bind,)
        };
        quote! {
            let #bind = match #result {
                #ok
                ::core::result::Result::Err(#error) => #on_error,
            };
        }
    }

    /// `let output = run; release(guard); output`: `run` is the body's value, the release
    /// is waited for (a failed one is logged by the runtime), the value is returned.
    pub(crate) fn run_and_release(&self, run: TokenStream, io: Io) -> TokenStream {
        let Steps { p, l, .. } = self;
        let (guard, output) = (&l.guard, &l.output);
        let release = if self.args.is_multi() {
            match io {
                Io::Async => quote!(#p::release_multi(#guard).await;),
                Io::Blocking => quote!(#p::release_multi_blocking(#guard);),
            }
        } else if self.args.limit.is_some() {
            match io {
                Io::Async => quote!(#p::release_slot(#guard).await;),
                Io::Blocking => quote!(#p::release_slot_blocking(#guard);),
            }
        } else {
            match io {
                Io::Async => quote!(#p::release(#guard).await;),
                Io::Blocking => quote!(#p::release_blocking(#guard);),
            }
        };
        quote! {
            let #output = #run;
            #release
            #output
        }
    }

    /// A never-taken `return` of the result type, first in the body's block or closure, so
    /// that the body's `?` and `.into()` infer against the function's return type as they
    /// did without the attribute.
    pub(crate) fn fake_return(&self) -> TokenStream {
        let (fake, result_ty) = (&self.l.fake, &self.result_ty);
        quote_spanned! {self.ret_span=>
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
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn steps_for(attr: &str) -> (Args, Type) {
        (
            syn::parse_str(attr).unwrap(),
            syn::parse_str("Result<impl Display, E>").unwrap(),
        )
    }

    fn compact(t: &TokenStream) -> String {
        t.to_string()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect()
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

    #[test]
    fn fail_hard_acquires_or_returns_the_error() {
        let (args, ty) = steps_for("key = \"k\"");
        let out = compact(&Steps::new(&args, &ty).lock_and_acquire(quote!(src), Io::Blocking));
        assert!(out.contains("letconsul_lock_lock=matchsrc{"), "{out}");
        assert!(
            out.contains("Lock::acquire_blocking(&consul_lock_lock)"),
            "{out}"
        );
        assert_eq!(
            out.matches("FailHard::lock_error(consul_lock_error)")
                .count(),
            2,
            "{out}"
        );
        assert!(
            !out.contains("not_acquired") && !out.contains("LockGuard"),
            "{out}"
        );
    }

    #[test]
    fn fail_soft_returns_not_acquired_on_none() {
        let (args, ty) = steps_for("key = \"k\", fail_soft, guard = g");
        let out = compact(&Steps::new(&args, &ty).lock_and_acquire(quote!(src), Io::Async));
        assert!(
            out.contains("Lock::try_acquire(&consul_lock_lock).await"),
            "{out}"
        );
        assert!(
            out.contains("Option::None)=>return::consul_lock::__private::FailSoft::not_acquired()"),
            "{out}"
        );
        assert!(out.contains("letg:&::consul_lock::__private::LockGuard=&consul_lock_guard;"));
    }

    #[test]
    fn a_limit_takes_a_semaphore_slot() {
        let (args, ty) = steps_for("key = \"k\", limit = 3, guard = g");
        let steps = Steps::new(&args, &ty);
        let out = compact(&steps.lock_and_acquire(quote!(src), Io::Async));
        assert!(
            out.contains("Semaphore::acquire(&consul_lock_lock).await"),
            "{out}"
        );
        assert!(out.contains("letg:&::consul_lock::__private::SemaphoreGuard=&consul_lock_guard;"));
        let out = compact(&steps.run_and_release(quote!(body), Io::Blocking));
        assert!(
            out.contains("release_slot_blocking(consul_lock_guard)"),
            "{out}"
        );
    }

    #[test]
    fn the_fake_return_has_impl_trait_erased() {
        let (args, ty) = steps_for("key = \"k\"");
        let out = compact(&Steps::new(&args, &ty).fake_return());
        assert!(
            out.contains("letconsul_lock_fake_return:Result<_,E>=loop{};"),
            "{out}"
        );
    }
}
