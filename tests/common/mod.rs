//! Shared setup of the facade's integration tests: a Consul to talk to (the embedded test
//! server, or the agent at `CONSUL_HTTP_ADDR`), clients for it, and a name unique to one run,
//! so that runs against a shared agent never meet each other's keys.

#![allow(dead_code)]

use consul_lock::Client;
use consul_lock_testkit::TestConsul;

/// The embedded test server, or the agent at `CONSUL_HTTP_ADDR`.
pub fn consul() -> TestConsul {
    TestConsul::from_env_or_start().expect("start the test server or reach CONSUL_HTTP_ADDR")
}

/// A client of `consul` (each call: another client, as another process would have), which
/// accepts that server's shortest lock timeout.
pub fn client(consul: &TestConsul) -> Client {
    Client::builder()
        .address(consul.url())
        .session_ttl_min(consul.session_ttl_min())
        .build()
        .expect("client")
}

/// `name` made unique to this run: `<name>-<pid><nanos>` in hex.
pub fn run_name(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{name}-{:x}{nanos:x}", std::process::id())
}
