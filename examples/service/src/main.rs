//! Runs the service: `cargo run --manifest-path examples/service/Cargo.toml`. It talks to the
//! agent at `CONSUL_HTTP_ADDR`, or starts the embedded test server when that is unset (and
//! says so). `PORT` picks the port (default 3000).

use std::time::Duration;

use consul_lock_example_service::{prometheus, router, App, Outbox};
use consul_lock_testkit::TestConsul;

// ANCHOR: main
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let metrics = prometheus()?;
    // Without CONSUL_HTTP_ADDR, an embedded test server stands in for the agent.
    let consul = TestConsul::from_env_or_start()?;
    if consul.is_embedded() {
        println!("CONSUL_HTTP_ADDR is not set: using an embedded Consul test server");
    }
    // Every setting is checked here, so a bad CONSUL_HTTP_ADDR stops the service at start-up.
    let client = consul_lock::ClientBuilder::from_env()?
        .address(consul.url())
        .build()?;
    let app = App {
        consul: client.clone(),
        outbox: Outbox::default(),
        send_time: Duration::from_millis(50),
        metrics,
    };
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!(
        "listening on http://{} (Consul at {})",
        listener.local_addr()?,
        client.address()
    );
    println!("try: curl -X POST localhost:{port}/signup/42; curl localhost:{port}/metrics");
    axum::serve(listener, router(app))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    // Releases handed to the background (dropped guards) are sent before the process ends.
    consul_lock::flush_releases().await;
    Ok(())
}
// ANCHOR_END: main
