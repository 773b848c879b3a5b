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
        let url = match self {
            TestConsul::Embedded(server) => {
                server.set_node_health(health);
                return Ok(true);
            }
            TestConsul::Agent { url } => url,
        };
        let allowed = std::env::var(NODE_FAULTS_ENV)
            .ok()
            .and_then(|v| consul_lock_syntax::parse_go_bool(v.trim()))
            .unwrap_or(false);
        let Some(addr) = allowed.then(|| plain_http_addr(url)).flatten() else {
            return Ok(false);
        };
        let token = std::env::var("CONSUL_HTTP_TOKEN").unwrap_or_default();
        let headers: Vec<(&str, &str)> = if token.is_empty() {
            Vec::new()
        } else {
            vec![("X-Consul-Token", token.as_str())]
        };
        let failed = |what: &str, e: String| {
            Error::RealConsul(format!(
                "cannot {what} on the agent at {url} for a node-health fault: {e}; unset \
                 {NODE_FAULTS_ENV} to skip such faults"
            ))
        };
        let (status, body) = request(addr, "GET", "/v1/agent/self", &headers, "")
            .map_err(|e| failed("read /v1/agent/self", e.to_string()))?;
        let node = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["Config"]["NodeName"].as_str().map(String::from))
            .filter(|_| status == 200)
            .ok_or_else(|| failed("read the node name", format!("HTTP {status}: {body}")))?;
        let (status_text, output) = match health {
            NodeHealth::Critical => ("critical", "Agent not live or unreachable"),
            NodeHealth::Passing => ("passing", "Agent alive and reachable"),
        };
        let register = serde_json::json!({
            "Node": node,
            "Address": addr.ip().to_string(),
            "Check": {
                "Node": node, "CheckID": "serfHealth", "Name": "Serf Health Status",
                "Status": status_text, "Output": output,
            },
        });
        let (status, body) = request(
            addr,
            "PUT",
            "/v1/catalog/register",
            &headers,
            &register.to_string(),
        )
        .map_err(|e| failed("register the node's check", e.to_string()))?;
        if status != 200 {
            return Err(failed(
                "register the node's check",
                format!("HTTP {status}: {body}"),
            ));
        }
        Ok(true)
    }
}

/// The socket address of an `http://host:port` URL (none for HTTPS).
fn plain_http_addr(url: &str) -> Option<SocketAddr> {
    let hostport = url.strip_prefix("http://")?;
    hostport.to_socket_addrs().ok()?.next()
}
