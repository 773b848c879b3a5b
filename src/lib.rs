//! Distributed locks in HashiCorp Consul. See the README for an overview.

pub use consul_lock_runtime::*;
