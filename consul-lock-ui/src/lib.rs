//! Compile tests of `#[consul_lock]` and `#[consul_lock::leader]`; the cases are in
//! `tests/ui/{pass,fail}` and run from `tests/macro_ui.rs`. This library is empty: it exists
//! so that trybuild builds the cases against the facade alone (without a TLS backend).
