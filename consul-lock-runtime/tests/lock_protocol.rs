//! The lock protocol against the test server (or a real agent with CONSUL_HTTP_ADDR).

mod common;

use std::time::{Duration, Instant};

use common::{Env, Queued};
use consul_lock_runtime::{Blocker, Client, Error, Lock, LostReason};

#[tokio::test]
async fn uncontended_cycle_takes_three_requests_and_leaves_nothing() {
    let env = Env::new("cycle");
    let lock = env.lock("job");
    let before = env.client.requests_sent();
    let guard = lock.acquire().await.expect("acquire");
    let after_acquire = env.client.requests_sent();
    assert_eq!(guard.key(), format!("{}job", env.prefix));
    assert!(guard.is_held());
    assert!(guard.fencing_token() > 0);
    let entry = env
        .client
        .kv_get(guard.key())
        .await
        .unwrap()
        .expect("key exists while held");
    assert_eq!(entry.session.as_deref(), Some(guard.session_id()));
    assert_eq!(entry.modify_index, guard.fencing_token());
    let value: serde_json::Value = serde_json::from_slice(&entry.value).expect("value is JSON");
    assert!(
        value["locked_at"].is_string() && value["host"].is_string() && value["pid"].is_number()
    );
    guard.release().await.expect("release");
    // An uncontended cycle is 3 requests: create session + txn lock, then destroy session
    // (the kv_get above is the test's own).
    assert_eq!(after_acquire - before, 2);
    assert_eq!(env.client.requests_sent() - before, 2 + 1 + 1);
    assert!(
        env.my_keys().await.is_empty(),
        "the key is deleted on release"
    );
    assert!(
        env.my_sessions().await.is_empty(),
        "the session is destroyed on release"
    );
}

#[tokio::test]
async fn contention_with_timeout_zero_fails_at_once() {
    let env = Env::new("contended0");
    let holder = env.lock("job").acquire().await.unwrap();
    // Another client, as another process (this task asking again through the same client
    // would be refused as re-entry).
    let other = env.another_client();
    let started = Instant::now();
    let err = env.lock("job").client(&other).acquire().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    match &err {
        Error::NotAcquired { key, attempts, .. } => {
            assert_eq!(key, holder.key());
            assert_eq!(*attempts, 1);
        }
        other => panic!("expected NotAcquired, got {other:?}"),
    }
    assert!(
        err.to_string().contains(holder.key()),
        "the error names the key: {err}"
    );
    assert!(
        env.lock("job")
            .client(&other)
            .try_acquire()
            .await
            .unwrap()
            .is_none(),
        "fail-soft form gives None"
    );
    holder.release().await.unwrap();
    assert_eq!(
        env.my_sessions().await,
        Vec::<String>::new(),
        "the losers' sessions are destroyed"
    );
}

#[tokio::test]
async fn contention_with_a_wait_times_out_after_the_wait() {
    let env = Env::new("contended-wait");
    let holder = env.lock("job").acquire().await.unwrap();
    let started = Instant::now();
    let other = env.another_client();
    let err = env
        .lock("job")
        .client(&other)
        .acquire_timeout(Duration::from_millis(400))
        .acquire()
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(err, Error::NotAcquired { .. }), "{err:?}");
    assert!(
        waited >= Duration::from_millis(390),
        "gave up early: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(900),
        "overshot the deadline: {waited:?}"
    );
    holder.release().await.unwrap();
    assert!(env.my_sessions().await.is_empty());
}

#[tokio::test]
async fn waiter_wakes_within_milliseconds_of_the_release() {
    let env = Env::new("wake");
    let holder = env.lock("job").acquire().await.unwrap();
    let waiter_client = env.another_client();
    let waiter_lock = env
        .lock("job")
        .client(&waiter_client)
        .acquire_timeout(Duration::from_secs(10));
    let waiter = tokio::spawn(async move {
        let guard = waiter_lock.acquire().await;
        (guard, Instant::now())
    });
    Env::until_waiting(&waiter_client).await;
    let released_at = Instant::now();
    holder.release().await.unwrap();
    let (guard, acquired_at) = waiter.await.unwrap();
    let guard = guard.expect("the waiter gets the lock");
    let latency = acquired_at.duration_since(released_at);
    eprintln!("wake-up latency (release sent -> waiter holds the lock): {latency:?}");
    assert!(
        latency < Duration::from_millis(100),
        "woke after {latency:?}"
    );
    guard.release().await.unwrap();
}

