//! What Consul accepts, in one place for the consul-lock crates (the attribute, the runtime
//! and the test harness): which characters a key may hold in a URL path ([`is_path_safe`]),
//! how an agent's address reads ([`consul_base_url`]), how the `CONSUL_*` booleans read
//! ([`parse_go_bool`]), and the limits on session TTLs, transactions and semaphores
//! ([`SESSION_TTL_MAX_SECS`], [`MAX_TXN_OPS`], ...). Use it through `consul-lock`; it has no
//! dependencies.

#![warn(missing_docs)]
#![no_std]

extern crate alloc;

mod address;
mod boolean;
mod limits;
mod path;
mod table;

pub use address::consul_base_url;
pub use boolean::{parse_go_bool, GO_BOOL_SPELLINGS};
pub use limits::{
    MAX_LOCK_KEYS, MAX_SEMAPHORE_LIMIT, MAX_TXN_OPS, SESSION_TTL_MAX_SECS, SESSION_TTL_MIN_SECS,
};
pub use path::{first_unsafe, is_path_safe};
