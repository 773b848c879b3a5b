//! The lock expression: the key rendered from the template's parts (every value through the
//! runtime's `key::render`, which escapes it) and the options set in the attribute.

use std::collections::BTreeMap;

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::Ident;

use crate::args::{Args, Key};
use crate::placeholder::{Access, Placeholder};
use crate::steps::Locals;
use crate::template::Part;

/// An expression of type `Result<Lock, Error>` (with several keys, `Result<MultiLock,
/// Error>`; with `limit = N`, `Result<Semaphore, Error>`): the rendered keys and the options.
/// Every placeholder is evaluated once, inside this expression, so the borrows it takes end
/// with it.
pub(crate) fn lock_result(
    args: &Args,
    names: &BTreeMap<String, Ident>,
    p: &TokenStream,
    l: &Locals,
) -> TokenStream {
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
    let keys = args.keys();
    // One rendered-key local per template (`consul_lock_key`, then `consul_lock_key_1`, …).
    let locals: Vec<Ident> = (0..keys.len())
        .map(|i| match i {
            0 => l.key.clone(),
            i => Ident::new(&format!("{}_{i}", l.key), l.key.span()),
        })
        .collect();
    let error = &l.error;
    // The innermost arm builds the lock from every rendered key; each key's `render` wraps it.
    let mut expr = if args.is_multi() {
        // The metrics' `lock` label: the templates, never the rendered keys.
        let templates = keys
            .iter()
            .map(|k| k.lit.value())
            .collect::<Vec<_>>()
            .join(", ");
        quote! {
            ::core::result::Result::Ok(
                #p::MultiLock::new([#(#locals),*]).metrics_name(#templates) #options
            )
        }
    } else {
        let key_local = &locals[0];
        // The metrics' `lock` label: the template, never the rendered key.
        let template = keys[0].lit.value();
        // `consul_cli`: the rendered key is `consul lock`'s PREFIX; the lock is on PREFIX/.lock.
        let new = match (args.limit, args.consul_cli) {
            (Some((limit, span)), _) => {
                let limit = limit as u32;
                quote_spanned!(span=> #p::Semaphore::new(#key_local, #limit).metrics_name(#template))
            }
            (None, Some((true, span))) => {
                quote_spanned!(span=> #p::Lock::consul_cli(#key_local).metrics_name(#template))
            }
            _ => quote!(#p::Lock::new(#key_local).metrics_name(#template)),
        };
        quote! {
            ::core::result::Result::Ok(#new #options)
        }
    };
    for (key, local) in keys.iter().zip(&locals).rev() {
        let render = render(key, names, p);
        expr = quote! {
            match #render {
                ::core::result::Result::Ok(#local) => {
                    #expr
                }
                ::core::result::Result::Err(#error) => ::core::result::Result::Err(#error),
            }
        };
    }
    expr
}

/// `render(template, parts)` for one key template: its values escaped at run time.
fn render(key: &Key, names: &BTreeMap<String, Ident>, p: &TokenStream) -> TokenStream {
    let lit = &key.lit;
    let span = lit.span();
    let parts = key.template.parts.iter().map(|part| match part {
        Part::Literal(text) => quote_spanned!(span=> #p::KeyPart::Literal(#text)),
        Part::Placeholder(ph) => {
            let name = &ph.text;
            let value = value(ph, names, span);
            quote_spanned! {span=>
                #p::KeyPart::Value {
                    name: #name,
                    value: #p::display_value(&#value),
                }
            }
        }
    });
    quote!(#p::render(#lit, &[#(#parts),*]))
}

/// A placeholder's value expression (`id`, `job.pair.0`, `self.tenant`,
/// `self.account().owner_id()`), every token at the key literal's `span`, so that type
/// errors (no such field or method, not `Display`) are reported at the template. It is
/// evaluated once, where the key is rendered.
fn value(ph: &Placeholder, names: &BTreeMap<String, Ident>, span: Span) -> TokenStream {
    let root = ph.root_name();
    let mut ident = names
        .get(root)
        .cloned()
        .unwrap_or_else(|| Ident::new(root, span));
    ident.set_span(span);
    let ident_at_span = |name: &str| {
        let mut ident = syn::parse_str::<Ident>(name).unwrap_or_else(|_| Ident::new(name, span));
        ident.set_span(span);
        ident
    };
    let accesses = ph.accesses.iter().map(|access| match access {
        Access::Field(f) if f.bytes().all(|b| b.is_ascii_digit()) => {
            let index = syn::Index {
                index: f.parse().unwrap_or_default(),
                span,
            };
            quote_spanned!(span=> .#index)
        }
        Access::Field(f) => {
            let field = ident_at_span(f);
            quote_spanned!(span=> .#field)
        }
        Access::Method(m) => {
            let mut method = ident_at_span(m);
            // Located at the template, but marked as generated: the compiler then reports
            // an unknown method there without suggesting to replace the whole literal.
            method.set_span(Span::mixed_site().located_at(span));
            quote_spanned!(span=> .#method())
        }
    });
    quote_spanned!(span=> #ident #(#accesses)*)
}