#[tokio::test]
async fn dropping_the_guard_releases_the_lock() {
    let env = Env::new("drop");
    let guard = env.lock("job").acquire().await.unwrap();
    drop(guard);
    consul_lock_runtime::flush_releases().await;
    let again = env.lock("job").acquire().await.expect("free after drop");
    again.release().await.unwrap();
    assert!(env.my_sessions().await.is_empty());
}

#[tokio::test]
async fn a_panicking_body_releases_the_lock() {
    let env = Env::new("panic");
    let lock = env.lock("job");
    let body_lock = lock.clone();
    let result = std::thread::spawn(move || {
        body_lock.hold_blocking(|_| {
            panic!("the body failed");
        })
    })
    .join();
    assert!(result.is_err(), "the panic propagates to the caller");
    consul_lock_runtime::flush_releases().await;
    let again = lock.acquire().await.expect("free after the panic");
    again.release().await.unwrap();
}

#[tokio::test]
async fn an_acquire_cancelled_mid_wait_leaves_no_session() {
    let env = Env::new("cancel");
    let holder = env.lock("job").acquire().await.unwrap();
    let other = env.another_client();
    let waiter = env
        .lock("job")
        .client(&other)
        .acquire_timeout(Duration::from_secs(30));
    let outcome = tokio::time::timeout(Duration::from_millis(300), waiter.acquire()).await;
    assert!(
        outcome.is_err(),
        "the acquire was still waiting when cancelled"
    );
    assert_eq!(
        env.my_sessions().await,
        vec![holder.session_id().to_owned()]
    );
    holder.release().await.unwrap();
    assert!(env.my_sessions().await.is_empty());
    assert!(env.my_keys().await.is_empty());
}

#[tokio::test]
async fn a_holder_that_never_releases_loses_the_key_after_the_ttl() {
    let env = Env::new("ttl");
    let ttl = env.min_ttl();
    // Before the acquire: the lease counts from the send time of the session create, which
    // comes after this (an instant taken after the acquire returns may be later than it).
    let started = Instant::now();
    let guard = env.lock("job").lock_timeout(ttl).acquire().await.unwrap();
    let acquired = Instant::now();
    let handle = guard.handle();
    // Simulate a holder that vanished: never release, never renew.
    std::mem::forget(guard);
    let reason = handle.lost().await;
    assert_eq!(reason, LostReason::Expired);
    assert!(started.elapsed() >= ttl, "lost before the TTL ran out");
    assert!(!handle.is_held(), "never claims held after the TTL");
    // Another client: this task still has the (forgotten) guard, so asking again through the
    // same client would be refused as re-entry.
    let other = env.another_client();
    let next = env
        .lock("job")
        .client(&other)
        .lock_timeout(ttl)
        .acquire_timeout(ttl * 3)
        .acquire()
        .await
        .expect("Consul frees the key between TTL and 2 x TTL");
    // Consul's timer starts when it applies the create: after `started`, before `acquired`.
    let (freed_after, at_most) = (started.elapsed(), acquired.elapsed());
    assert!(freed_after >= ttl, "freed too early: {freed_after:?}");
    assert!(
        at_most <= ttl * 2 + Duration::from_millis(500),
        "freed too late: {at_most:?}"
    );
    assert!(next.fencing_token() > handle.fencing_token());
    next.release().await.unwrap();
}

