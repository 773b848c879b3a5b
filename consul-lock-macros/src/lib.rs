//! The `#[consul_lock]` attribute. Use it through the `consul-lock` crate.
