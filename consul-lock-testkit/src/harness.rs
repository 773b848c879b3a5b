//! The harness: the same test runs against a real Consul agent when `CONSUL_HTTP_ADDR` is
//! set, and against an embedded [`TestServer`] otherwise.

use std::time::Duration;

use crate::config::ServerConfig;
use crate::error::Error;
use crate::server::TestServer;

/// Either an embedded test server or a real agent named by `CONSUL_HTTP_ADDR`.
///
/// ```
/// use consul_lock_testkit::TestConsul;
/// let consul = TestConsul::from_env_or_start().unwrap();
/// match consul.server() {
///     Some(server) => server.set_latency(std::time::Duration::ZERO),
///     None => eprintln!("skipping fault injection: running against a real agent"),
/// }
/// assert!(consul.url().starts_with("http"));
/// ```
pub enum TestConsul {
    /// A server running in this process.
    Embedded(TestServer),
    /// A real agent.
    Agent {
        /// Its base URL (`http://host:port` or `https://…`).
        url: String,
    },
}

impl std::fmt::Debug for TestConsul {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TestConsul::Embedded(s) => f.debug_tuple("Embedded").field(&s.url()).finish(),
            TestConsul::Agent { url } => f.debug_struct("Agent").field("url", url).finish(),
        }
    }
}

const TTL_MIN_ENV: &str = "CONSUL_LOCK_TEST_SESSION_TTL_MIN";

impl TestConsul {
    /// `CONSUL_HTTP_ADDR` set: that agent (`host:port` or `http(s)://…`; `CONSUL_HTTP_SSL=true`
    /// makes a bare `host:port` HTTPS). Unset: an embedded server with `session_ttl_min` 1 s.
    ///
    /// ```
    /// use consul_lock_testkit::TestConsul;
    /// let consul = TestConsul::from_env_or_start().unwrap();
    /// if consul.is_embedded() {
    ///     assert_eq!(consul.session_ttl_min(), std::time::Duration::from_secs(1));
    /// } else {
    ///     assert!(std::env::var("CONSUL_HTTP_ADDR").is_ok()); // a real agent
    /// }
    /// ```
    pub fn from_env_or_start() -> Result<TestConsul, Error> {
        TestConsul::from_env_or_start_with(
            ServerConfig::default().session_ttl_min(Duration::from_secs(1)),
        )
    }

    /// As [`from_env_or_start`](Self::from_env_or_start), starting an embedded server with
    /// `config` when no agent is named.
    ///
    /// ```
    /// use std::time::Duration;
    /// use consul_lock_testkit::{ServerConfig, TestConsul};
    /// let config = ServerConfig::default().session_ttl_min(Duration::from_secs(2));
    /// let consul = TestConsul::from_env_or_start_with(config).unwrap();
    /// if let Some(server) = consul.server() {
    ///     assert_eq!(consul.session_ttl_min(), Duration::from_secs(2));
    ///     assert_eq!(server.url(), consul.url());
    /// }
    /// ```
    pub fn from_env_or_start_with(config: ServerConfig) -> Result<TestConsul, Error> {
        match std::env::var("CONSUL_HTTP_ADDR") {
            Ok(v) if !v.trim().is_empty() => {
                let ssl = std::env::var("CONSUL_HTTP_SSL")
                    .ok()
                    .and_then(|s| consul_lock_syntax::parse_go_bool(s.trim()))
                    .unwrap_or(false);
                let url = agent_url(&v, ssl)?;
                eprintln!("consul-lock-testkit: testing against the Consul agent at {url} (CONSUL_HTTP_ADDR)");
                Ok(TestConsul::Agent { url })
            }
            _ => Ok(TestConsul::Embedded(TestServer::start_with(config)?)),
        }
    }

    /// The base URL to give a client.
    ///
    /// ```
    /// use consul_lock_testkit::TestConsul;
    /// let consul = TestConsul::from_env_or_start().unwrap();
    /// let url = consul.url(); // give this to the client under test
    /// assert!(url.starts_with("http://") || url.starts_with("https://"));
    /// if let Some(server) = consul.server() {
    ///     assert_eq!(url, server.url());
    /// }
    /// ```
    pub fn url(&self) -> String {
        match self {
            TestConsul::Embedded(s) => s.url(),
            TestConsul::Agent { url } => url.clone(),
        }
    }

    /// The embedded server, for fault injection; `None` against a real agent.
    ///
    /// ```
    /// use consul_lock_testkit::TestConsul;
    /// let consul = TestConsul::from_env_or_start().unwrap();
    /// match consul.server() {
    ///     Some(server) => server.fail_next(1, 500, "No cluster leader"), // the next request fails
    ///     None => eprintln!("skipping fault injection: running against a real agent"),
    /// }
    /// assert_eq!(consul.server().is_some(), consul.is_embedded());
    /// ```
    pub fn server(&self) -> Option<&TestServer> {
        match self {
            TestConsul::Embedded(s) => Some(s),
            TestConsul::Agent { .. } => None,
        }
    }

    /// The smallest session TTL the server accepts: the configured one when embedded; for an
    /// agent `CONSUL_LOCK_TEST_SESSION_TTL_MIN` (like `10s`) or Consul's default 10 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// use consul_lock_testkit::TestConsul;
    /// let consul = TestConsul::from_env_or_start().unwrap();
    /// let ttl_min = consul.session_ttl_min(); // the shortest TTL a test can ask for
    /// if consul.is_embedded() {
    ///     assert_eq!(ttl_min, Duration::from_secs(1));
    /// } else {
    ///     assert!(ttl_min > Duration::ZERO);
    /// }
    /// ```
    pub fn session_ttl_min(&self) -> Duration {
        match self {
            TestConsul::Embedded(s) => s.config().session_ttl_min,
            TestConsul::Agent { .. } => match std::env::var(TTL_MIN_ENV) {
                Ok(v) => crate::go::duration::parse_std(&v).unwrap_or_else(|| {
                    eprintln!("consul-lock-testkit: ignoring {TTL_MIN_ENV}={v:?} (not a duration like \"10s\"); using 10s");
                    Duration::from_secs(10)
                }),
                Err(_) => Duration::from_secs(10),
            },
        }
    }

    /// Whether this is an embedded server.
    ///
    /// ```
    /// use consul_lock_testkit::TestConsul;
    /// let consul = TestConsul::from_env_or_start().unwrap();
    /// let agent_named = std::env::var("CONSUL_HTTP_ADDR").is_ok_and(|v| !v.trim().is_empty());
    /// assert_eq!(consul.is_embedded(), !agent_named);
    /// assert_eq!(consul.is_embedded(), consul.server().is_some());
    /// ```
    pub fn is_embedded(&self) -> bool {
        matches!(self, TestConsul::Embedded(_))
    }
}

/// Turns a `CONSUL_HTTP_ADDR` value into a base URL, as the runtime's client does.
pub(crate) fn agent_url(v: &str, ssl: bool) -> Result<String, Error> {
    consul_lock_syntax::consul_base_url(v, ssl).map_err(|reason| Error::Env {
        name: "CONSUL_HTTP_ADDR",
        value: v.trim().to_string(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            agent_url("127.0.0.1:8500", false).unwrap(),
            "http://127.0.0.1:8500"
        );
        assert_eq!(
            agent_url("127.0.0.1:8500", true).unwrap(),
            "https://127.0.0.1:8500"
        );
        assert_eq!(
            agent_url("https://c:8501/", false).unwrap(),
            "https://c:8501"
        );
        assert!(agent_url("unix://consul.sock", false).is_err());
        assert!(agent_url("http://a/b", false).is_err());
    }
}
