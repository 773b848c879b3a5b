//! What kind of agent a client talks to, asked once per client: a server of a cluster (whose
//! node the leader deregisters when it fails, ending its sessions at once, check-less ones
//! too) makes its leases node-bound; a client agent or a lone server does not. On the test
//! server, whose `AgentRole` says what it is; the first test also against a real agent.

use std::time::{Duration, Instant};

use consul_lock_runtime::{Client, Lock, LostReason};
use consul_lock_testkit::{
    Access, AclConfig, AclToken, AgentRole, ServerConfig, TestConsul, TestServer,
};

/// The embedded server playing `role`, also when `CONSUL_HTTP_ADDR` names an agent (whose
/// kind a test cannot choose), and says so.
fn server(role: AgentRole) -> TestServer {
    if std::env::var_os("CONSUL_HTTP_ADDR").is_some() {
        eprintln!("agent kind test: runs on its own embedded server playing {role:?}, also when CONSUL_HTTP_ADDR is set");
    }
    let config = ServerConfig::default()
        .session_ttl_min(Duration::from_secs(1))
        .role(role);
    TestServer::start_with(config).unwrap()
}

fn client_of(url: &str, node_lease: Duration) -> Client {
    Client::builder()
        .address(url)
        .session_ttl_min(Duration::from_secs(1))
        .node_lease(node_lease)
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_client_asks_what_its_agent_is_once() {
    let consul = TestConsul::from_env_or_start().unwrap();
    let client = Client::builder()
        .address(consul.url())
        .session_ttl_min(consul.session_ttl_min())
        .build()
        .unwrap();
    let prefix = format!("test/runtime/agent-kind-{:08x}/", fastrand::u32(..));
    let lock = Lock::new("job").key_prefix(prefix).client(&client);
    lock.hold(|_| async {}).await.unwrap();
    // The test server and a dev agent are lone servers: /v1/agent/self, /v1/status/peers.
    let first = client.requests_sent();
    assert_eq!(first, 3 + 2, "a cycle and the two questions");
    // Now the client knows its agent: the shared session is created, then used.
    lock.hold(|_| async {}).await.unwrap();
    assert_eq!(client.requests_sent() - first, 3, "asked once per client");
    let clone = client.clone();
    lock.clone()
        .client(&clone)
        .hold(|_| async {})
        .await
        .unwrap();
    assert_eq!(
        client.requests_sent() - first,
        3 + 2,
        "clones share the answer (and the session)"
    );
}

#[tokio::test]
async fn a_lease_through_a_server_of_a_cluster_counts_only_the_node_lease() {
    let server = server(AgentRole::ClusterServer);
    let node_lease = Duration::from_millis(900);
    let client = client_of(&server.url(), node_lease);
    let guard = Lock::new("job")
        .client(&client)
        .lock_timeout(Duration::from_secs(30))
        .acquire()
        .await
        .unwrap();
    let lost = guard.lost();
    let sent = client.requests_sent();
    tokio::time::sleep(node_lease * 2).await;
    assert!(guard.is_held(), "confirmed");
    assert!(client.requests_sent() >= sent + 4, "confirmations");
    // The server cut off (stalled): its node may be deregistered by the cluster's leader.
    server.set_stalled(true);
    let cut = Instant::now();
    let reason = tokio::time::timeout(node_lease * 2, lost)
        .await
        .expect("reported");
    assert!(
        cut.elapsed() <= node_lease + node_lease / 2,
        "{:?}",
        cut.elapsed()
    );
    assert!(
        matches!(reason, LostReason::Unconfirmed { .. }),
        "{reason:?}"
    );
    assert!(!guard.is_held());
    server.set_stalled(false);
    guard.release().await.unwrap();
}

#[tokio::test]
async fn a_lease_through_a_client_agent_rides_out_a_stall_within_its_ttl() {
    let server = server(AgentRole::ClientAgent);
    let node_lease = Duration::from_millis(900);
    let client = client_of(&server.url(), node_lease);
    let guard = Lock::new("job")
        .client(&client)
        .lock_timeout(Duration::from_secs(3))
        .acquire()
        .await
        .unwrap();
    assert_eq!(
        client.requests_sent(),
        2 + 1,
        "a client agent: one question"
    );
    server.set_stalled(true);
    tokio::time::sleep(node_lease * 2).await;
    // Only its TTL (or a destroy) can end a check-less session of a client agent's node.
    assert!(guard.is_held());
    server.set_stalled(false);
    guard.release().await.unwrap();
}

#[tokio::test]
async fn a_token_that_may_not_read_the_agent_makes_leases_node_bound() {
    let token = AclToken::new("app")
        .key_prefix("", Access::Write)
        .session_prefix("", Access::Write);
    let acl = AclConfig::deny_by_default().token(token.clone());
    let config = ServerConfig::default()
        .session_ttl_min(Duration::from_secs(1))
        .role(AgentRole::ClientAgent)
        .acl(acl);
    if std::env::var_os("CONSUL_HTTP_ADDR").is_some() {
        eprintln!("agent kind test: runs on its own embedded server with ACLs, also when CONSUL_HTTP_ADDR is set");
    }
    let server = TestServer::start_with(config).unwrap();
    let node_lease = Duration::from_millis(900);
    let builder = || {
        Client::builder()
            .address(server.url())
            .token("app")
            .session_ttl_min(Duration::from_secs(1))
            .node_lease(node_lease)
    };
    let lock = |client: &Client| {
        Lock::new("job")
            .client(client)
            .lock_timeout(Duration::from_secs(30))
    };
    // /v1/agent/self is refused: the client cannot tell, and takes the safe side.
    let unsure = builder().build().unwrap();
    let guard = lock(&unsure).acquire().await.unwrap();
    server.set_stalled(true);
    let reason = tokio::time::timeout(node_lease * 2, guard.lost()).await;
    assert!(
        matches!(reason, Ok(LostReason::Unconfirmed { .. })),
        "{reason:?}"
    );
    server.set_stalled(false);
    guard.release().await.unwrap();
    // Said by the code instead: no question, and only the TTL bounds the lease.
    let told = builder().agent_is_server(false).build().unwrap();
    let guard = lock(&told).acquire().await.unwrap();
    assert_eq!(told.requests_sent(), 2);
    server.set_stalled(true);
    tokio::time::sleep(node_lease * 2).await;
    assert!(guard.is_held());
    server.set_stalled(false);
    guard.release().await.unwrap();
}
