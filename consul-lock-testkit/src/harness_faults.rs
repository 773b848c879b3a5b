//! Faults a test can make on either Consul of the harness: the embedded server's fault
//! injection, or, on a real agent that allows it, the same fault made through Consul's API.

use std::net::{SocketAddr, ToSocketAddrs};

use crate::error::Error;
use crate::fault_api::NodeHealth;
use crate::harness::TestConsul;
use crate::real::process::request;

/// The variable that lets tests mark a real agent's node failed for a moment.
const NODE_FAULTS_ENV: &str = "CONSUL_LOCK_TEST_NODE_FAULTS";

impl TestConsul {
    /// Sets the node's `serfHealth` check, as Consul's servers do when they declare the agent's
    /// node failed and when it is back: on the embedded server with
    /// [`TestServer::set_node_health`](crate::TestServer::set_node_health); on a real agent
    /// (plain HTTP) only when `CONSUL_LOCK_TEST_NODE_FAULTS` is true, by re-registering the
    /// agent's node with the check critical or passing through `PUT /v1/catalog/register` (this
    /// invalidates every session of the node that carries the check, also other clients'
    /// sessions: allow it only on an agent of the tests' own). Returns `Ok(false)` when the
    /// fault cannot be made here (the test should say that it skipped it), `Ok(true)` when it
    /// was made.
    ///
    /// # Errors
    ///
    /// [`Error::RealConsul`] when the agent refused the request or could not be reached.
    ///
    /// ```
    /// use consul_lock_testkit::{NodeHealth, TestConsul};
    /// let consul = TestConsul::from_env_or_start().unwrap();
    /// if consul.set_node_health(NodeHealth::Critical).unwrap() {
    ///     // … a lock created without checks is still held here …
    ///     consul.set_node_health(NodeHealth::Passing).unwrap();
    /// } else {
    ///     eprintln!("skipped: this agent's node may not be marked failed (set CONSUL_LOCK_TEST_NODE_FAULTS=1)");
    /// }
    /// ```
    pub fn set_node_health(&self, health: NodeHealth) -> Result<bool, Error> {
        if let TestConsul::Embedded(server) = self {
            server.set_node_health(health);
            return Ok(true);
        }
        let Some(agent) = self.faulty_agent()? else {
            return Ok(false);
        };
        let (status, output) = match health {
            NodeHealth::Critical => ("critical", "Agent not live or unreachable"),
            NodeHealth::Passing => ("passing", "Agent alive and reachable"),
        };
        agent.register(status, output)?;
        Ok(true)
    }

    /// Deregisters the agent's node from the catalog (`registered` false), or registers it
    /// again: on the embedded server with
    /// [`TestServer::deregister_node`](crate::TestServer::deregister_node) /
    /// [`register_node`](crate::TestServer::register_node); on a real agent (plain HTTP) only
    /// when `CONSUL_LOCK_TEST_NODE_FAULTS` is true, through `PUT /v1/catalog/deregister` and
    /// `PUT /v1/catalog/register` (every session of the node ends, other clients' too). Returns
    /// `Ok(false)` when the fault cannot be made here.
    ///
    /// # Errors
    ///
    /// [`Error::RealConsul`] when the agent refused the request or could not be reached.
    ///
    /// ```
    /// use consul_lock_testkit::TestConsul;
    /// let consul = TestConsul::from_env_or_start().unwrap();
    /// if consul.set_node_registered(false).unwrap() {
    ///     // … every session of the node has ended …
    ///     consul.set_node_registered(true).unwrap();
    /// }
    /// ```
    pub fn set_node_registered(&self, registered: bool) -> Result<bool, Error> {
        if let TestConsul::Embedded(server) = self {
            if registered {
                server.register_node();
            } else {
                server.deregister_node();
            }
            return Ok(true);
        }
        let Some(agent) = self.faulty_agent()? else {
            return Ok(false);
        };
        if registered {
            agent.register("passing", "Agent alive and reachable")?;
        } else {
            let body = serde_json::json!({ "Node": agent.node }).to_string();
            agent.put("deregister the node", "/v1/catalog/deregister", &body)?;
        }
        Ok(true)
    }

    /// The real agent faults may be made on, when `CONSUL_LOCK_TEST_NODE_FAULTS` allows it and
    /// it speaks plain HTTP; `None` otherwise.
    fn faulty_agent(&self) -> Result<Option<FaultyAgent>, Error> {
        let TestConsul::Agent { url } = self else {
            return Ok(None);
        };
        let allowed = std::env::var(NODE_FAULTS_ENV)
            .ok()
            .and_then(|v| consul_lock_syntax::parse_go_bool(v.trim()))
            .unwrap_or(false);
        let Some(addr) = allowed.then(|| plain_http_addr(url)).flatten() else {
            return Ok(None);
        };
        let mut agent = FaultyAgent {
            url: url.clone(),
            addr,
            token: std::env::var("CONSUL_HTTP_TOKEN").unwrap_or_default(),
            node: String::new(),
        };
        let (status, body) = agent.request("read /v1/agent/self", "GET", "/v1/agent/self", "")?;
        agent.node = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["Config"]["NodeName"].as_str().map(String::from))
            .filter(|_| status == 200)
            .ok_or_else(|| agent.failed("read the node name", format!("HTTP {status}: {body}")))?;
        Ok(Some(agent))
    }
}

/// A real agent a test may make node faults on.
struct FaultyAgent {
    url: String,
    addr: SocketAddr,
    token: String,
    node: String,
}

impl FaultyAgent {
    fn failed(&self, what: &str, e: String) -> Error {
        Error::RealConsul(format!(
            "cannot {what} on the agent at {} for a node fault: {e}; unset {NODE_FAULTS_ENV} to \
             skip such faults",
            self.url
        ))
    }

    fn request(
        &self,
        what: &str,
        method: &str,
        path: &str,
        body: &str,
    ) -> Result<(u16, String), Error> {
        let headers: Vec<(&str, &str)> = if self.token.is_empty() {
            Vec::new()
        } else {
            vec![("X-Consul-Token", self.token.as_str())]
        };
        request(self.addr, method, path, &headers, body)
            .map_err(|e| self.failed(what, e.to_string()))
    }

    fn put(&self, what: &str, path: &str, body: &str) -> Result<(), Error> {
        let (status, answer) = self.request(what, "PUT", path, body)?;
        if status == 200 {
            Ok(())
        } else {
            Err(self.failed(what, format!("HTTP {status}: {answer}")))
        }
    }

    /// Registers the node with its `serfHealth` check in `status`.
    fn register(&self, status: &str, output: &str) -> Result<(), Error> {
        let node = &self.node;
        let body = serde_json::json!({
            "Node": node,
            "Address": self.addr.ip().to_string(),
            "Check": {
                "Node": node, "CheckID": "serfHealth", "Name": "Serf Health Status",
                "Status": status, "Output": output,
            },
        });
        self.put(
            "register the node's check",
            "/v1/catalog/register",
            &body.to_string(),
        )
    }
}

/// The socket address of an `http://host:port` URL (none for HTTPS).
fn plain_http_addr(url: &str) -> Option<SocketAddr> {
    let hostport = url.strip_prefix("http://")?;
    hostport.to_socket_addrs().ok()?.next()
}
