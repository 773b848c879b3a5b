//! Everything that ends a lock before its TTL, besides a node health check
//! (`session_checks.rs`) and the node deregistered (`node_deregistered.rs`, a test binary of
//! its own: on a real agent it ends every session of the node), as the holder learns it from
//! `lost()`: an operator's session destroy, the key deleted or released from outside, and an
//! ACL token deleted; and what does not end it (the key overwritten). With `renew` the key watch
//! reports each at once; without it, the key is watched from the first `lost()` on. Against
//! the test server and, with `CONSUL_HTTP_ADDR` set, a real agent (the ACL test on its own
//! embedded server).

mod common;

use std::time::Duration;

use common::Env;
use consul_lock_runtime::{Client, Error, LockGuard, LostReason};
use consul_lock_testkit::{Access, AclConfig, AclToken, ServerConfig, TestServer};

/// How long a loss may take to be reported when the holder can reach Consul.
const AT_ONCE: Duration = Duration::from_secs(5);

/// The held lock, with renewal or not: a lock without renewal is watched once someone waits
/// for its loss.
async fn hold(env: &Env, renew: bool) -> LockGuard {
    env.lock(if renew { "renewed" } else { "plain" })
        .lock_timeout(Duration::from_secs(30).max(env.min_ttl()))
        .renew(renew)
        .acquire()
        .await
        .expect("acquire")
}

/// A raw request to the agent (for what the client has no call for: an operator's deletes).
async fn raw(env: &Env, method: reqwest::Method, path: &str) -> u16 {
    let url = format!("{}{path}", env.client.address());
    let answer = reqwest::Client::new().request(method, url).send().await;
    answer.expect("request").status().as_u16()
}

#[tokio::test]
async fn an_operators_session_destroy_is_reported_with_or_without_renewal() {
    let env = Env::new("ends-destroy");
    for renew in [true, false] {
        let guard = hold(&env, renew).await;
        let lost = guard.lost();
        env.client
            .destroy_session(guard.session_id())
            .await
            .unwrap();
        let reason = tokio::time::timeout(AT_ONCE, lost).await.expect("reported");
        assert_eq!(reason, LostReason::SessionInvalidated, "renew {renew}");
        assert!(!guard.is_held(), "renew {renew}");
        drop(guard);
    }
    assert!(env.my_sessions().await.is_empty());
    assert!(env.my_keys().await.is_empty());
}

#[tokio::test]
async fn a_key_deleted_or_released_from_outside_is_reported() {
    let env = Env::new("ends-key");
    for renew in [true, false] {
        let guard = hold(&env, renew).await;
        let lost = guard.lost();
        let path = format!("/v1/kv/{}", guard.key());
        assert_eq!(raw(&env, reqwest::Method::DELETE, &path).await, 200);
        let reason = tokio::time::timeout(AT_ONCE, lost).await.expect("reported");
        assert_eq!(
            reason,
            LostReason::KeyTakenOver { by: None },
            "renew {renew}"
        );
        guard.release().await.unwrap();

        // Someone who knows the session releases the key (`?release=`): the same.
        let guard = hold(&env, renew).await;
        let lost = guard.lost();
        let path = format!("/v1/kv/{}?release={}", guard.key(), guard.session_id());
        assert_eq!(raw(&env, reqwest::Method::PUT, &path).await, 200);
        let reason = tokio::time::timeout(AT_ONCE, lost).await.expect("reported");
        assert_eq!(
            reason,
            LostReason::KeyTakenOver { by: None },
            "renew {renew}"
        );
        guard.release().await.unwrap();
    }
    assert!(env.my_sessions().await.is_empty());
}