#[tokio::test]
async fn renewal_keeps_a_lock_past_its_ttl() {
    let env = Env::new("renew");
    let ttl = env.min_ttl();
    let guard = env
        .lock("job")
        .lock_timeout(ttl)
        .renew(true)
        .acquire()
        .await
        .unwrap();
    // Let three TTLs pass: without renewal Consul would have freed the key.
    tokio::time::sleep(ttl * 3).await;
    assert!(guard.is_held());
    assert!(
        env.lock("job")
            .client(env.another_client())
            .try_acquire()
            .await
            .unwrap()
            .is_none(),
        "nobody else can take a renewed lock"
    );
    let entry = env
        .client
        .kv_get(guard.key())
        .await
        .unwrap()
        .expect("key still there");
    assert_eq!(entry.session.as_deref(), Some(guard.session_id()));
    guard.release().await.unwrap();
}

#[tokio::test]
async fn loss_is_reported_when_the_session_is_destroyed_from_outside() {
    let env = Env::new("lost");
    let guard = env.lock("job").renew(true).acquire().await.unwrap();
    let lost = guard.lost();
    env.client
        .destroy_session(guard.session_id())
        .await
        .unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(5), lost)
        .await
        .expect("loss reported within 5 s");
    assert!(
        matches!(
            reason,
            LostReason::SessionInvalidated | LostReason::KeyTakenOver { .. }
        ),
        "{reason:?}"
    );
    assert!(!guard.is_held());
    assert!(guard.lost_reason().is_some());
}

#[tokio::test]
async fn fencing_tokens_strictly_increase_across_holders() {
    let env = Env::new("fencing");
    let mut last = 0;
    for i in 0..10 {
        // Alternate between two keys: tokens grow across keys and across deletes.
        let guard = env
            .lock(if i % 2 == 0 { "a" } else { "b" })
            .acquire()
            .await
            .unwrap();
        assert!(
            guard.fencing_token() > last,
            "token {} after {last}",
            guard.fencing_token()
        );
        last = guard.fencing_token();
        guard.release().await.unwrap();
    }
}

#[tokio::test]
async fn out_of_range_lock_timeout_is_rejected_before_any_request() {
    let client = Client::builder().address("127.0.0.1:1").build().unwrap();
    for ttl in [
        Duration::from_secs(5),
        Duration::from_secs(86_401),
        Duration::ZERO,
    ] {
        let err = Lock::new("job")
            .client(&client)
            .lock_timeout(ttl)
            .acquire()
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidOption {
                    option: "lock_timeout",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("10..=86400"), "{err}");
    }
    let err = Lock::new("a//b")
        .client(&client)
        .acquire()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidKey { .. }), "{err:?}");
    let err = Lock::new("big")
        .client(&client)
        .value_generator(|_| "x".repeat(512 * 1024 + 1))
        .acquire()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidOption {
                option: "value_generator",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(client.requests_sent(), 0);
}

#[tokio::test]
async fn connection_refused_is_a_clear_error_within_the_timeout() {
    // Port 1 on loopback: nothing listens there.
    let client = Client::builder().address("127.0.0.1:1").build().unwrap();
    let started = Instant::now();
    let err = Lock::new("job")
        .client(&client)
        .acquire_timeout(Duration::from_millis(300))
        .acquire()
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    assert!(err.to_string().contains("locks/ephemeral/job"), "{err}");
}

#[test]
fn blocking_api_works_from_inside_a_tokio_runtime() {
    let env = Env::new("sync-in-async");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let lock = env.lock("job");
    let other = lock.clone().client(env.another_client());
    rt.block_on(async move {
        // A sync function called from async code, on the runtime's own thread.
        let guard = lock
            .acquire_blocking()
            .expect("acquire_blocking inside tokio");
        assert!(other.try_acquire_blocking().unwrap().is_none());
        guard
            .release_blocking()
            .expect("release_blocking inside tokio");
        let out = lock.hold_blocking(|h| h.fencing_token()).unwrap();
        assert!(out > 0);
    });
}

#[test]
fn blocking_api_works_without_a_runtime() {
    let env = Env::new("sync");
    let lock = env.lock("job");
    let token = lock.hold_blocking(|h| {
        assert!(h.is_held());
        h.fencing_token()
    });
    assert!(token.unwrap() > 0);
    assert!(lock.try_hold_blocking(|_| ()).unwrap().is_some());
}

