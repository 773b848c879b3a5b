//! The node deregistered (an operator's `consul force-leave` or `PUT /v1/catalog/deregister`,
//! a client agent's graceful leave, reaping, a failed server's removal) ends every session of
//! the node, check-less ones too, and the holder learns it from `lost()`. A test binary of its
//! own: on a real agent (with `CONSUL_LOCK_TEST_NODE_FAULTS` set, through the catalog) the
//! fault ends every session of the agent's node, so no other test may run beside it.

mod common;

use std::time::Duration;

use common::Env;
use consul_lock_runtime::{Error, LockGuard, LostReason};

/// How long a loss may take to be reported when the holder can reach Consul.
const AT_ONCE: Duration = Duration::from_secs(5);

async fn hold(env: &Env, renew: bool) -> LockGuard {
    env.lock(if renew { "renewed" } else { "plain" })
        .lock_timeout(Duration::from_secs(30).max(env.min_ttl()))
        .renew(renew)
        .acquire()
        .await
        .expect("acquire")
}

#[tokio::test]
async fn the_node_deregistered_is_reported_with_or_without_renewal() {
    let env = Env::new("ends-deregistered");
    for renew in [true, false] {
        let guard = hold(&env, renew).await;
        let lost = guard.lost();
        let made = env.consul.set_node_registered(false).expect("node fault");
        if !made {
            eprintln!(
                "the_node_deregistered_is_reported_with_or_without_renewal: cannot deregister this \
                 agent's node (set CONSUL_LOCK_TEST_NODE_FAULTS=1 on an agent of the tests' own); \
                 skipped"
            );
            return guard.release().await.unwrap();
        }
        let reason = tokio::time::timeout(AT_ONCE, lost).await.expect("reported");
        assert_eq!(reason, LostReason::SessionInvalidated, "renew {renew}");
        assert!(!guard.is_held());
        // No session can be created for the node until it is registered again.
        let refused = env.lock("other").acquire().await.unwrap_err();
        assert!(
            matches!(&refused, Error::ConsulRefused { message, .. } if message.contains("Missing node registration")),
            "{refused:?}"
        );
        env.consul.set_node_registered(true).expect("node fault");
        drop(guard);
    }
    assert!(env.my_sessions().await.is_empty());
}
