//! Access to the Consul the tests run against, unique key prefixes, and checks that nothing
//! is left behind.

use std::time::{Duration, Instant};

use consul_lock::{Client, ClientBuilder};
use consul_lock_testkit::{ServerConfig, TestConsul, TestServer};

/// The session TTL floor the embedded test server is started with: 1 s, so that TTL tests
/// take seconds, not the 10…20 s a real agent needs.
pub const TEST_TTL_MIN: Duration = Duration::from_secs(1);

/// How long the embedded test server holds a request during a leaderless period before it
/// answers `500 No cluster leader` (Consul holds about 7 s; shorter here to keep tests fast).
pub const TEST_LEADERLESS_HOLD: Duration = Duration::from_millis(300);

/// The test server settings used by this crate's tests.
#[must_use]
pub fn server_config() -> ServerConfig {
    ServerConfig::default()
        .session_ttl_min(TEST_TTL_MIN)
        .leaderless_hold(TEST_LEADERLESS_HOLD)
}

/// The Consul to test against: the agent at `CONSUL_HTTP_ADDR` when it is set, otherwise a
/// fresh embedded test server with [`server_config`].
///
/// # Panics
///
/// When the test server cannot start or the environment is malformed.
#[must_use]
pub fn consul() -> TestConsul {
    consul_with(server_config())
}

/// As [`consul`], with other settings for the embedded server.
///
/// # Panics
///
/// When the test server cannot start or the environment is malformed.
#[must_use]
pub fn consul_with(config: ServerConfig) -> TestConsul {
    TestConsul::from_env_or_start_with(config)
        .expect("start the test server or use CONSUL_HTTP_ADDR")
}

/// The embedded server behind `consul`, or `None` (with a printed reason) against a real
/// agent, where the calling test cannot inject faults and should return.
#[must_use]
pub fn fault_server<'a>(consul: &'a TestConsul, test: &str) -> Option<&'a TestServer> {
    let server = consul.server();
    if server.is_none() {
        println!(
            "skipped {test}: it injects faults, which needs the embedded test server; \
             CONSUL_HTTP_ADDR points at a real agent"
        );
    }
    server
}

/// A client builder for `consul`: against a real agent it reads the `CONSUL_*` variables
/// (token, TLS), against the test server it starts from the defaults; either way it knows
/// the agent's `session_ttl_min`.
///
/// # Panics
///
/// When the environment is malformed.
#[must_use]
pub fn client_builder(consul: &TestConsul) -> ClientBuilder {
    let builder = if consul.server().is_some() {
        Client::builder()
    } else {
        ClientBuilder::from_env().expect("CONSUL_* environment variables")
    };
    builder
        .address(consul.url())
        .session_ttl_min(consul.session_ttl_min())
}

/// A client for `consul` (see [`client_builder`]).
///
/// # Panics
///
/// When the client cannot be built.
#[must_use]
pub fn client(consul: &TestConsul) -> Client {
    client_builder(consul).build().expect("build the client")
}

/// The shortest lock timeout `consul` accepts (1 s on the test server, 10 s on a real agent
/// by default).
#[must_use]
pub fn ttl(consul: &TestConsul) -> Duration {
    consul.session_ttl_min()
}

/// A key prefix no other test (or earlier run against the same agent) uses:
/// `reliability/<test>-<random>/`.
#[must_use]
pub fn unique_prefix(test: &str) -> String {
    format!("reliability/{test}-{:016x}/", fastrand::u64(..))
}

/// What a test left in Consul under its prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Sessions named for a key under the prefix (`consul-lock: <key> #<nonce>`).
    pub sessions: Vec<String>,
    /// Keys under the prefix.
    pub keys: Vec<String>,
}

impl Leftovers {
    /// Whether nothing is left.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty() && self.keys.is_empty()
    }
}

/// Lists the sessions and keys under `prefix`.
///
/// # Panics
///
/// When Consul cannot be asked.
pub async fn leftovers(client: &Client, prefix: &str) -> Leftovers {
    let name = format!("consul-lock: {prefix}");
    let sessions = client
        .sessions()
        .await
        .expect("list sessions")
        .into_iter()
        .filter(|s| s.name.starts_with(&name))
        .map(|s| format!("{} ({})", s.id, s.name))
        .collect();
    let keys = client.kv_keys(prefix).await.expect("list keys");
    Leftovers { sessions, keys }
}

/// Waits for background releases ([`consul_lock::flush_releases`]) and asserts that no
/// session and no key is left under `prefix`: at once, without waiting for any TTL.
///
/// # Panics
///
/// When something is left.
pub async fn assert_clean(client: &Client, prefix: &str) {
    consul_lock::flush_releases().await;
    let left = leftovers(client, prefix).await;
    assert!(left.is_empty(), "left in Consul under {prefix}: {left:?}");
}

/// Polls until nothing is left under `prefix` (the TTL frees what a failed release could not)
/// and returns how long that took, or panics after `within`. Polling here waits for time (a
/// TTL) to pass; there is no event to wait for.
///
/// # Panics
///
/// When something is still left after `within`.
pub async fn wait_clean(client: &Client, prefix: &str, within: Duration) -> Duration {
    consul_lock::flush_releases().await;
    let start = Instant::now();
    loop {
        let left = leftovers(client, prefix).await;
        if left.is_empty() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "still left in Consul under {prefix} after {within:?}: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs an async test body on a multi-threaded tokio runtime (2 workers). With `RUST_LOG`
/// set (`RUST_LOG=consul_lock_runtime=debug`), the library's traces are printed to stderr.
///
/// # Panics
///
/// When the runtime cannot be built.
pub fn run<F: std::future::Future>(body: F) -> F::Output {
    // `RUST_LOG` set: the library's traces go to stderr (the first test to run installs it).
    if let Ok(filter) = std::env::var("RUST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .try_init();
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(body)
}

/// The embedded server behind `consul`, mutably (for [`TestServer::restart`]), or `None`
/// (with a printed reason) against a real agent.
#[must_use]
pub fn fault_server_mut<'a>(consul: &'a mut TestConsul, test: &str) -> Option<&'a mut TestServer> {
    match consul {
        TestConsul::Embedded(server) => Some(server),
        TestConsul::Agent { .. } => {
            println!(
                "skipped {test}: it restarts the server, which needs the embedded test server; \
                 CONSUL_HTTP_ADDR points at a real agent"
            );
            None
        }
    }
}

/// Raises this process's soft limit of open files (see
/// [`consul_lock_testkit::raise_open_files_limit`]).
pub use consul_lock_testkit::raise_open_files_limit;
