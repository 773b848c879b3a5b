//! What a lock's session is tied to: no health check by default, so a node declared failed
//! (its `serfHealth` critical) does not end a lock early; with
//! `ClientBuilder::danger_node_health_check` it does, and the lease counts only the node lease
//! after its last confirmed contact. The node-health fault runs on the test server, and on a
//! real agent when `CONSUL_LOCK_TEST_NODE_FAULTS` allows it (through the catalog).

mod common;

use std::time::{Duration, Instant};

use common::Env;
use consul_lock_runtime::{Client, ClientBuilder, Error, LostReason};
use consul_lock_testkit::NodeHealth;

/// One node-health fault at a time: on a real agent they share the node.
static NODE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A client for `env`'s Consul whose sessions carry the node's health check.
fn health_checked(env: &Env, node_lease: Duration) -> Client {
    ClientBuilder::from_env()
        .expect("CONSUL_* variables")
        .address(env.consul.url())
        .session_ttl_min(env.min_ttl())
        .danger_node_health_check(true)
        .node_lease(node_lease)
        .build()
        .expect("client")
}

/// Marks the node failed; `false` (and says so) where the fault cannot be made.
fn node_fails(env: &Env, test: &str) -> bool {
    let made = env
        .consul
        .set_node_health(NodeHealth::Critical)
        .expect("node-health fault");
    if !made {
        eprintln!(
            "{test}: cannot mark this agent's node failed (set CONSUL_LOCK_TEST_NODE_FAULTS=1 on an \
             agent of the tests' own); skipped"
        );
    }
    made
}

fn node_recovers(env: &Env) {
    env.consul
        .set_node_health(NodeHealth::Passing)
        .expect("node-health fault");
}

#[tokio::test]
async fn sessions_are_created_without_health_checks() {
    let env = Env::new("checks-none");
    // A session with the node's check cannot be created while another test has it failed.
    let _node = NODE.lock().await;
    let guard = env.lock("job").acquire().await.unwrap();
    let sessions = env.client.sessions().await.unwrap();
    let session = sessions
        .iter()
        .find(|s| s.id == guard.session_id())
        .expect("listed");
    assert!(session.node_checks.is_empty(), "{session:?}");
    assert!(session.service_checks.is_empty(), "{session:?}");
    assert!(!env.client.sessions_carry_node_health_check());
    guard.release().await.unwrap();

    let checked = health_checked(&env, Duration::from_secs(3));
    let guard = env.lock("job").client(&checked).acquire().await.unwrap();
    let sessions = env.client.sessions().await.unwrap();
    let session = sessions
        .iter()
        .find(|s| s.id == guard.session_id())
        .expect("listed");
    assert_eq!(session.node_checks, ["serfHealth"]);
    guard.release().await.unwrap();
    assert!(env.my_sessions().await.is_empty());
}

#[tokio::test]
async fn a_lock_without_checks_survives_its_node_being_declared_failed() {
    let env = Env::new("checks-survive");
    let _node = NODE.lock().await;
    let ttl = env.min_ttl();
    let guard = env
        .lock("job")
        .lock_timeout(ttl)
        .renew(true)
        .acquire()
        .await
        .unwrap();
    let lost = guard.lost();
    if !node_fails(
        &env,
        "a_lock_without_checks_survives_its_node_being_declared_failed",
    ) {
        return guard.release().await.unwrap();
    }
    // A session with Consul's default checks cannot even be created now. (A real agent's
    // leader may set the check passing again at its next reconciliation, so this is asked at
    // once.)
    let checked = health_checked(&env, Duration::from_secs(3));
    let refused = env
        .lock("other")
        .client(&checked)
        .acquire()
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, Error::ConsulRefused { message, .. } if message.contains("critical")),
        "{refused:?}"
    );
    // Held in Consul and locally, through more than a TTL of renewals.
    tokio::time::sleep(ttl + ttl / 2).await;
    let entry = env.client.kv_get(guard.key()).await.unwrap().expect("key");
    assert_eq!(entry.session.as_deref(), Some(guard.session_id()));
    assert!(guard.is_held());
    assert_eq!(guard.lost_reason(), None);
    guard
        .fence()
        .txn([])
        .await
        .expect("Consul finds the lock held");
    node_recovers(&env);
    guard.release().await.unwrap();
    assert_eq!(lost.await, LostReason::Released);
    assert!(env.my_sessions().await.is_empty());
}

#[tokio::test]
async fn a_health_checked_lock_ends_when_its_node_is_declared_failed() {
    let env = Env::new("checks-end");
    let _node = NODE.lock().await;
    let checked = health_checked(&env, Duration::from_secs(3));
    let guard = env
        .lock("job")
        .client(&checked)
        .renew(true)
        .acquire()
        .await
        .unwrap();
    let lost = guard.lost();
    if !node_fails(
        &env,
        "a_health_checked_lock_ends_when_its_node_is_declared_failed",
    ) {
        return guard.release().await.unwrap();
    }
    let reason = tokio::time::timeout(Duration::from_secs(5), lost)
        .await
        .expect("the loss is reported");
    assert!(
        matches!(
            reason,
            LostReason::KeyTakenOver { by: None } | LostReason::SessionInvalidated
        ),
        "{reason:?}"
    );
    assert!(!guard.is_held());
    assert!(env.client.kv_get(guard.key()).await.unwrap().is_none());
    let err = guard.fence().put(format!("{}data", env.prefix), "x").await;
    assert!(matches!(err, Err(Error::LockLost { .. })), "{err:?}");
    node_recovers(&env);
    drop(guard);
    assert!(env.my_sessions().await.is_empty());
}

#[tokio::test]
async fn a_health_checked_lease_counts_only_the_node_lease_after_its_last_contact() {
    let env = Env::new("checks-node-lease");
    if !env.embedded_or_skip(
        "a_health_checked_lease_counts_only_the_node_lease_after_its_last_contact",
    ) {
        return;
    }
    let server = env.consul.server().expect("embedded");
    let node_lease = Duration::from_millis(900);
    let checked = health_checked(&env, node_lease);
    for renew in [false, true] {
        // A lock timeout far beyond the node lease: the node lease is what bounds it.
        let guard = env
            .lock("job")
            .client(&checked)
            .lock_timeout(Duration::from_secs(30))
            .renew(renew)
            .acquire()
            .await
            .unwrap();
        let lost = guard.lost();
        // Confirmed three times per node lease, so held long past it.
        let sent = checked.requests_sent();
        tokio::time::sleep(node_lease * 3).await;
        assert!(guard.is_held(), "renew {renew}: confirmed");
        assert!(
            checked.requests_sent() >= sent + 6,
            "renew {renew}: confirmations"
        );
        // Consul stops answering (the agent frozen): held at most the node lease longer.
        server.set_stalled(true);
        let stalled = Instant::now();
        let reason = tokio::time::timeout(node_lease * 2, lost)
            .await
            .expect("the loss is reported within the node lease");
        let after = stalled.elapsed();
        assert!(!guard.is_held());
        assert!(
            after <= node_lease + node_lease / 2,
            "renew {renew}: {after:?}"
        );
        assert!(
            matches!(reason, LostReason::Unconfirmed { .. }),
            "renew {renew}: {reason:?}"
        );
        assert!(reason.to_string().contains("node lease"), "{reason}");
        server.set_stalled(false);
        guard.release().await.unwrap();
    }
    assert!(env.my_sessions().await.is_empty());
}
