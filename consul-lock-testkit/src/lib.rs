//! A Consul-compatible in-process HTTP server for tests, like `fakeredis`: sessions, KV
//! (blocking queries, locks, lock-delay), `/v1/txn`, ACLs, TLS, and fault injection that a
//! real Consul cannot offer (leaderless periods, latency, dropped connections, forced
//! session expiry, restarts with or without state).
//!
//! Its behaviour is checked against transcripts recorded from a real Consul 1.10.12 agent
//! (`tests/conformance/`).
//!
//! ```
//! use consul_lock_testkit::TestConsul;
//!
//! // Against CONSUL_HTTP_ADDR when set, an embedded server otherwise.
//! let consul = TestConsul::from_env_or_start().unwrap();
//! let url = consul.url();
//! assert!(url.starts_with("http"));
//! if let Some(server) = consul.server() {
//!     server.fail_next(1, 500, "injected");
//! }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod acl;
mod acl_hcl;
mod blocking;
mod config;
mod connlimit;
mod error;
mod fault_api;
mod faults;
mod go;
mod harness;
mod harness_faults;
mod kv;
mod kv_table;
mod limits;
pub mod real;
mod request;
mod resp;
mod router;
mod server;
mod session;
mod shared;
mod status;
mod store;
mod tls;
mod txn;
mod wire;

pub use acl::{Access, AclConfig, AclToken};
pub use config::{AgentRole, ServerConfig};
pub use error::Error;
pub use fault_api::NodeHealth;
pub use harness::TestConsul;
pub use limits::raise_open_files_limit;
#[doc(hidden)]
pub use server::LiveTasks;
pub use server::TestServer;

/// Parses a duration like `10s`, `1.5s`, `500ms` or `1m` (Go's syntax, which Consul uses).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(consul_lock_testkit::parse_duration("1.5s"), Some(Duration::from_millis(1500)));
/// assert_eq!(consul_lock_testkit::parse_duration("soon"), None);
/// ```
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    go::duration::parse_std(s)
}
