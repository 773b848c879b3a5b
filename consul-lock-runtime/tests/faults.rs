//! The lock protocol under Consul faults and ACLs, with the test server's fault injection.
//! Against a real agent (CONSUL_HTTP_ADDR) these print why they skip.

mod common;

use std::time::{Duration, Instant};

use common::Env;
use consul_lock_runtime::{Blocker, Client, Error, Lock};
use consul_lock_testkit::{Access, AclConfig, AclToken, ServerConfig, TestServer};

#[tokio::test]
async fn acl_denials_become_permission_errors() {
    if std::env::var_os("CONSUL_HTTP_ADDR").is_some() {
        eprintln!("acl test: runs on its own embedded server with ACLs, also when CONSUL_HTTP_ADDR is set");
    }
    let secret = "3f1c9a52-token-never-shown";
    let acl = AclConfig::deny_by_default().token(
        AclToken::new(secret)
            .key_prefix("allowed/", Access::Write)
            .session_prefix("", Access::Write),
    );
    let server = TestServer::start_with(ServerConfig::default().acl(acl)).unwrap();
    let with_token = Client::builder()
        .address(server.url())
        .token(secret)
        .build()
        .unwrap();
    let without_token = Client::builder().address(server.url()).build().unwrap();

    let ok = Lock::new("job")
        .key_prefix("allowed/")
        .client(&with_token)
        .acquire()
        .await;
    ok.expect("allowed prefix").release().await.unwrap();

    // A session may be created, but the key is outside the token's rules: 409 inside the txn.
    let err = Lock::new("job")
        .key_prefix("forbidden/")
        .client(&with_token)
        .acquire()
        .await
        .unwrap_err();
    match &err {
        Error::PermissionDenied {
            key,
            operation,
            message,
        } => {
            assert_eq!(key, "forbidden/job");
            assert_eq!(*operation, "lock the key");
            // Consul refuses the lock and the read of the queue with the same text: said once
            // (it read "Permission denied; Permission denied").
            assert_eq!(message, "Permission denied");
        }
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
    assert!(!err.to_string().contains(secret));
    assert!(!format!("{err:?}").contains(secret));

    // No token at all: the session create is a 403.
    let err = Lock::new("job")
        .key_prefix("allowed/")
        .client(&without_token)
        .acquire()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::PermissionDenied { operation: "create a session", message, .. } if message == "Permission denied"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("CONSUL_HTTP_TOKEN"),
        "the error says what to do: {err}"
    );

    // A token Consul does not know: said so, not "give the token write access".
    let unknown = Client::builder()
        .address(server.url())
        .token("no-such-token")
        .build()
        .unwrap();
    let err = Lock::new("job")
        .key_prefix("allowed/")
        .client(&unknown)
        .acquire()
        .await
        .unwrap_err();
    let text = err.to_string();
    eprintln!("{text}");
    assert!(
        matches!(&err, Error::PermissionDenied { message, .. } if message == "ACL not found"),
        "{err:?}"
    );
    assert!(text.contains("the token does not exist"), "{text}");
    assert!(!text.contains("give the token"), "{text}");

    // The failed acquire left no session behind.
    consul_lock_runtime::flush_releases().await;
    let admin = Client::builder()
        .address(server.url())
        .token(secret)
        .build()
        .unwrap();
    assert!(admin.sessions().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_leaderless_period_during_an_acquire_is_waited_out() {
    let env = Env::new("leaderless-short");
    if !env.embedded_or_skip("leaderless-short") {
        return;
    }
    let server = env.consul.server().unwrap();
    server.leaderless_for(Duration::from_millis(300));
    let started = Instant::now();
    let guard = env
        .lock("job")
        .acquire_timeout(Duration::from_secs(3))
        .acquire()
        .await
        .expect("acquired once the leader is back");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
    guard.release().await.unwrap();
}

#[tokio::test]
async fn a_leaderless_period_longer_than_the_timeout_fails_within_the_timeout() {
    let server = TestServer::start_with(
        ServerConfig::default()
            .session_ttl_min(Duration::from_secs(1))
            .leaderless_hold(Duration::from_secs(7)),
    )
    .unwrap();
    let client = Client::builder().address(server.url()).build().unwrap();
    server.set_leaderless(true);
    let started = Instant::now();
    let err = Lock::new("job")
        .client(&client)
        .acquire_timeout(Duration::from_millis(500))
        .acquire()
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(800),
        "bounded by the acquire timeout: {took:?}"
    );
    // Every request was held past the deadline: not acquired in time (Consul may only be
    // slow), not "unreachable", which needs no answer within the client's request timeout.
    assert!(
        matches!(
            err,
            Error::NotAcquired {
                blocked_by: Blocker::Unanswered {
                    operation: "create a session"
                },
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("no leader"), "{err}");
    server.set_leaderless(false);
    consul_lock_runtime::flush_releases().await;
}

#[tokio::test]
async fn transient_server_errors_are_retried_until_the_deadline() {
    let env = Env::new("5xx");
    if !env.embedded_or_skip("5xx") {
        return;
    }
    let server = env.consul.server().unwrap();
    server.fail_next(3, 500, "No cluster leader");
    let guard = env
        .lock("job")
        .acquire_timeout(Duration::from_secs(2))
        .acquire()
        .await
        .expect("retried past three 500s");
    guard.release().await.unwrap();

    // One try: the 500 is the answer, with Consul's text and a hint.
    server.fail_next(1, 500, "No cluster leader");
    let err = env.lock("job").acquire().await.unwrap_err();
    match &err {
        Error::ConsulRefused {
            status: 500,
            message,
            ..
        } => assert_eq!(message, "No cluster leader"),
        other => panic!("expected ConsulRefused, got {other:?}"),
    }
    assert!(err.to_string().contains("no leader"), "{err}");
}

#[tokio::test]
async fn a_waiter_whose_session_was_invalidated_recovers() {
    let env = Env::new("invalid-session");
    if !env.embedded_or_skip("invalid-session") {
        return;
    }
    let server = env.consul.server().unwrap();
    let holder = env.lock("job").acquire().await.unwrap();
    let waiter_client = env.another_client();
    let waiter_lock = env
        .lock("job")
        .client(&waiter_client)
        .acquire_timeout(Duration::from_secs(5));
    let waiter = tokio::spawn(async move { waiter_lock.acquire().await });
    env.until_queued(&env.key("job"), 1).await;
    let waiting_session = env.session_other_than(holder.session_id()).await;
    assert!(server.expire_session(&waiting_session));
    holder.release().await.unwrap();
    let guard = waiter
        .await
        .unwrap()
        .expect("the waiter made a new session and got the lock");
    assert_ne!(guard.session_id(), waiting_session);
    guard.release().await.unwrap();
    assert!(env.my_sessions().await.is_empty());
}

#[tokio::test]
async fn a_release_keeps_going_through_an_election_until_consul_confirms() {
    let env = Env::new("release-5xx");
    if !env.embedded_or_skip("release-5xx") {
        return;
    }
    let server = env.consul.server().unwrap();
    let guard = env.lock("job").acquire().await.unwrap();
    // What Consul answers writes during a leader election, several times over.
    server.fail_next(6, 500, "rpc error making call: EOF");
    guard
        .release()
        .await
        .expect("the release is sent again until Consul confirms it");
    assert!(env.my_keys().await.is_empty(), "the key is free at once");
    assert!(env.my_sessions().await.is_empty());
}

#[tokio::test]
async fn a_release_not_confirmed_in_time_goes_on_in_the_background() {
    let env = Env::new("release-background");
    if !env.embedded_or_skip("release-background") {
        return;
    }
    let server = env.consul.server().unwrap();
    let patience = Duration::from_millis(150);
    let client = Client::builder()
        .address(env.consul.url())
        .session_ttl_min(env.min_ttl())
        .request_timeout(patience)
        .build()
        .unwrap();
    let guard = env
        .lock("job")
        .client(&client)
        .lock_timeout(Duration::from_secs(30))
        .acquire()
        .await
        .unwrap();
    // More failures than fit in the request timeout with the release's backoff
    // (10, 20, 40, 80, 160, 320 ms, each drawn from its upper half or less).
    server.fail_next(7, 500, "rpc error making call: EOF");
    let started = Instant::now();
    // Not an error to the caller: the release returns after the request timeout, and goes
    // on in the background, where it is counted.
    guard
        .release()
        .await
        .expect("a release that goes on is not an error");
    assert!(started.elapsed() < patience + Duration::from_millis(100));
    assert!(
        consul_lock_runtime::pending_releases() >= 1,
        "counted as pending"
    );
    // The rest runs in the background; flush_releases() waits for it.
    consul_lock_runtime::flush_releases().await;
    assert!(env.my_keys().await.is_empty(), "released in the background");
    assert!(env.my_sessions().await.is_empty());
}

#[tokio::test]
async fn a_release_refused_for_good_is_an_error_and_the_ttl_frees_the_key() {
    let env = Env::new("release-403");
    if !env.embedded_or_skip("release-403") {
        return;
    }
    let server = env.consul.server().unwrap();
    let ttl = env.min_ttl();
    let guard = env.lock("job").lock_timeout(ttl).acquire().await.unwrap();
    // Not transient: no retry can help.
    server.fail_next(1, 403, "Permission denied");
    let err = guard.release().await.unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
    let next = env
        .lock("job")
        .lock_timeout(ttl)
        .acquire_timeout(ttl * 3)
        .acquire()
        .await
        .expect("the TTL freed the key");
    next.release().await.unwrap();
}

#[tokio::test]
async fn a_release_answered_5xx_once_is_sent_again() {
    let env = Env::new("release-retry");
    if !env.embedded_or_skip("release-retry") {
        return;
    }
    let server = env.consul.server().unwrap();
    let guard = env.lock("job").acquire().await.unwrap();
    server.fail_next(1, 500, "No cluster leader");
    guard
        .release()
        .await
        .expect("the second attempt released it");
    assert!(env.my_keys().await.is_empty());
    assert!(env.my_sessions().await.is_empty());
}

/// A server that is not Consul (any HTTP server answering 404 with an empty body, as an
/// nginx default site or a wrong port does): the error says that, not a bare `HTTP 404: `.
#[tokio::test]
async fn a_server_that_is_not_consul_is_named_as_such() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                while let Ok(n @ 1..) = conn.read(&mut buf).await {
                    let _ = n;
                    let answer = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
                    if conn.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let client = Client::builder()
        .address(address.to_string())
        .build()
        .unwrap();
    let err = Lock::new("job")
        .client(&client)
        .acquire()
        .await
        .unwrap_err();
    let text = err.to_string();
    eprintln!("{text}");
    assert!(
        matches!(err, Error::ConsulRefused { status: 404, .. }),
        "{err:?}"
    );
    assert!(text.contains("HTTP 404 with an empty body"), "{text}");
    assert!(text.contains("not a Consul agent"), "{text}");
}
