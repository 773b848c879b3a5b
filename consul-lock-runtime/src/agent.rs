//! What kind of agent a client talks to, learnt once per client when it first takes a lock.
//!
//! It matters because of what Consul does when an agent fails: a client agent's node stays
//! registered (a session without checks lives on until its TTL), but when a server of a
//! cluster fails, the leader removes it from the cluster and deregisters its node, which ends
//! every session of that node, check-less ones too (Consul's issue #20424; 17 s after a
//! `SIGSTOP` of one of 3 servers on Consul 1.10.12). A lease whose session was created through
//! such a server is therefore node-bound, as one with the node's health check is.

use std::future::Future;
use std::time::Duration;

use crate::{Client, ClientBuilder, Error};

/// How long a successful acquisition waits for the agent's answer when it came first: Consul
/// answered the acquisition, so it answers this at once; past it the lease is taken as
/// node-bound (the safe side) and the next acquisition asks again.
const LEARN_AFTER: Duration = Duration::from_secs(1);

/// The kind of agent behind a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AgentKind {
    /// A client agent: its node is deregistered only by an operator (or a graceful leave).
    Client,
    /// The only server of its cluster (`consul agent -dev`): no leader can remove it.
    LoneServer,
    /// A server of a cluster of several: the leader deregisters its node when it fails.
    ClusterServer,
    /// The agent would not say (its ACL token lacks `agent:read`): taken as a server of a
    /// cluster, the safe side.
    Unknown,
}

impl AgentKind {
    /// Whether Consul can deregister the agent's node, and so end its sessions, when the agent
    /// fails.
    pub(crate) fn node_removed_on_failure(self) -> bool {
        matches!(self, AgentKind::ClusterServer | AgentKind::Unknown)
    }
}

impl ClientBuilder {
    /// Says whether the agent is a server of a cluster of several servers, instead of asking
    /// it (`GET /v1/agent/self`, which needs `agent:read`, and `GET /v1/status/peers`, once per
    /// client, when it first takes a lock). Consul's leader deregisters a failed server's node,
    /// which ends every session created through it before its TTL, so the leases of such a
    /// client are held only the [node lease](Self::node_lease) after their last confirmed
    /// contact (see [`danger_node_health_check`](Self::danger_node_health_check) for what
    /// that costs). A token without `agent:read` makes the client assume a server; say
    /// `false` here for a client agent (or grant `agent_prefix "" { policy = "read" }`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// use consul_lock_runtime::{Client, Lock};
    /// let client = Client::builder().address(server.url()).agent_is_server(false).build()?;
    /// Lock::new("agent-kind-example").client(&client).hold(|_| async {}).await?;
    /// assert_eq!(client.requests_sent(), 3); // nothing asked about the agent
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn agent_is_server(mut self, server: bool) -> Self {
        self.agent = Some(if server {
            AgentKind::ClusterServer
        } else {
            AgentKind::Client
        });
        self
    }
}

impl Client {
    /// Learns what kind of agent this is, once per client (clones share it): on the first call
    /// asks the agent; later calls return at once. A failure other than a refusal of
    /// permission is not kept, so the next acquisition asks again. `key` names the lock it is
    /// asked for, in errors.
    pub(crate) async fn learn_agent(&self, key: &str) {
        let asked = self.inner.agent.get_or_try_init(|| ask(self, key)).await;
        if let Err(e) = asked {
            tracing::debug!(error = %e, "could not learn what kind of agent this is; asking again later");
        }
    }

    /// Runs `acquire` while learning what kind of agent this is (see
    /// [`learn_agent`](Self::learn_agent)), without holding up the acquisition's outcome: a
    /// failed acquisition stops asking, a successful one waits at most a second for the
    /// answer.
    pub(crate) async fn acquire_learning<T>(
        &self,
        key: &str,
        acquire: impl Future<Output = crate::Result<T>>,
    ) -> crate::Result<T> {
        // Boxed, both: an acquisition's future is large (over 16 KiB), and the caller's future
        // holds it; once on the heap, it is moved no more.
        let mut learn = Box::pin(self.learn_agent(key));
        let mut acquire = Box::pin(acquire);
        let mut learnt = false;
        let result = loop {
            tokio::select! {
                result = &mut acquire => break result,
                () = &mut learn, if !learnt => learnt = true,
            }
        };
        if result.is_ok() && !learnt {
            let _ = tokio::time::timeout(LEARN_AFTER, learn).await;
        }
        result
    }

    /// What kind of agent this is: [`AgentKind::Unknown`] until learnt.
    pub(crate) fn agent_kind(&self) -> AgentKind {
        self.inner
            .agent
            .get()
            .copied()
            .unwrap_or(AgentKind::Unknown)
    }
}

async fn ask(client: &Client, key: &str) -> crate::Result<AgentKind> {
    let timeout: Duration = client.request_timeout();
    match client.agent_is_server(key, timeout).await {
        Ok(false) => Ok(AgentKind::Client),
        Ok(true) => {
            let servers = client.server_count(key, timeout).await?;
            Ok(if servers > 1 {
                AgentKind::ClusterServer
            } else {
                AgentKind::LoneServer
            })
        }
        Err(Error::PermissionDenied { .. }) => {
            tracing::warn!(
                agent = client.address(),
                "the ACL token may not read /v1/agent/self, so the library cannot tell whether \
                 the agent is a Consul server (whose failure ends its node's sessions at once); \
                 it assumes one: leases count as held only the node lease after their last \
                 confirmed contact. Grant agent:read, or say what the agent is with \
                 ClientBuilder::agent_is_server"
            );
            Ok(AgentKind::Unknown)
        }
        Err(e) => Err(e),
    }
}