#[test]
fn async_api_works_on_a_non_tokio_executor() {
    let env = Env::new("other-executor");
    let lock = env.lock("job");
    let other = lock.clone().client(env.another_client());
    // No tokio runtime on this thread: the work runs on the library's worker.
    futures::executor::block_on(async {
        let guard = lock.acquire().await.expect("acquire");
        assert!(other.try_acquire().await.unwrap().is_none());
        let lost = guard.lost();
        guard.release().await.expect("release");
        assert_eq!(lost.await, LostReason::Released);
        consul_lock_runtime::flush_releases().await;
    });
}

#[tokio::test]
async fn a_guard_without_renewal_reports_expiry_through_lost() {
    let env = Env::new("expiry-lost");
    let ttl = env.min_ttl();
    let guard = env.lock("job").lock_timeout(ttl).acquire().await.unwrap();
    let started = Instant::now();
    assert_eq!(guard.lost().await, LostReason::Expired);
    assert!(started.elapsed() <= ttl + Duration::from_millis(200));
    assert!(!guard.is_held());
    // Releasing an expired lock is still fine (the session may still exist).
    guard.release().await.unwrap();
}

#[tokio::test]
async fn waiters_get_the_lock_in_the_order_they_queued() {
    let env = Env::new("fifo");
    let holder = env.lock("job").acquire().await.unwrap();
    let queued = env.queue_waiters("job", 4, Duration::from_secs(10)).await;
    holder.release().await.unwrap();
    for w in queued.tasks {
        w.await.unwrap();
    }
    assert_eq!(*queued.order.lock().unwrap(), vec![0, 1, 2, 3]);
    assert!(
        env.my_keys().await.is_empty(),
        "the queue entries went with their sessions"
    );
    assert!(env.my_sessions().await.is_empty());
}

#[tokio::test]
async fn a_releaser_taking_the_key_again_at_once_is_served_after_the_queued_waiter() {
    let env = Env::new("no-barging");
    for round in 0..5 {
        let holder = env.lock("job").acquire().await.unwrap();
        let waiter_client = env.another_client();
        let waiter_lock = env
            .lock("job")
            .client(&waiter_client)
            .acquire_timeout(Duration::from_secs(10));
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let waiter_order = order.clone();
        let waiter = tokio::spawn(async move {
            let guard = waiter_lock.acquire().await.expect("the waiter's turn");
            waiter_order.lock().unwrap().push("waiter");
            guard.release().await.unwrap();
        });
        Env::until_waiting(&waiter_client).await;
        holder.release().await.unwrap();
        // The same client, at once: it must not overtake the queued waiter.
        let again = env
            .lock("job")
            .acquire_timeout(Duration::from_secs(10))
            .acquire()
            .await
            .unwrap();
        order.lock().unwrap().push("releaser");
        again.release().await.unwrap();
        waiter.await.unwrap();
        assert_eq!(
            *order.lock().unwrap(),
            vec!["waiter", "releaser"],
            "round {round}"
        );
    }
}

