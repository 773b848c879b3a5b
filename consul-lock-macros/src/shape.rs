//! How a function gives its result, which decides where the lock goes (see [`classify`]).

use syn::{Block, Expr, ExprAsync, GenericArgument, PathArguments, Signature, Stmt, Type};
use syn::{TypeParamBound, TypeTraitObject};

use crate::args::Args;

/// How the function gives its result.
pub(crate) enum Shape {
    /// `async fn`.
    Async,
    /// A plain function.
    Sync,
    /// A sync function returning a future whose body is one `async move` block, bare or
    /// inside a call such as `Box::pin(..)` (what `#[async_trait]` generates).
    FutureInline {
        /// The call around the block (`Box::pin`), if any.
        call: Option<Expr>,
        block: Box<ExprAsync>,
        /// The future's `Output`.
        output: Type,
    },
    /// A sync function returning a future built some other way.
    FutureOpaque {
        /// Whether the return type is a boxed future (so the new future is boxed too).
        boxed: bool,
        /// The future's `Output`.
        output: Type,
    },
}

impl Shape {
    /// The type that reports lock errors: the function's result (`ret`), or the future's
    /// output.
    pub(crate) fn result_type<'a>(&'a self, ret: &'a Type) -> &'a Type {
        match self {
            Shape::Async | Shape::Sync => ret,
            Shape::FutureInline { output, .. } | Shape::FutureOpaque { output, .. } => output,
        }
    }
}

/// The function's shape, from its signature, return type `ret` and body.
///
/// - `async fn` → [`Shape::Async`].
/// - A return type that is a future (`impl Future<Output = T>`, `Pin<Box<dyn Future<Output =
///   T>>>`, `BoxFuture<'_, T>`, `LocalBoxFuture<'_, T>`), with a body that is one `async move`
///   block (boxed with `…::pin(..)` when the type is boxed) → [`Shape::FutureInline`];
///   any other body → [`Shape::FutureOpaque`], which cannot offer `guard` (an error at it).
/// - Anything else → [`Shape::Sync`].
pub(crate) fn classify(
    args: &Args,
    sig: &Signature,
    ret: &Type,
    body: &Block,
) -> syn::Result<Shape> {
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
    Ok(shape)
}

/// The future type of a sync function's return type, if it is one: whether it is boxed,
/// and its `Output`.
fn future_output(ty: &Type) -> Option<(bool, Type)> {
    match ty {
        Type::ImplTrait(t) => t.bounds.iter().find_map(future_bound_output),
        Type::Paren(t) => future_output(&t.elem),
        Type::Group(t) => future_output(&t.elem),
        Type::Path(p) if p.qself.is_none() => {
            let last = p.path.segments.last()?;
            match last.ident.to_string().as_str() {
                // Pin<Box<dyn Future<Output = T> + ..>>
                "Pin" => {
                    let Type::Path(boxed) = single_type_arg(&last.arguments)? else {
                        return None;
                    };
                    let last = boxed.path.segments.last()?;
                    if last.ident != "Box" {
                        return None;
                    }
                    let Type::TraitObject(TypeTraitObject { bounds, .. }) =
                        single_type_arg(&last.arguments)?
                    else {
                        return None;
                    };
                    let (_, out) = bounds.iter().find_map(future_bound_output)?;
                    Some((true, out))
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

/// The only type argument of `Name<T>`.
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
fn future_bound_output(bound: &TypeParamBound) -> Option<(bool, Type)> {
    let TypeParamBound::Trait(bound) = bound else {
        return None;
    };
    let last = bound.path.segments.last()?;
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

/// `async move { .. }`, bare or as the only argument of a call (`Box::pin(async move {..})`).
fn inline_async(block: &Block) -> Option<(Option<Expr>, ExprAsync)> {
    let [Stmt::Expr(tail, None)] = block.stmts.as_slice() else {
        return None;
    };
    match tail {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn shape_of(attr: &str, sig: &str, body: &str) -> syn::Result<Shape> {
        let args: Args = syn::parse_str(attr).unwrap();
        let sig: Signature = syn::parse_str(sig).unwrap();
        let body: Block = syn::parse_str(body).unwrap();
        let syn::ReturnType::Type(_, ret) = &sig.output else {
            panic!("test signatures return something")
        };
        classify(&args, &sig, ret, &body)
    }

    fn name(shape: &syn::Result<Shape>) -> &'static str {
        match shape {
            Ok(Shape::Async) => "async",
            Ok(Shape::Sync) => "sync",
            Ok(Shape::FutureInline { call: None, .. }) => "inline",
            Ok(Shape::FutureInline { call: Some(_), .. }) => "inline-call",
            Ok(Shape::FutureOpaque { boxed: false, .. }) => "opaque",
            Ok(Shape::FutureOpaque { boxed: true, .. }) => "opaque-boxed",
            Err(_) => "error",
        }
    }

    #[test]
    fn shapes() {
        let k = "key = \"k\"";
        for (sig, body, expected) in [
            ("async fn f() -> R", "{ x }", "async"),
            ("fn f() -> R", "{ x }", "sync"),
            (
                "fn f() -> impl Future<Output = R> + Send",
                "{ async move { x } }",
                "inline",
            ),
            (
                "fn f() -> impl Future<Output = R>",
                "{ ready(x) }",
                "opaque",
            ),
            // A non-`move` block borrows what the lock wrapper would move: opaque.
            (
                "fn f() -> impl Future<Output = R>",
                "{ async { x } }",
                "opaque",
            ),
            (
                "fn f() -> Pin<Box<dyn Future<Output = R> + Send + 'a>>",
                "{ Box::pin(async move { x }) }",
                "inline-call",
            ),
            // A boxed type needs the boxing call to stay; an unboxed one must not get one.
            (
                "fn f() -> Pin<Box<dyn Future<Output = R>>>",
                "{ async move { x } }",
                "opaque-boxed",
            ),
            (
                "fn f() -> BoxFuture<'static, R>",
                "{ make() }",
                "opaque-boxed",
            ),
            (
                "fn f() -> LocalBoxFuture<'_, R>",
                "{ Box::pin(async move { x }) }",
                "inline-call",
            ),
            ("fn f() -> Box<dyn Future<Output = R>>", "{ x }", "sync"),
            ("fn f() -> Result<R, E>", "{ async move { x } }", "sync"),
        ] {
            assert_eq!(name(&shape_of(k, sig, body)), expected, "{sig} {body}");
        }
    }

    #[test]
    fn the_output_reports_lock_errors() {
        let shape = shape_of(
            "key = \"k\"",
            "fn f() -> BoxFuture<'a, Option<u8>>",
            "{ m() }",
        );
        let ret: Type = syn::parse_str("BoxFuture<'a, Option<u8>>").unwrap();
        let ty = shape.unwrap();
        let ty = ty.result_type(&ret);
        assert_eq!(quote::quote!(#ty).to_string(), "Option < u8 >");
    }

    #[test]
    fn guard_needs_an_inline_future() {
        let e = shape_of(
            "key = \"k\", guard = g",
            "fn f() -> impl Future<Output = R>",
            "{ ready(x) }",
        );
        assert_eq!(name(&e), "error");
        let e = shape_of(
            "key = \"k\", guard = g",
            "fn f() -> impl Future<Output = R>",
            "{ async move { x } }",
        );
        assert_eq!(name(&e), "inline");
    }
}
