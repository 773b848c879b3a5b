//! Server settings.

use std::net::SocketAddr;
use std::time::Duration;

use crate::acl::AclConfig;

/// Settings of a [`TestServer`](crate::TestServer), built with chained methods.
///
/// ```
/// use std::time::Duration;
/// use consul_lock_testkit::{ServerConfig, TestServer};
/// let config = ServerConfig::default()
///     .session_ttl_min(Duration::from_secs(1))
///     .leaderless_hold(Duration::from_millis(200))
///     .datacenter("dc2")
///     .node_name("node-a");
/// let server = TestServer::start_with(config).unwrap();
/// assert!(server.addr().ip().is_loopback());
/// ```
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub(crate) listen: SocketAddr,
    pub(crate) session_ttl_min: Duration,
    pub(crate) leaderless_hold: Duration,
    pub(crate) datacenter: String,
    pub(crate) node_name: String,
    pub(crate) acl: Option<AclConfig>,
    pub(crate) tls: bool,
    pub(crate) log_requests: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            session_ttl_min: Duration::from_secs(10),
            leaderless_hold: Duration::from_secs(7),
            datacenter: "dc1".to_string(),
            node_name: "consul-lock-testkit".to_string(),
            acl: None,
            tls: false,
            log_requests: false,
        }
    }
}

impl ServerConfig {
    /// The address to listen on (default `127.0.0.1:0`, a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }
    /// The smallest session TTL accepted (default 10 s, as Consul's `session_ttl_min`);
    /// the largest stays 24 h.
    pub fn session_ttl_min(mut self, d: Duration) -> Self {
        self.session_ttl_min = d;
        self
    }
    /// How long requests needing a leader are held during a leaderless period before they
    /// answer `500 No cluster leader` (default 7 s, Consul's `rpc_hold_timeout`).
    pub fn leaderless_hold(mut self, d: Duration) -> Self {
        self.leaderless_hold = d;
        self
    }
    /// The datacenter name (default `dc1`).
    pub fn datacenter(mut self, dc: &str) -> Self {
        self.datacenter = dc.to_string();
        self
    }
    /// The node name sessions are bound to (default `consul-lock-testkit`).
    pub fn node_name(mut self, n: &str) -> Self {
        self.node_name = n.to_string();
        self
    }
    /// Turns ACLs on with these tokens and default policy.
    pub fn acl(mut self, acl: AclConfig) -> Self {
        self.acl = Some(acl);
        self
    }
    /// Serves HTTPS with a generated CA and a certificate for `127.0.0.1` and `localhost`.
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }
    /// Logs every request (method, path, status, elapsed) to stderr, as the devserver does.
    pub fn log_requests(mut self, on: bool) -> Self {
        self.log_requests = on;
        self
    }
}
