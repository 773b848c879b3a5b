//! The function under the attribute, as parsed: free, in an impl block, or in a trait
//! (where the body may be missing, which `check` reports). Its signature and attributes are
//! emitted unchanged; only the body is replaced.

use std::collections::BTreeMap;

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Block, FnArg, Ident, Pat, Signature, Token, Visibility};

/// A function as the attribute sees it.
pub(crate) struct LockedFn {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    pub(crate) inner_attrs: Vec<Attribute>,
    /// `None` for a trait method without a default body.
    pub(crate) body: Option<Block>,
    /// The `;` of a trait method without a body.
    pub(crate) semi: Option<Token![;]>,
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

impl LockedFn {
    /// The function with `body` in place of its body: same attributes, visibility,
    /// signature and inner attributes, and the original braces (so spans stay put).
    pub(crate) fn with_body(&self, original: &Block, body: TokenStream) -> TokenStream {
        let LockedFn {
            attrs,
            vis,
            sig,
            inner_attrs,
            ..
        } = self;
        let mut out = quote!(#(#attrs)* #vis #sig);
        original.brace_token.surround(&mut out, |tokens| {
            tokens.extend(quote!(#(#inner_attrs)*));
            tokens.extend(body);
        });
        out
    }
}

/// The names a template may start with: every binding in the parameters, and `self`. Keyed
/// by the name without `r#`; the value is the identifier as written.
pub(crate) fn parameter_names(sig: &Signature) -> BTreeMap<String, Ident> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn raw_names_are_keyed_without_r_hash() {
        let sig: Signature = syn::parse_str("fn f(r#type: u8)").unwrap();
        let names = parameter_names(&sig);
        assert_eq!(names["type"].to_string(), "r#type");
    }

    #[test]
    fn bodiless_trait_methods_parse() {
        let f: LockedFn = syn::parse_str("fn f(&self) -> u8;").unwrap();
        assert!(f.body.is_none() && f.semi.is_some());
    }
}
