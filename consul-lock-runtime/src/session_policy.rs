//! What may end this client's sessions besides their TTL and a release, and how the lease
//! accounts for it: the sessions carry no health check (the default), or the node's health
//! check ([`ClientBuilder::danger_node_health_check`]); a lease whose node's failure can end it
//! counts as held only [`node_lease`](ClientBuilder::node_lease) after its last confirmed
//! contact with Consul.

use std::time::Duration;

use crate::{Client, ClientBuilder};

/// How long a lease that its node's failure can end counts as held after the holder's last
/// confirmed contact with Consul, unless set with [`ClientBuilder::node_lease`]: 3 s, below the
/// 4 s in which Consul's default gossip settings (`gossip_lan`: probe interval 1 s,
/// `suspicion_mult` 4, fewer than 10 nodes) can declare a node failed.
///
/// ```
/// use consul_lock_runtime::{Client, DEFAULT_NODE_LEASE};
/// use std::time::Duration;
/// assert_eq!(DEFAULT_NODE_LEASE, Duration::from_secs(3));
/// assert_eq!(Client::builder().build()?.node_lease(), DEFAULT_NODE_LEASE);
/// # Ok::<(), consul_lock_runtime::Error>(())
/// ```
pub const DEFAULT_NODE_LEASE: Duration = Duration::from_secs(3);

/// The TTL of a client's shared session unless set with
/// [`ClientBuilder::shared_session_ttl`]: 15 s (raised to the client's
/// [`session_ttl_min`](ClientBuilder::session_ttl_min) when that is higher). A crashed process's
/// keys are free within twice it.
///
/// ```
/// use consul_lock_runtime::{Client, DEFAULT_SHARED_SESSION_TTL};
/// use std::time::Duration;
/// assert_eq!(DEFAULT_SHARED_SESSION_TTL, Duration::from_secs(15));
/// assert_eq!(Client::builder().build()?.shared_session_ttl(), DEFAULT_SHARED_SESSION_TTL);
/// # Ok::<(), consul_lock_runtime::Error>(())
/// ```
pub const DEFAULT_SHARED_SESSION_TTL: Duration = Duration::from_secs(15);

/// The node check Consul ties sessions to by default.
pub(crate) const SERF_HEALTH: &str = "serfHealth";

/// This client's choices about what its sessions are tied to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SessionPolicy {
    /// Sessions carry the node's `serfHealth` check (Consul's default) instead of none.
    pub(crate) node_health_check: bool,
    /// How long a node-bound lease counts as held after its last confirmed contact.
    pub(crate) node_lease: Duration,
    /// The TTL of the client's shared session, when set (`shared_session_ttl`).
    pub(crate) shared_ttl: Option<Duration>,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        SessionPolicy {
            node_health_check: false,
            node_lease: DEFAULT_NODE_LEASE,
            shared_ttl: None,
        }
    }
}

impl ClientBuilder {
    /// **Gives up part of the lease's promise.** Create sessions with the agent node's
    /// `serfHealth` check, as Consul does by default (and Go's `api.Lock`, `consul lock` and
    /// the Python library do), instead of with no check at all (this library's default).
    ///
    /// What it buys: when Consul's servers declare the agent's node failed (the machine died,
    /// the agent crashed), they end its sessions at once and free its keys, instead of after
    /// the lock timeout (up to twice it). What it costs: the servers also declare a node failed
    /// that is only slow or cut off from them (a frozen VM, a stuck agent, a network cut), while
    /// the holder runs on; then another process can take the key before this holder's lock
    /// timeout, at a moment the holder cannot learn (it cannot reach Consul).
    ///
    /// `is_held()` accounts for it as far as a client can: such a lease counts as held only
    /// [`node_lease`](Self::node_lease) (3 s) after the last request that Consul answered with
    /// the session alive, and the library confirms the session three times per node lease
    /// (renewals with `renew`, `GET /v1/session/info/<id>?consistent` otherwise), so a lock
    /// costs a request a second while held. What it cannot cover: a gossip failure that leaves
    /// requests working (the servers declare the node failed while the holder still reaches
    /// them; `lost()` reports it at the next confirmation, up to a second later), and gossip
    /// settings that declare a node failed faster than the node lease (lower `node_lease` to
    /// match). Use fenced writes ([`Fence`](crate::Fence)) for anything that must not happen
    /// twice.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// use consul_lock_runtime::{Client, Lock};
    /// let client = Client::builder().address(server.url()).danger_node_health_check(true).build()?;
    /// let guard = Lock::new("node-health-example").client(&client).acquire().await?;
    /// let sessions = client.sessions().await?;
    /// let session = sessions.iter().find(|s| s.id == guard.session_id()).expect("listed");
    /// assert_eq!(session.node_checks, ["serfHealth"]);
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn danger_node_health_check(mut self, on: bool) -> Self {
        self.sessions.node_health_check = on;
        self
    }

