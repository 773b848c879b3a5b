//! What every example needs: a Consul to talk to. `CONSUL_HTTP_ADDR` names a real agent;
//! without it the embedded test server is started in this process (and the example says so).

#![allow(dead_code)] // not every example uses every field

use std::time::Duration;

use consul_lock::{Client, ClientBuilder};
use consul_lock_testkit::TestConsul;

/// The Consul the example talks to, and a client for it. Keep the value alive: dropping it
/// stops the embedded server.
pub struct Consul {
    _consul: TestConsul,
    pub client: Client,
    pub min_lock_timeout: Duration,
}

/// Connects to `CONSUL_HTTP_ADDR`, or starts the embedded test server.
pub fn connect() -> Result<Consul, Box<dyn std::error::Error>> {
    let consul = TestConsul::from_env_or_start()?;
    if consul.is_embedded() {
        println!(
            "CONSUL_HTTP_ADDR is not set: started the embedded Consul test server at {}",
            consul.url()
        );
    } else {
        println!("using the Consul agent at {}", consul.url());
    }
    let client = ClientBuilder::from_env()?
        .address(consul.url())
        .session_ttl_min(consul.session_ttl_min())
        .build()?;
    Ok(Consul {
        min_lock_timeout: consul.session_ttl_min(),
        _consul: consul,
        client,
    })
}
