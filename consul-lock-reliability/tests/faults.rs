//! Consul faults: leaderless periods, restarts that lose state, latency, 5xx answers, dropped
//! and refused connections, forced session expiry. Each test needs the embedded test server's
//! fault injection and returns (saying why) against a real agent, except the connection
//! refused test, which needs no server at all.

use std::time::{Duration, Instant};

use consul_lock::{Blocker, Error, Lock, LostReason};
use consul_lock_reliability::capture::capture;
use consul_lock_reliability::support::{
    assert_clean, client, consul, consul_with, fault_server, fault_server_mut, server_config, ttl,
    unique_prefix, wait_clean, TEST_LEADERLESS_HOLD,
};

/// Slack for scheduling on a loaded 2-core CI machine.
const SLACK: Duration = Duration::from_millis(250);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaderless_period_during_acquire_is_waited_out() {
    let consul = consul();
    let Some(server) = fault_server(&consul, "leaderless_period_during_acquire_is_waited_out")
    else {
        return;
    };
    let client = client(&consul);
    let prefix = unique_prefix("leaderless-acquire");
    let lock = Lock::new("k")
        .client(&client)
        .key_prefix(&prefix)
        .lock_timeout(ttl(&consul))
        .acquire_timeout(Duration::from_secs(3));
    let period = Duration::from_millis(800);
    let start = Instant::now();
    server.leaderless_for(period);
    let guard = lock
        .acquire()
        .await
        .expect("the acquire succeeds once the leader is back, within its timeout");
    let took = start.elapsed();
    println!("acquired {took:?} after the start of an {period:?} leaderless period");
    assert!(
        took >= period - Duration::from_millis(50),
        "acquired during the leaderless period ({took:?})"
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(guard.is_held());
    guard.release().await.expect("release");
    assert_clean(&client, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaderless_for_the_whole_acquire_fails_clearly_at_the_deadline() {
    // Two hold times: the test default (300 ms, shorter than the acquire timeout, so the
    // client sees `500 No cluster leader`) and Consul's own 7 s (the client must give up at
    // its deadline instead of waiting for the held request).
    for hold in [TEST_LEADERLESS_HOLD, Duration::from_secs(7)] {
        let consul = consul_with(server_config().leaderless_hold(hold));
        let Some(server) = fault_server(&consul, "leaderless_for_the_whole_acquire") else {
            return;
        };
        let client = client(&consul);
        let prefix = unique_prefix("leaderless-timeout");
        let timeout = Duration::from_millis(700);
        server.set_leaderless(true);
        let start = Instant::now();
        let err = Lock::new("k")
            .client(&client)
            .key_prefix(&prefix)
            .lock_timeout(ttl(&consul))
            .acquire_timeout(timeout)
            .acquire()
            .await
            .expect_err("no leader for the whole acquire timeout");
        let took = start.elapsed();
        let text = err.to_string();
        println!("leaderless hold {hold:?}: failed after {took:?}: {text}");
        assert!(
            took <= timeout + SLACK,
            "the acquire overran its {timeout:?} deadline: {took:?}"
        );
        match &err {
            Error::ConsulRefused {
                status: 500,
                message,
                ..
            } => assert!(message.contains("No cluster leader"), "{text}"),
            // Every request held past the deadline: not acquired in time, not "unreachable".
            Error::NotAcquired {
                blocked_by: Blocker::Unanswered { .. },
                ..
            } => {}
            other => panic!("unexpected error for a leaderless cluster: {other:?}"),
        }
        assert!(text.contains(&prefix), "the error names the key: {text}");
        // Either way the message points at a missing leader: with the short hold the client
        // saw `500 No cluster leader` and reports that answer (also when its last request was
        // cut by the deadline); with the 7 s hold nothing answered in time, and "not acquired,
        // waiting for Consul's answer" names a missing leader as one cause.
        assert!(text.contains("leader"), "{text}");
        consul_lock::flush_releases().await;
        server.set_leaderless(false);
        // A session create the server held past the client's deadline is carried out when
        // the leader is back (as Consul does). The library keeps waiting for that answer in
        // the background (up to its request timeout) and destroys the session; anything it
        // could not reach is ended by the TTL, so allow up to that.
        let freed = wait_clean(&client, &prefix, ttl(&consul) * 2 + SLACK).await;
        println!("leaderless hold {hold:?}: nothing left {freed:?} after the leader came back");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaderless_during_a_renewed_hold_is_held_through_the_grace_then_reported() {
    let consul = consul();
    let Some(server) = fault_server(&consul, "leaderless_during_a_renewed_hold") else {
        return;
    };
    let client = client(&consul);
    let prefix = unique_prefix("leaderless-hold");
    let ttl = ttl(&consul);
    let guard = Lock::new("k")
        .client(&client)
        .key_prefix(&prefix)
        .lock_timeout(ttl)
        .renew(true)
        .acquire()
        .await
        .expect("acquire");
    // Renewal keeps the lock past its TTL.
    tokio::time::sleep(ttl * 2).await;
    assert!(guard.is_held(), "renewal kept the lock for 2 x TTL");
    // Every successful renewal happened before this point. While Consul has no leader it
    // cannot end the session (and a new leader restarts its timer), so the holder keeps the
    // lock through 2 x TTL less a tenth from its last renewal, and reports the loss then.
    let grace = ttl * 2 - ttl / 10;
    let leaderless_at = Instant::now();
    server.set_leaderless(true);
    let handle = guard.handle();
    let watcher = tokio::spawn(async move {
        // The first moment `is_held()` answers false, sampled every 5 ms.
        loop {
            if !handle.is_held() {
                return leaderless_at.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let reason = tokio::time::timeout(grace + SLACK, guard.lost())
        .await
        .expect("lost() completes within the grace after the last successful renewal");
    let lost_after = leaderless_at.elapsed();
    let not_held_after = watcher.await.expect("watcher");
    println!(
        "leaderless at t=0: lost() at {lost_after:?} ({reason}), is_held() false at {not_held_after:?}, TTL {ttl:?}"
    );
    assert!(
        not_held_after <= grace + Duration::from_millis(30),
        "is_held() was still true {not_held_after:?} after the last renewal (TTL {ttl:?})"
    );
    assert!(
        not_held_after >= ttl,
        "is_held() turned false {not_held_after:?} after the leader was lost, before the TTL \
         although Consul cannot end the session without a leader (TTL {ttl:?})"
    );
    assert!(
        matches!(reason, LostReason::RenewalFailed { .. }),
        "reason: {reason:?}"
    );
    assert_eq!(guard.lost_reason(), Some(reason.clone()));
    // The leader comes back; the lost lock stays lost.
    server.set_leaderless(false);
    for _ in 0..20 {
        assert!(
            !guard.is_held(),
            "is_held() became true again after the loss"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Releasing a lost lock does not panic; the key is gone within the TTL at the latest.
    let _ = guard.release().await;
    wait_clean(&client, &prefix, ttl * 2 + SLACK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_that_loses_state_while_holding_reports_the_loss() {
    let mut consul = consul();
    let client = client(&consul);
    let ttl_min = ttl(&consul);
    let Some(server) = fault_server_mut(&mut consul, "restart_that_loses_state") else {
        return;
    };
    let prefix = unique_prefix("restart-lose");
    let ttl = ttl_min;
    let lock = Lock::new("k")
        .client(&client)
        .key_prefix(&prefix)
        .lock_timeout(ttl)
        .renew(true);
    let guard = lock.acquire().await.expect("acquire");
    let old_token = guard.fencing_token();
    let restarted_at = Instant::now();
    server.restart(false).expect("restart");
    let reason = tokio::time::timeout(ttl + SLACK, guard.lost())
        .await
        .expect("the loss is reported within the TTL");
    println!(
        "restart without state: lost() after {:?}: {reason}",
        restarted_at.elapsed()
    );
    assert!(!guard.is_held());
    assert!(
        matches!(
            reason,
            LostReason::SessionInvalidated | LostReason::KeyTakenOver { .. }
        ),
        "reason: {reason:?}"
    );
    // Someone else can take the key now.
    let other = lock
        .clone()
        .renew(false)
        .acquire_timeout(Duration::from_secs(2))
        .acquire()
        .await
        .expect("the key is free after the restart");
    println!(
        "fencing token before the restart {old_token}, after {}",
        other.fencing_token()
    );
    let _ = guard.release().await;
    other.release().await.expect("release");
    assert_clean(&client, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_that_keeps_state_does_not_lose_a_renewed_lock() {
    let mut consul = consul();
    let client = client(&consul);
    let ttl_min = ttl(&consul);
    let Some(server) = fault_server_mut(&mut consul, "restart_that_keeps_state") else {
        return;
    };
    let prefix = unique_prefix("restart-keep");
    let ttl = ttl_min;
    let guard = Lock::new("k")
        .client(&client)
        .key_prefix(&prefix)
        .lock_timeout(ttl)
        .renew(true)
        .acquire()
        .await
        .expect("acquire");
    server.restart(true).expect("restart");
    tokio::time::sleep(ttl * 2).await;
    assert!(
        guard.is_held(),
        "lost across a restart that kept state: {:?}",
        guard.lost_reason()
    );
    let entry = client
        .kv_get(guard.key())
        .await
        .expect("read")
        .expect("the key is still there");
    assert_eq!(entry.session.as_deref(), Some(guard.session_id()));
    guard.release().await.expect("release");
    assert_clean(&client, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_session_expiry_is_reported_at_once() {
    let consul = consul();
    let Some(server) = fault_server(&consul, "forced_session_expiry") else {
        return;
    };
    let client = client(&consul);
    let prefix = unique_prefix("expire");
    let ttl = ttl(&consul);
    let guard = Lock::new("k")
        .client(&client)
        .key_prefix(&prefix)
        .lock_timeout(Duration::from_secs(30).max(ttl))
        .renew(true)
        .acquire()
        .await
        .expect("acquire");
    let start = Instant::now();
    server.expire_session(guard.session_id());
    let reason = tokio::time::timeout(Duration::from_secs(2), guard.lost())
        .await
        .expect("the key watch reports the loss well before the 30 s TTL");
    println!(
        "session expired: lost() after {:?}: {reason}",
        start.elapsed()
    );
    assert!(!guard.is_held());
    let _ = guard.release().await;
    assert_clean(&client, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_below_the_deadline_slows_but_does_not_break() {
    let consul = consul();
    let Some(server) = fault_server(&consul, "latency_below_the_deadline") else {
        return;
    };
    let client = client(&consul);
    let prefix = unique_prefix("latency");
    let ttl = ttl(&consul);
    let latency = ttl * 3 / 10;
    server.set_latency(latency);
    let start = Instant::now();
    let guard = Lock::new("k")
        .client(&client)
        .key_prefix(&prefix)
        .lock_timeout(ttl)
        .renew(true)
        .acquire_timeout(Duration::from_secs(3))
        .acquire()
        .await
        .expect("acquire under latency");
    let took = start.elapsed();
    // A session create and a txn, each delayed.
    assert!(took >= latency * 2, "took {took:?}");
    // Renewals at TTL/2 that take 0.3 x TTL still keep the lock.
    tokio::time::sleep(ttl * 3).await;
    assert!(
        guard.is_held(),
        "lost under {latency:?} latency: {:?}",
        guard.lost_reason()
    );
    guard.release().await.expect("release under latency");
    server.set_latency(Duration::ZERO);
    assert_clean(&client, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_above_the_deadline_fails_clearly_in_time() {
    let consul = consul();
    let Some(server) = fault_server(&consul, "latency_above_the_deadline") else {
        return;
    };
    let client = client(&consul);
    let prefix = unique_prefix("latency-timeout");
    server.set_latency(Duration::from_secs(2));
    let timeout = Duration::from_millis(400);
    let start = Instant::now();
    let err = Lock::new("k")
        .client(&client)
        .key_prefix(&prefix)
        .lock_timeout(ttl(&consul))
        .acquire_timeout(timeout)
        .acquire()
        .await
        .expect_err("every answer comes after the deadline");
    let took = start.elapsed();
    println!("failed after {took:?}: {err}");
    assert!(took <= timeout + SLACK, "took {took:?}");
    assert!(
        matches!(
            &err,
            Error::NotAcquired {
                blocked_by: Blocker::Unanswered {
                    operation: "create a session"
                },
                ..
            }
        ),
        "{err:?}"
    );
    server.set_latency(Duration::ZERO);
    // A session the server created after the client gave up is destroyed by the cleanup of
    // the cancelled acquire, or ends with its TTL.
    wait_clean(&client, &prefix, ttl(&consul) * 2 + SLACK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_fails_clearly_in_time() {
    let consul = consul();
    let Some(server) = fault_server(&consul, "a_stalled_server") else {
        return;
    };
    let client = client(&consul);
    let prefix = unique_prefix("stalled");
    server.set_stalled(true);
    let timeout = Duration::from_millis(400);
    let start = Instant::now();
    let err = Lock::new("k")
        .client(&client)
        .key_prefix(&prefix)
        .lock_timeout(ttl(&consul))
        .acquire_timeout(timeout)
        .acquire()
        .await
        .expect_err("a stalled server never answers");
    let took = start.elapsed();
    println!("failed after {took:?}: {err}");
    assert!(took <= timeout + SLACK, "took {took:?}");
    assert!(
        matches!(
            err,
            Error::NotAcquired {
                blocked_by: Blocker::Unanswered { .. },
                ..
            }
        ),
        "{err:?}"
    );
    consul_lock::flush_releases().await;
    server.set_stalled(false);
    // The held session create is answered once the server runs again; the library, still
    // waiting for it in the background, destroys the session. Allow up to the TTL for what
    // it could not reach.
    let freed = wait_clean(&client, &prefix, ttl(&consul) * 2 + SLACK).await;
    println!("stalled: what the server did after the client gave up was gone {freed:?} later");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_are_retried_and_do_not_lose_a_held_lock() {
    let consul = consul();
    let Some(server) = fault_server(&consul, "dropped_connections") else {
        return;
    };
    let client = client(&consul);
    let prefix = unique_prefix("dropped");
    let ttl = ttl(&consul);
    server.drop_next(3);
    let guard = Lock::new("k")
        .client(&client)
        .key_prefix(&prefix)
        .lock_timeout(ttl)
        .renew(true)
        .acquire_timeout(Duration::from_secs(3))
        .acquire()
        .await
        .expect("the acquire retries dropped requests");
    // Cut every open connection a few times while the lock is held and renewed.
    for _ in 0..4 {
        server.drop_connections();
        tokio::time::sleep(ttl / 2).await;
    }
    assert!(
        guard.is_held(),
        "lost after dropped connections: {:?}",
        guard.lost_reason()
    );
    guard.release().await.expect("release");
    assert_clean(&client, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_on_release_is_sent_again_and_a_refusal_is_reported() {
    let consul = consul();
    let Some(server) = fault_server(&consul, "a_5xx_on_release") else {
        return;
    };
    let logs = capture();
    let client = client(&consul);
    let prefix = unique_prefix("release-5xx");
    let ttl = ttl(&consul);
    let lock = Lock::new("k")
        .client(&client)
        .key_prefix(&prefix)
        .lock_timeout(ttl)
        .acquire_timeout(Duration::from_secs(5));

    // An explicit release answered 500 several times (an election): sent again until
    // Consul confirms it, so the key is free at once, not after the TTL.
    let guard = lock.acquire().await.expect("acquire");
    let offset = logs.len();
    server.fail_next(4, 500, "injected release failure");
    guard.release().await.expect("released after the retries");
    assert_clean(&client, &prefix).await;
    let logged = logs.since(offset);
    assert!(
        logged.contains("retrying") && logged.contains("injected release failure"),
        "the retries are in the tracing output: {logged}"
    );

    // A dropped guard whose background release meets 503s: flush_releases() waits until it
    // went through.
    let guard = lock.acquire().await.expect("acquire again");
    server.fail_next(4, 503, "injected background release failure");
    drop(guard);
    consul_lock::flush_releases().await;
    assert_clean(&client, &prefix).await;

    // A refusal no retry can mend (403): the error comes back, is logged, and the TTL frees
    // the key.
    let guard = lock.acquire().await.expect("acquire a third time");
    let offset = logs.len();
    server.fail_next(1, 403, "injected refusal");
    let err = guard.release().await.expect_err("the release was refused");
    println!("release error: {err}");
    assert!(
        matches!(&err, Error::PermissionDenied { message, .. } if message.contains("injected refusal")),
        "{err:?}"
    );
    let logged = logs.since(offset);
    assert!(
        logged.contains("release failed") && logged.contains("injected refusal"),
        "the failed release is in the tracing output: {logged}"
    );
    let freed = wait_clean(&client, &prefix, ttl * 2 + SLACK).await;
    println!("freed by the TTL {freed:?} after the refused release (TTL {ttl:?})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_refused_fails_clearly_within_the_timeout() {
    // A port nobody listens on: bind, note the port, close.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let client = consul_lock::Client::builder()
        .address(format!("127.0.0.1:{port}"))
        .session_ttl_min(Duration::from_secs(1))
        .build()
        .expect("client");
    for timeout in [Duration::ZERO, Duration::from_millis(500)] {
        let start = Instant::now();
        let err = Lock::new("k")
            .client(&client)
            .key_prefix(unique_prefix("refused"))
            .lock_timeout(Duration::from_secs(10))
            .acquire_timeout(timeout)
            .acquire()
            .await
            .expect_err("nothing listens there");
        let took = start.elapsed();
        println!("acquire timeout {timeout:?}: failed after {took:?}: {err}");
        assert!(took <= timeout + SLACK, "took {took:?}");
        let text = err.to_string();
        assert!(
            matches!(&err, Error::Unreachable { .. })
                && text.contains(&format!("127.0.0.1:{port}"))
                && text.to_lowercase().contains("connect"),
            "{text}"
        );
    }
}