    /// How long a lease that its node's failure can end counts as held after the last
    /// confirmed contact with Consul (default [`DEFAULT_NODE_LEASE`], 3 s). Such leases are
    /// those of [`danger_node_health_check`](Self::danger_node_health_check) sessions. Keep it
    /// below the shortest time in which your Consul's gossip can declare a node failed (4 s
    /// with Consul's defaults, more with more nodes; `gossip_lan` settings change it). The
    /// library confirms such a lease three times per node lease.
    ///
    /// ```
    /// use consul_lock_runtime::Client;
    /// use std::time::Duration;
    /// let client = Client::builder().node_lease(Duration::from_millis(1500)).build()?;
    /// assert_eq!(client.node_lease(), Duration::from_millis(1500));
    /// // Zero is refused when the client is built.
    /// assert!(Client::builder().node_lease(Duration::ZERO).build().is_err());
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    #[must_use]
    pub fn node_lease(mut self, lease: Duration) -> Self {
        self.sessions.node_lease = lease;
        self
    }

    /// The TTL of the session this client's locks share (default
    /// [`DEFAULT_SHARED_SESSION_TTL`], 15 s, or the client's `session_ttl_min` when that is
    /// higher). A lock whose lock timeout is at least this TTL (the default lock timeout is
    /// 180 s) takes its key with the client's one session: one Raft write to take it, one to
    /// give it back, and no session to create or destroy. The session is renewed at TTL/2
    /// while a lock or waiter uses it (renewals are not Raft writes) and destroyed once nothing
    /// has used it for a while (between half a TTL and a TTL). If the process dies, Consul ends
    /// the session, and frees every key on it, within twice this TTL. A lock whose lock timeout
    /// is shorter uses a session of its own (as does
    /// [`Lock::own_session`](crate::Lock::own_session)), so that a frozen process's key is
    /// still freed within twice its lock timeout.
    ///
    /// ```
    /// use consul_lock_runtime::Client;
    /// use std::time::Duration;
    /// let client = Client::builder().shared_session_ttl(Duration::from_secs(30)).build()?;
    /// assert_eq!(client.shared_session_ttl(), Duration::from_secs(30));
    /// // Below the client's session_ttl_min (10 s by default): refused when the client is built.
    /// assert!(Client::builder().shared_session_ttl(Duration::from_secs(5)).build().is_err());
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    #[must_use]
    pub fn shared_session_ttl(mut self, ttl: Duration) -> Self {
        self.sessions.shared_ttl = Some(ttl);
        self
    }
}

impl Client {
    /// Whether this client's sessions carry the node's health check (see
    /// [`ClientBuilder::danger_node_health_check`]).
    ///
    /// ```
    /// let client = consul_lock_runtime::Client::builder().build()?;
    /// assert!(!client.sessions_carry_node_health_check()); // no check, by default
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    #[must_use]
    pub fn sessions_carry_node_health_check(&self) -> bool {
        self.inner.sessions.node_health_check
    }

    /// How long a lease that its node's failure can end counts as held after its last
    /// confirmed contact (see [`ClientBuilder::node_lease`]).
    ///
    /// ```
    /// let client = consul_lock_runtime::Client::builder().build()?;
    /// assert_eq!(client.node_lease(), consul_lock_runtime::DEFAULT_NODE_LEASE);
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    #[must_use]
    pub fn node_lease(&self) -> Duration {
        self.inner.sessions.node_lease
    }

    /// The TTL of the session this client's locks share (see
    /// [`ClientBuilder::shared_session_ttl`]).
    ///
    /// ```
    /// use consul_lock_runtime::Client;
    /// use std::time::Duration;
    /// // The default is raised to session_ttl_min when that is higher.
    /// let client = Client::builder().session_ttl_min(Duration::from_secs(20)).build()?;
    /// assert_eq!(client.shared_session_ttl(), Duration::from_secs(20));
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    #[must_use]
    pub fn shared_session_ttl(&self) -> Duration {
        let policy = &self.inner.sessions;
        policy
            .shared_ttl
            .unwrap_or_else(|| DEFAULT_SHARED_SESSION_TTL.max(self.inner.session_ttl_min))
    }

    /// The node lease of this client's leases when its node's failure can end them (their
    /// sessions carry the node's health check, or the agent is a server of a cluster, whose
    /// node the leader deregisters when it fails), `None` when only their TTL or a destroy
    /// can.
    pub(crate) fn node_bound(&self) -> Option<Duration> {
        let policy = &self.inner.sessions;
        let removable = self.agent_kind().node_removed_on_failure();
        (policy.node_health_check || removable).then_some(policy.node_lease)
    }

    /// The `NodeChecks` a session is created with.
    pub(crate) fn session_node_checks(&self) -> &'static [&'static str] {
        if self.inner.sessions.node_health_check {
            &[SERF_HEALTH]
        } else {
            &[]
        }
    }
}