#[tokio::test]
async fn a_key_overwritten_from_outside_stays_locked() {
    let env = Env::new("ends-overwrite");
    let guard = hold(&env, true).await;
    let lost = guard.lost();
    // A plain PUT keeps the key's session (Consul's rule): the lock is still held.
    let url = format!("{}/v1/kv/{}", env.client.address(), guard.key());
    let put = reqwest::Client::new()
        .put(url)
        .body("overwritten")
        .send()
        .await;
    assert!(put.expect("request").status().is_success());
    let entry = env.client.kv_get(guard.key()).await.unwrap().expect("key");
    assert_eq!(entry.session.as_deref(), Some(guard.session_id()));
    assert_eq!(entry.value, b"overwritten");
    guard
        .fence()
        .txn([])
        .await
        .expect("Consul finds the lock held");
    // The watch saw the write and goes on: a later destroy is reported as such.
    env.client
        .destroy_session(guard.session_id())
        .await
        .unwrap();
    let reason = tokio::time::timeout(AT_ONCE, lost).await.expect("reported");
    assert_eq!(reason, LostReason::SessionInvalidated);
    guard.release().await.unwrap(); // before the test server stops
}

#[tokio::test]
async fn a_deleted_acl_token_is_reported_at_the_next_renewal() {
    // The token is deleted with the embedded server's fault (a real agent's tests run without
    // ACLs; `acl_token_deleted.json` shows what Consul does).
    if std::env::var_os("CONSUL_HTTP_ADDR").is_some() {
        eprintln!("acl test: runs on its own embedded server with ACLs, also when CONSUL_HTTP_ADDR is set");
    }
    let token = AclToken::new("app")
        .key_prefix("", Access::Write)
        .session_prefix("", Access::Write);
    let acl = AclConfig::deny_by_default()
        .management_token("root")
        .token(token);
    let config = ServerConfig::default()
        .session_ttl_min(Duration::from_secs(1))
        .acl(acl);
    let server = TestServer::start_with(config).unwrap();
    let client = Client::builder()
        .address(server.url())
        .token("app")
        .session_ttl_min(Duration::from_secs(1))
        .agent_is_server(false)
        .build()
        .unwrap();
    let ttl = Duration::from_secs(2);
    let guard = consul_lock_runtime::Lock::new("acl/job")
        .client(&client)
        .lock_timeout(ttl)
        .renew(true)
        .acquire()
        .await
        .unwrap();
    let lost = guard.lost();
    assert!(server.revoke_token("app"));
    // Reported at the next renewal (TTL/2), not when the TTL runs out.
    let reason = tokio::time::timeout(ttl * 3 / 4, lost)
        .await
        .expect("reported");
    match &reason {
        LostReason::RenewalFailed { last_error } => {
            assert!(last_error.contains("ACL not found"), "{last_error}")
        }
        other => panic!("expected RenewalFailed, got {other:?}"),
    }
    assert!(!guard.is_held());
    // The lock stays in Consul until its TTL: the token deletion ended no session.
    let admin = Client::builder()
        .address(server.url())
        .token("root")
        .build()
        .unwrap();
    let entry = admin
        .kv_get(guard.key())
        .await
        .unwrap()
        .expect("still held");
    assert_eq!(entry.session.as_deref(), Some(guard.session_id()));
    let refused = guard.fence().put("acl/data", "x").await.unwrap_err();
    assert!(
        matches!(refused, Error::PermissionDenied { .. }),
        "{refused:?}"
    );
    // Its release is refused too; the TTL frees the key.
    assert!(guard.release().await.is_err());
    admin
        .destroy_session(entry.session.as_deref().unwrap_or_default())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_lock_without_renewal_sends_nothing_until_someone_waits_for_its_loss() {
    let env = Env::new("ends-quiet");
    let guard = hold(&env, false).await;
    let sent = env.client.requests_sent();
    assert!(guard.is_held()); // answered from what the guard knows
    assert_eq!(env.client.requests_sent(), sent);
    let lost = guard.lost();
    env.client
        .destroy_session(guard.session_id())
        .await
        .unwrap();
    let reason = tokio::time::timeout(AT_ONCE, lost).await.expect("reported");
    assert_eq!(reason, LostReason::SessionInvalidated);
    assert!(
        env.client.requests_sent() > sent + 1,
        "the watch asked Consul"
    );
    guard.release().await.unwrap(); // before the test server stops
}
