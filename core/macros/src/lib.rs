//! `#[handler]`: derives a handler's [`interest`] from the methods its
//! `impl Handler` block defines, so the events a handler receives are the
//! ones it implements. Use it through `weft_core::handler`.
//!
//! Contract:
//! - placed on an `impl Handler for T` block, it adds `fn interest` whose
//!   mask has the bit of every event method the block defines
//!   (`channel_read` → `Events::READ`, `write` → `Events::WRITE`, `timer`
//!   → `Events::TIMER`, ...); `handler_added` and `handler_removed` need
//!   none;
//! - a block that also defines `interest` by hand is refused: one of the
//!   two would be wrong sooner or later;
//! - anything else on the block (another item, a trait that is not
//!   `Handler`) is refused with an error at its place.
//!
//! [`interest`]: https://docs.rs/weft-core/latest/weft_core/trait.Handler.html#method.interest

use proc_macro::TokenStream;
use quote::quote;
use syn::spanned::Spanned;
use syn::{parse_macro_input, ImplItem, ItemImpl};

/// Each event method of `Handler` and the name of its `Events` constant.
const METHODS: [(&str, &str); 12] = [
    ("channel_active", "ACTIVE"),
    ("channel_read", "READ"),
    ("channel_read_complete", "READ_COMPLETE"),
    ("user_event", "USER_EVENT"),
    ("writability_changed", "WRITABILITY"),
    ("exception_caught", "EXCEPTION"),
    ("channel_inactive", "INACTIVE"),
    ("write", "WRITE"),
    ("flush", "FLUSH"),
    ("read", "READ_REQUEST"),
    ("close", "CLOSE"),
    ("timer", "TIMER"),
];

/// Derives `Handler::interest` from the methods the `impl Handler` block
/// defines; see the crate's contract.
#[proc_macro_attribute]
pub fn handler(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        let attr = proc_macro2::TokenStream::from(attr);
        return syn::Error::new(attr.span(), "#[handler] takes no arguments")
            .to_compile_error()
            .into();
    }
    let mut block = parse_macro_input!(item as ItemImpl);
    match derive(&mut block) {
        Ok(()) => quote!(#block).into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn derive(block: &mut ItemImpl) -> syn::Result<()> {
    let is_handler = block
        .trait_
        .as_ref()
        .and_then(|(_, path, _)| path.segments.last())
        .is_some_and(|s| s.ident == "Handler");
    if !is_handler {
        return Err(syn::Error::new(
            block.self_ty.span(),
            "#[handler] goes on an `impl Handler for ...` block",
        ));
    }
    let mut bits = Vec::new();
    for item in &block.items {
        let ImplItem::Fn(f) = item else { continue };
        let name = f.sig.ident.to_string();
        if name == "interest" {
            return Err(syn::Error::new(
                f.sig.ident.span(),
                "#[handler] derives `interest` from the methods this block defines: \
                 remove this one (or remove #[handler] to keep a mask computed by hand)",
            ));
        }
        if let Some((_, bit)) = METHODS.iter().find(|(m, _)| *m == name) {
            bits.push(syn::Ident::new(bit, f.sig.ident.span()));
        }
    }
    let interest: ImplItem = syn::parse_quote! {
        #[inline]
        fn interest(&self) -> ::weft_core::Events {
            ::weft_core::Events::NONE #( .union(::weft_core::Events::#bits) )*
        }
    };
    block.items.push(interest);
    Ok(())
}
