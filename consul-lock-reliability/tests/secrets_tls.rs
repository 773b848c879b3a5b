//! Secrets and TLS: the ACL token never shows in `Debug`, `Display`, errors or anything logged
//! (tracing at TRACE level and `log` records from the HTTP stack, captured from every thread);
//! HTTPS with a custom CA works, and fails clearly without it.

use std::time::{Duration, Instant};

use consul_lock::{Client, Error, Lock};
use consul_lock_reliability::capture::capture;
use consul_lock_reliability::support::{
    assert_clean, server_config, unique_prefix, wait_clean, TEST_TTL_MIN,
};
use consul_lock_testkit::{Access, AclConfig, AclToken, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_token_never_shows_anywhere() {
    // Needs a server with ACLs and fault injection: always the embedded one.
    let logs = capture();
    let secret = format!("s3cr3t-{:032x}", fastrand::u128(..));
    let wrong_secret = format!("wr0ng-{:032x}", fastrand::u128(..));
    let server = TestServer::start_with(
        server_config().acl(
            AclConfig::deny_by_default().token(
                AclToken::new(&secret)
                    .key_prefix("reliability/", Access::Write)
                    .key_prefix("reliability/denied-", Access::Read)
                    .session_prefix("", Access::Write),
            ),
        ),
    )
    .expect("start an ACL server");
    let client = Client::builder()
        .address(server.url())
        .token(&secret)
        .session_ttl_min(TEST_TTL_MIN)
        .build()
        .expect("client");
    let prefix = unique_prefix("secrets");
    let mut shown: Vec<String> = vec![
        format!("{client:?}"),
        format!(
            "{:?}",
            Client::builder().address(server.url()).token(&secret)
        ),
    ];
    let lock = Lock::new("k")
        .client(&client)
        .key_prefix(&prefix)
        .lock_timeout(TEST_TTL_MIN)
        .acquire_timeout(Duration::from_millis(300));
    shown.push(format!("{lock:?}"));

    // Success, with renewals and the key watch running for a while.
    let guard = lock.clone().renew(true).acquire().await.expect("acquire");
    shown.push(format!("{guard:?}"));
    shown.push(format!("{:?}", guard.handle()));
    // Contention: not acquired.
    let err = lock.acquire().await.expect_err("held");
    shown.push(format!("{err} {err:?}"));
    tokio::time::sleep(TEST_TTL_MIN).await;
    assert!(guard.is_held());
    guard.release().await.expect("release");
    // A failed release (a refusal no retry mends), of a lock without renewal, so that no
    // renewal in flight meets the injected answer instead.
    let plain = lock.acquire().await.expect("acquire");
    server.fail_next(1, 403, "injected");
    let err = plain.release().await.expect_err("injected 403");
    shown.push(format!("{err} {err:?}"));
    // Permission denied: the token may only read `reliability/denied-*`.
    let err = Lock::new("k")
        .client(&client)
        .key_prefix(format!("reliability/denied-{:08x}/", fastrand::u32(..)))
        .lock_timeout(TEST_TTL_MIN)
        .acquire()
        .await
        .expect_err("denied");
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
    shown.push(format!("{err} {err:?}"));
    // An unknown token.
    let wrong = Client::builder()
        .address(server.url())
        .token(&wrong_secret)
        .session_ttl_min(TEST_TTL_MIN)
        .build()
        .expect("client");
    let err = Lock::new("k")
        .client(&wrong)
        .key_prefix(&prefix)
        .lock_timeout(TEST_TTL_MIN)
        .acquire()
        .await
        .expect_err("unknown token");
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
    shown.push(format!("{err} {err:?} {wrong:?}"));
    // Unreachable, with the token set.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let nowhere = Client::builder()
        .address(format!("127.0.0.1:{port}"))
        .token(&secret)
        .session_ttl_min(TEST_TTL_MIN)
        .build()
        .expect("client");
    let err = Lock::new("k")
        .client(&nowhere)
        .key_prefix(&prefix)
        .lock_timeout(TEST_TTL_MIN)
        .acquire_timeout(Duration::from_millis(100))
        .acquire()
        .await
        .expect_err("refused");
    shown.push(format!("{err} {err:?}"));
    // The failed release leaves the key to its TTL.
    wait_clean(&client, &prefix, TEST_TTL_MIN * 3).await;
    // A dropped guard whose background release fails.
    let guard = lock
        .acquire()
        .await
        .expect("acquire after the TTL freed the key");
    server.fail_next(1, 403, "injected");
    drop(guard);
    consul_lock::flush_releases().await;
    wait_clean(&client, &prefix, TEST_TTL_MIN * 3).await;

    for text in &shown {
        assert!(!text.contains(&secret), "the token shows in: {text}");
        assert!(
            !text.contains(&wrong_secret),
            "the wrong token shows in: {text}"
        );
    }
    let logged = logs.contents();
    // The capture saw the library's spans and events and the HTTP stack's own logging, so the
    // search below means something.
    for expected in [
        prefix.as_str(),
        "consul_lock.acquire",
        "release failed",
        "session renewed",
        "Permission denied",
        "ACL not found",
    ] {
        assert!(
            logged.contains(expected),
            "the capture lacks {expected:?}; captured {} bytes",
            logged.len()
        );
    }
    assert!(
        !logged.contains(&secret),
        "the token shows in the tracing/log output"
    );
    assert!(
        !logged.contains(&wrong_secret),
        "the wrong token shows in the tracing/log output"
    );
    println!(
        "{} Debug/Display texts and {} bytes ({} lines) of TRACE output searched: no token",
        shown.len(),
        logged.len(),
        logged.lines().count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_custom_ca_works_and_fails_clearly_without_it() {
    let server = TestServer::start_with(server_config().tls(true)).expect("start a TLS server");
    let url = server.url();
    assert!(url.starts_with("https://"), "{url}");
    let ca = server.ca_cert_pem().expect("the server's CA");
    let prefix = unique_prefix("tls");

    let client = Client::builder()
        .address(&url)
        .ca_cert_pem(ca.as_bytes().to_vec())
        .session_ttl_min(TEST_TTL_MIN)
        .build()
        .expect("client with the CA");
    let guard = Lock::new("k")
        .client(&client)
        .key_prefix(&prefix)
        .lock_timeout(TEST_TTL_MIN)
        .renew(true)
        .acquire()
        .await
        .expect("acquire over HTTPS");
    // Renewals over HTTPS keep it.
    tokio::time::sleep(TEST_TTL_MIN * 2).await;
    assert!(guard.is_held(), "{:?}", guard.lost_reason());
    guard.release().await.expect("release over HTTPS");
    assert_clean(&client, &prefix).await;

    let untrusting = Client::builder()
        .address(&url)
        .session_ttl_min(TEST_TTL_MIN)
        .build()
        .expect("client without the CA");
    let timeout = Duration::from_millis(500);
    let start = Instant::now();
    let err = Lock::new("k")
        .client(&untrusting)
        .key_prefix(&prefix)
        .lock_timeout(TEST_TTL_MIN)
        .acquire_timeout(timeout)
        .acquire()
        .await
        .expect_err("the server's certificate is not trusted");
    let took = start.elapsed();
    println!("without the CA, after {took:?}: {err}");
    assert!(
        took <= timeout + Duration::from_millis(250),
        "took {took:?}"
    );
    let text = err.to_string();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(
        text.to_lowercase().contains("certificate"),
        "the error says the certificate is the problem: {text}"
    );
    // Plain HTTP to the HTTPS port fails clearly too.
    let plain = Client::builder()
        .address(url.replacen("https://", "http://", 1))
        .session_ttl_min(TEST_TTL_MIN)
        .build()
        .expect("client");
    let err = Lock::new("k")
        .client(&plain)
        .key_prefix(&prefix)
        .lock_timeout(TEST_TTL_MIN)
        .acquire_timeout(timeout)
        .acquire()
        .await
        .expect_err("plain HTTP to an HTTPS server");
    println!("plain HTTP to the HTTPS port: {err}");
    assert_clean(&client, &prefix).await;
}
