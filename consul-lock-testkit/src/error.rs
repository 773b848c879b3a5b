//! The crate's error type.

/// Errors from starting, restarting or configuring a [`TestServer`](crate::TestServer).
///
/// ```
/// use consul_lock_testkit::{AclToken, Error, ServerConfig, TestServer};
/// let server = TestServer::start().unwrap();
/// let taken = ServerConfig::default().listen(server.addr());
/// match TestServer::start_with(taken) {
///     Err(Error::Bind { addr, .. }) => assert_eq!(addr, server.addr()),
///     other => panic!("expected a bind error, got {other:?}"),
/// }
/// let err = AclToken::from_rules("t", "operator = \"read\"").unwrap_err();
/// assert!(matches!(err, Error::Config(_)), "{err}");
/// ```
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening socket could not be bound.
    #[error("consul-lock-testkit: cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server's runtime or thread could not be started.
    #[error("consul-lock-testkit: cannot start the server runtime: {0}")]
    Runtime(std::io::Error),
    /// Generating the TLS certificates failed.
    #[error("consul-lock-testkit: cannot set up TLS: {0}")]
    Tls(String),
    /// A configuration value is invalid (for example ACL rules that do not parse).
    #[error("consul-lock-testkit: invalid configuration: {0}")]
    Config(String),
    /// `CONSUL_HTTP_ADDR` or another environment variable could not be used.
    #[error("consul-lock-testkit: invalid environment variable {name}={value:?}: {reason}")]
    Env {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// A real Consul agent ([`real`](crate::real)) could not be started or controlled; the
    /// message says why and what to do.
    #[error("consul-lock-testkit: real Consul: {0}")]
    RealConsul(String),
}
