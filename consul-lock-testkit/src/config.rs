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
    pub(crate) txn_max_ops: usize,
    pub(crate) http_max_conns_per_client: usize,
    pub(crate) role: AgentRole,
}

/// What kind of Consul agent a [`TestServer`](crate::TestServer) says it is, in
/// `/v1/agent/self` (`Config.Server`) and `/v1/status/peers` (the servers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AgentRole {
    /// A lone server, as `consul agent -dev` is (the default): `Server` true, one peer.
    #[default]
    DevAgent,
    /// A client agent of a cluster: `Server` false, three peers.
    ClientAgent,
    /// One server of a 3-server cluster: `Server` true, three peers (Consul's leader
    /// deregisters such a server's node when it removes the server as failed).
    ClusterServer,
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
            txn_max_ops: 64,
            http_max_conns_per_client: 200,
            role: AgentRole::DevAgent,
        }
    }
}

impl ServerConfig {
    /// The address to listen on (default `127.0.0.1:0`, a free port).
    ///
    /// ```
    /// use consul_lock_testkit::{ServerConfig, TestServer};
    /// let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    /// let addr = probe.local_addr().unwrap();
    /// drop(probe); // free the port again
    /// let server = TestServer::start_with(ServerConfig::default().listen(addr)).unwrap();
    /// assert_eq!(server.addr(), addr);
    /// ```
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }
    /// The smallest session TTL accepted (default 10 s, as Consul's `session_ttl_min`);
    /// the largest stays 24 h.
    ///
    /// ```
    /// # use consul_lock_testkit::{ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, body: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n", body.len());
    /// #     write!(s, "{head}Connection: close\r\n\r\n{body}").unwrap();
    /// #     let mut answer = String::new();
    /// #     let _ = s.read_to_string(&mut answer); // empty when the connection is dropped
    /// #     match answer.split_once("\r\n\r\n") {
    /// #         Some((head, body)) => (head[9..12].parse().unwrap(), body.to_string()),
    /// #         None => (0, String::new()),
    /// #     }
    /// # }
    /// use std::time::Duration;
    /// let server = TestServer::start().unwrap(); // 10 s by default
    /// let (status, body) = call(&server, "PUT", "/v1/session/create", r#"{"TTL": "1s"}"#);
    /// assert_eq!(status, 500);
    /// assert!(body.starts_with("Invalid Session TTL '1000000000', must be between [10s=24h0m0s]"));
    /// let config = ServerConfig::default().session_ttl_min(Duration::from_secs(1));
    /// let server = TestServer::start_with(config).unwrap();
    /// assert_eq!(call(&server, "PUT", "/v1/session/create", r#"{"TTL": "1s"}"#).0, 200);
    /// ```
    pub fn session_ttl_min(mut self, d: Duration) -> Self {
        self.session_ttl_min = d;
        self
    }
    /// How long requests needing a leader are held during a leaderless period before they
    /// answer `500 No cluster leader` (default 7 s, Consul's `rpc_hold_timeout`).
    ///
    /// ```
    /// # use consul_lock_testkit::{ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, body: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n", body.len());
    /// #     write!(s, "{head}Connection: close\r\n\r\n{body}").unwrap();
    /// #     let mut answer = String::new();
    /// #     let _ = s.read_to_string(&mut answer); // empty when the connection is dropped
    /// #     match answer.split_once("\r\n\r\n") {
    /// #         Some((head, body)) => (head[9..12].parse().unwrap(), body.to_string()),
    /// #         None => (0, String::new()),
    /// #     }
    /// # }
    /// use std::time::{Duration, Instant};
    /// let config = ServerConfig::default().leaderless_hold(Duration::from_millis(20));
    /// let server = TestServer::start_with(config).unwrap();
    /// server.set_leaderless(true);
    /// let start = Instant::now();
    /// assert_eq!(call(&server, "PUT", "/v1/kv/a", "x"), (500, "No cluster leader".into()));
    /// assert!(start.elapsed() >= Duration::from_millis(20));
    /// ```
    pub fn leaderless_hold(mut self, d: Duration) -> Self {
        self.leaderless_hold = d;
        self
    }
    /// The datacenter name (default `dc1`).
    ///
    /// ```
    /// # use consul_lock_testkit::{ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, body: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n", body.len());
    /// #     write!(s, "{head}Connection: close\r\n\r\n{body}").unwrap();
    /// #     let mut answer = String::new();
    /// #     let _ = s.read_to_string(&mut answer); // empty when the connection is dropped
    /// #     match answer.split_once("\r\n\r\n") {
    /// #         Some((head, body)) => (head[9..12].parse().unwrap(), body.to_string()),
    /// #         None => (0, String::new()),
    /// #     }
    /// # }
    /// let server = TestServer::start_with(ServerConfig::default().datacenter("dc2")).unwrap();
    /// assert!(call(&server, "GET", "/v1/agent/self", "").1.contains(r#""Datacenter": "dc2""#));
    /// assert_eq!(call(&server, "GET", "/v1/kv/a?dc=dc2", "").0, 404);
    /// assert_eq!(call(&server, "GET", "/v1/kv/a?dc=dc1", ""), (500, "No path to datacenter".into()));
    /// ```
    pub fn datacenter(mut self, dc: &str) -> Self {
        self.datacenter = dc.to_string();
        self
    }
    /// The node name sessions are bound to (default `consul-lock-testkit`).
    ///
    /// ```
    /// # use consul_lock_testkit::{ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, body: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n", body.len());
    /// #     write!(s, "{head}Connection: close\r\n\r\n{body}").unwrap();
    /// #     let mut answer = String::new();
    /// #     let _ = s.read_to_string(&mut answer); // empty when the connection is dropped
    /// #     match answer.split_once("\r\n\r\n") {
    /// #         Some((head, body)) => (head[9..12].parse().unwrap(), body.to_string()),
    /// #         None => (0, String::new()),
    /// #     }
    /// # }
    /// let server = TestServer::start_with(ServerConfig::default().node_name("node-a")).unwrap();
    /// assert!(call(&server, "GET", "/v1/agent/self", "").1.contains(r#""NodeName": "node-a""#));
    /// let (status, body) = call(&server, "PUT", "/v1/session/create", r#"{"Node": "node-b"}"#);
    /// assert_eq!((status, body.as_str()), (500, "apply failed: Missing node registration"));
    /// ```
    pub fn node_name(mut self, n: &str) -> Self {
        self.node_name = n.to_string();
        self
    }
    /// Turns ACLs on with these tokens and default policy.
    ///
    /// ```
    /// # use consul_lock_testkit::{ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, body: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n", body.len());
    /// #     write!(s, "{head}Connection: close\r\n\r\n{body}").unwrap();
    /// #     let mut answer = String::new();
    /// #     let _ = s.read_to_string(&mut answer); // empty when the connection is dropped
    /// #     match answer.split_once("\r\n\r\n") {
    /// #         Some((head, body)) => (head[9..12].parse().unwrap(), body.to_string()),
    /// #         None => (0, String::new()),
    /// #     }
    /// # }
    /// use consul_lock_testkit::AclConfig;
    /// let acl = AclConfig::deny_by_default().management_token("root");
    /// let server = TestServer::start_with(ServerConfig::default().acl(acl)).unwrap();
    /// assert_eq!(call(&server, "PUT", "/v1/kv/a", "x"), (403, "Permission denied".into()));
    /// let plain = TestServer::start().unwrap(); // no ACLs: everything is allowed
    /// assert_eq!(call(&plain, "PUT", "/v1/kv/a", "x").0, 200);
    /// ```
    pub fn acl(mut self, acl: AclConfig) -> Self {
        self.acl = Some(acl);
        self
    }
    /// Serves HTTPS with a generated CA and a certificate for `127.0.0.1` and `localhost`.
    ///
    /// ```
    /// use consul_lock_testkit::{ServerConfig, TestServer};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = TestServer::start_with(ServerConfig::default().tls(true)).unwrap();
    /// let ca = reqwest::Certificate::from_pem(server.ca_cert_pem().unwrap().as_bytes()).unwrap();
    /// let client = reqwest::Client::builder().add_root_certificate(ca).build().unwrap();
    /// let url = format!("{}/v1/status/leader", server.url()); // https://127.0.0.1:PORT/…
    /// let answer = client.get(url).send().await.unwrap().text().await.unwrap();
    /// assert_eq!(answer, "\"127.0.0.1:8300\"\n");
    /// # }
    /// ```
    pub fn tls(mut self, on: bool) -> Self {
        self.tls = on;
        self
    }
    /// The most operations a `/v1/txn` request may hold (default 64, as Consul 1.10, the
    /// version this server emulates; Consul 1.14 and later allow 128). More are refused with
    /// `413 Transaction contains too many operations (N > max)`.
    ///
    /// ```
    /// # use consul_lock_testkit::{ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, body: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n", body.len());
    /// #     write!(s, "{head}Connection: close\r\n\r\n{body}").unwrap();
    /// #     let mut answer = String::new();
    /// #     let _ = s.read_to_string(&mut answer); // empty when the connection is dropped
    /// #     match answer.split_once("\r\n\r\n") {
    /// #         Some((head, body)) => (head[9..12].parse().unwrap(), body.to_string()),
    /// #         None => (0, String::new()),
    /// #     }
    /// # }
    /// let op = r#"{"KV": {"Verb": "get", "Key": "a"}}"#;
    /// let ops = |n: usize| format!("[{}]", vec![op; n].join(","));
    /// let server = TestServer::start().unwrap();
    /// let (status, body) = call(&server, "PUT", "/v1/txn", &ops(65));
    /// assert_eq!((status, body.as_str()), (413, "Transaction contains too many operations (65 > 64)"));
    /// let server = TestServer::start_with(ServerConfig::default().txn_max_ops(128)).unwrap();
    /// assert_eq!(call(&server, "PUT", "/v1/txn", &ops(65)).0, 409); // key "a" doesn't exist
    /// ```
    pub fn txn_max_ops(mut self, n: usize) -> Self {
        self.txn_max_ops = n;
        self
    }
    /// The most concurrent connections accepted from one client IP address (default 200,
    /// Consul's `http_max_conns_per_client`); `0` turns the limit off. A connection over the
    /// limit is answered at once, before any request is read, with
    /// `429 Too Many Requests` (`Connection: close`, body `Your IP is issuing too many
    /// concurrent connections, please rate limit your calls`) and closed, as Consul does.
    /// Every waiting blocking query holds a connection.
    ///
    /// ```
    /// use std::io::Read;
    /// use consul_lock_testkit::{ServerConfig, TestServer};
    /// let server = TestServer::start_with(ServerConfig::default().http_max_conns_per_client(1)).unwrap();
    /// let _first = std::net::TcpStream::connect(server.addr()).unwrap();
    /// let mut second = std::net::TcpStream::connect(server.addr()).unwrap();
    /// let mut answer = String::new();
    /// second.read_to_string(&mut answer).unwrap();
    /// assert!(answer.starts_with("HTTP/1.1 429 Too Many Requests"));
    /// ```
    pub fn http_max_conns_per_client(mut self, n: usize) -> Self {
        self.http_max_conns_per_client = n;
        self
    }
    /// Logs every request (method, path, status, elapsed) to stderr, as the devserver does.
    ///
    /// ```
    /// # use consul_lock_testkit::{ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, body: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n", body.len());
    /// #     write!(s, "{head}Connection: close\r\n\r\n{body}").unwrap();
    /// #     let mut answer = String::new();
    /// #     let _ = s.read_to_string(&mut answer); // empty when the connection is dropped
    /// #     match answer.split_once("\r\n\r\n") {
    /// #         Some((head, body)) => (head[9..12].parse().unwrap(), body.to_string()),
    /// #         None => (0, String::new()),
    /// #     }
    /// # }
    /// let server = TestServer::start_with(ServerConfig::default().log_requests(true)).unwrap();
    /// // Prints a line like `GET /v1/status/leader 200 0.2ms` to stderr.
    /// assert_eq!(call(&server, "GET", "/v1/status/leader", "").0, 200);
    /// ```
    pub fn log_requests(mut self, on: bool) -> Self {
        self.log_requests = on;
        self
    }

    /// What kind of agent the server says it is (default [`AgentRole::DevAgent`], a lone
    /// server): `Config.Server` in `/v1/agent/self` and the servers in `/v1/status/peers`.
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use consul_lock_testkit::{AgentRole, ServerConfig, TestServer};
    /// let server = TestServer::start_with(ServerConfig::default().role(AgentRole::ClusterServer)).unwrap();
    /// let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// write!(s, "GET /v1/status/peers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    /// let mut answer = String::new();
    /// s.read_to_string(&mut answer).unwrap();
    /// assert_eq!(answer.matches(":8300").count(), 3); // three servers
    /// ```
    pub fn role(mut self, role: AgentRole) -> Self {
        self.role = role;
        self
    }
}