/// A key left under another client's lock-delay (Go's `api.Lock` sessions default to 15 s)
/// is free but refused: the error says so instead of "held by another session", and the lock
/// is taken once the delay ends.
#[tokio::test]
async fn a_lock_delay_is_reported_as_a_lock_delay() {
    let env = Env::new("lock-delay");
    let key = format!("{}job", env.prefix);
    let http = reqwest::Client::new();
    let base = env.consul.url();
    let created: serde_json::Value = http
        .put(format!("{base}/v1/session/create"))
        .body(r#"{"Name": "foreign holder", "LockDelay": "2s", "TTL": "30s"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let foreign = created["ID"].as_str().unwrap().to_owned();
    let acquired = http
        .put(format!("{base}/v1/kv/{key}?acquire={foreign}"))
        .body("held by another client")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(acquired.trim(), "true");
    // Destroying a holding session starts its lock-delay (a plain ?release would not).
    http.put(format!("{base}/v1/session/destroy/{foreign}"))
        .send()
        .await
        .unwrap();
    let delay_started = Instant::now();
    let err = env
        .lock("job")
        .acquire_timeout(Duration::from_millis(300))
        .acquire()
        .await
        .unwrap_err();
    match &err {
        Error::NotAcquired { blocked_by, .. } => assert_eq!(*blocked_by, Blocker::LockDelay),
        other => panic!("expected NotAcquired, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("lock-delay") && !text.contains("held by another session"),
        "{text}"
    );
    let guard = env
        .lock("job")
        .acquire_timeout(Duration::from_secs(5))
        .acquire()
        .await
        .expect("taken once the lock-delay ends");
    assert!(delay_started.elapsed() >= Duration::from_millis(1900));
    // Our session (Behavior=delete) now holds the key: releasing removes it.
    guard.release().await.unwrap();
    assert!(env.client.kv_get(&key).await.unwrap().is_none());
}

/// The herd-free hand-off: every waiter blocks on one key only (its predecessor's queue entry,
/// or the lock key once it is first), so joins, leaves and releases wake at most one waiter.
/// Each waiter has its own client, so its requests are counted exactly: the first waiter sends
/// create, lock (held), join, block on the key, lock, release (6); every later one create,
/// lock (held), join, block on its predecessor, read the queue, block on the key (skipped
/// when its predecessor has released already), lock, release (7 or 8), however many join
/// after it. With the earlier protocol (one blocking query per waiter on the key as a
/// prefix) every join woke every queued waiter into another read, so the counts while queued
/// grew with each join.
#[tokio::test]
async fn a_join_or_a_release_wakes_one_waiter_only() {
    const WAITERS: usize = 8;
    let env = Env::new("herd");
    let holder = env.lock("job").acquire().await.unwrap();
    let Queued {
        tasks: waiters,
        order,
        clients,
    } = env
        .queue_waiters("job", WAITERS, Duration::from_secs(20))
        .await;
    // Every waiter has sent exactly its 4 requests: the joins after it woke nobody.
    let sent: Vec<u64> = clients.iter().map(|c| c.requests_sent()).collect();
    assert_eq!(sent, vec![4; WAITERS], "requests per waiter while queued");
    holder.release().await.unwrap();
    for w in waiters {
        w.await.unwrap();
    }
    assert_eq!(
        *order.lock().unwrap(),
        (0..WAITERS).collect::<Vec<_>>(),
        "served in the order they queued"
    );
    let sent: Vec<u64> = clients.iter().map(|c| c.requests_sent()).collect();
    assert_eq!(sent[0], 6, "the first waiter's requests: {sent:?}");
    assert!(
        sent[1..].iter().all(|n| (7..=8).contains(n)),
        "every later waiter's requests: {sent:?}"
    );
    assert!(env.my_keys().await.is_empty());
    assert!(env.my_sessions().await.is_empty());
}

/// A holder without renewal that waits on `lost()` hears of a release forced from outside
/// (`consul-lock release --force` destroys its session) at once, not at its lock timeout: the
/// first `lost()` starts a watch of the key.
#[tokio::test]
async fn a_forced_release_reaches_a_holder_without_renewal_that_waits_on_lost() {
    let env = Env::new("forced");
    let guard = env
        .lock("job")
        .lock_timeout(Duration::from_secs(60))
        .acquire()
        .await
        .unwrap();
    let lost = guard.lost();
    // The watch is started by `lost()`; it has sent its blocking query once the client has
    // made 3 requests (create the session, lock, the watch's read). (A destroy before that
    // read would be seen by the read itself.)
    while env.client.requests_sent() < 3 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let operator = env.another_client();
    let forced = Instant::now();
    operator.destroy_session(guard.session_id()).await.unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(5), lost)
        .await
        .expect("reported long before the 60 s lock timeout");
    // The watch finds the key gone and its session with it: a destroyed session.
    assert_eq!(reason, LostReason::SessionInvalidated);
    assert!(!guard.is_held());
    eprintln!("forced release reported after {:?}", forced.elapsed());
}
