//! The semaphore (Consul's semaphore layout) against the test server, or a real agent with
//! CONSUL_HTTP_ADDR.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Env;
use consul_lock_runtime::{Error, LostReason, Semaphore, SEMAPHORE_FLAGS};

fn sem(env: &Env, key: &str, limit: u32) -> Semaphore {
    Semaphore::new(key, limit)
        .key_prefix(env.prefix.clone())
        .client(&env.client)
}

/// The `.lock` value, decoded.
async fn lock_value(env: &Env, key: &str) -> Option<(serde_json::Value, u64)> {
    let entry = env
        .client
        .kv_get(&format!("{}{key}/.lock", env.prefix))
        .await
        .expect("read .lock")?;
    Some((
        serde_json::from_slice(&entry.value).expect(".lock is JSON"),
        entry.flags,
    ))
}

#[tokio::test]
async fn the_layout_is_consuls_and_release_leaves_no_holder() {
    let env = Env::new("sem-layout");
    let guard = sem(&env, "pool", 3).acquire().await.expect("acquire");
    assert_eq!(
        guard.contender_key(),
        format!("{}pool/{}", env.prefix, guard.session_id())
    );
    let contender = env
        .client
        .kv_get(guard.contender_key())
        .await
        .unwrap()
        .expect("contender key");
    assert_eq!(contender.session.as_deref(), Some(guard.session_id()));
    assert_eq!(contender.flags, SEMAPHORE_FLAGS);
    let (value, flags) = lock_value(&env, "pool").await.expect(".lock exists");
    assert_eq!(flags, SEMAPHORE_FLAGS);
    assert_eq!(value["Limit"], 3);
    assert_eq!(value["Holders"][guard.session_id()], true);
    assert_eq!(value["Holders"].as_object().unwrap().len(), 1);
    guard.release().await.expect("release");
    // The last holder gone, `.lock` goes too (as Go's `Semaphore.Destroy` deletes it): a
    // semaphore nobody holds leaves nothing in Consul.
    assert!(lock_value(&env, "pool").await.is_none(), ".lock is deleted");
    assert!(env.my_sessions().await.is_empty());
    assert!(env.my_keys().await.is_empty());
}

#[tokio::test]
async fn a_holder_leaving_while_another_holds_keeps_the_table() {
    let env = Env::new("sem-leave");
    let first = sem(&env, "pool", 2).acquire().await.expect("acquire");
    let second = sem(&env, "pool", 2).acquire().await.expect("acquire");
    first.release().await.expect("release");
    let (value, _) = lock_value(&env, "pool").await.expect(".lock stays");
    let holders = value["Holders"].as_object().unwrap();
    assert_eq!(holders.len(), 1);
    assert!(holders.contains_key(second.session_id()));
    second.release().await.expect("release");
    assert!(env.my_keys().await.is_empty());
}

#[tokio::test]
async fn never_more_than_n_holders_under_contention() {
    let env = Env::new("sem-contention");
    const LIMIT: u32 = 3;
    const WORKERS: usize = 8;
    const ROUNDS: usize = 4;
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        let sem = sem(&env, "pool", LIMIT)
            .client(env.another_client())
            .acquire_timeout(Duration::from_secs(30));
        let (inside, most) = (inside.clone(), most.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                let guard = sem.acquire().await.expect("acquire");
                let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                guard.release().await.expect("release");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let most = most.load(Ordering::SeqCst);
    eprintln!("at most {most} holders at once (limit {LIMIT}, {WORKERS} workers)");
    assert!(most <= LIMIT as usize, "{most} holders at once");
    assert_eq!(most, LIMIT as usize, "the slots were all used");
    assert!(env.my_sessions().await.is_empty());
}

#[tokio::test]
async fn a_waiter_wakes_when_a_slot_is_given_back() {
    let env = Env::new("sem-wake");
    let first = sem(&env, "pool", 1).acquire().await.unwrap();
    let waiter_client = env.another_client();
    let waiter = sem(&env, "pool", 1)
        .client(&waiter_client)
        .acquire_timeout(Duration::from_secs(20));
    let task = tokio::spawn(async move {
        let guard = waiter.acquire().await;
        (guard, Instant::now())
    });
    // create session, contender key, read (full), then the blocking read is out.
    Env::until_waiting(&waiter_client).await;
    tokio::time::sleep(Duration::from_millis(50)).await; // the blocking query is parked
    let released = Instant::now();
    first.release().await.unwrap();
    let (guard, woke) = task.await.unwrap();
    let guard = guard.expect("the waiter takes the slot");
    let handoff = woke.duration_since(released);
    eprintln!("hand-off {handoff:?}");
    assert!(
        handoff < Duration::from_secs(1),
        "hand-off took {handoff:?}"
    );
    guard.release().await.unwrap();
}

#[tokio::test]
async fn a_dead_holder_is_pruned_after_its_ttl() {
    let env = Env::new("sem-prune");
    let ttl = env.min_ttl();
    let dead = sem(&env, "pool", 1)
        .lock_timeout(ttl)
        .acquire()
        .await
        .unwrap();
    let dead_session = dead.session_id().to_owned();
    let started = Instant::now();
    // A holder that vanished: never gives the slot back, never renews.
    std::mem::forget(dead);
    let next = sem(&env, "pool", 1)
        .lock_timeout(ttl)
        .acquire_timeout(ttl * 3)
        .acquire()
        .await
        .expect("the dead holder is pruned once its session ends");
    let after = started.elapsed();
    eprintln!("pruned after {after:?} (TTL {ttl:?})");
    assert!(after >= ttl, "pruned too early: {after:?}");
    let (value, _) = lock_value(&env, "pool").await.unwrap();
    let holders = value["Holders"].as_object().unwrap();
    assert!(!holders.contains_key(&dead_session));
    assert!(holders.contains_key(next.session_id()));
    next.release().await.unwrap();
}

#[tokio::test]
async fn a_limit_that_disagrees_names_both_numbers() {
    let env = Env::new("sem-mismatch");
    let guard = sem(&env, "pool", 2).acquire().await.unwrap();
    let err = sem(&env, "pool", 5).acquire().await.unwrap_err();
    let text = err.to_string();
    eprintln!("{text}");
    assert!(matches!(
        err,
        Error::InvalidOption {
            option: "limit",
            ..
        }
    ));
    assert!(
        text.contains("limit 2") && text.contains("limit 5"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}pool/.lock", env.prefix)),
        "{text}"
    );
    guard.release().await.unwrap();
    assert!(
        env.my_sessions().await.is_empty(),
        "the refused contender left nothing"
    );
}

#[tokio::test]
async fn a_go_lock_key_is_refused_by_name() {
    let env = Env::new("sem-conflict");
    // What Go's api.Lock (or `consul lock` without -n) leaves at PREFIX/.lock.
    let key = format!("{}pool/.lock", env.prefix);
    let url = format!(
        "{}/v1/kv/{key}?flags={}",
        env.consul.url(),
        0x2ddc_cbc0_58a5_0c18u64
    );
    let status = put(&url).await;
    assert_eq!(status, 200);
    let err = sem(&env, "pool", 2).acquire().await.unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, Error::InvalidKey { .. }));
    assert!(err.to_string().contains("api.Lock"));
    consul_lock_runtime::flush_releases().await;
    assert!(env.my_sessions().await.is_empty());
}

async fn put(url: &str) -> u16 {
    let mut request = reqwest::Client::new().put(url);
    if let Ok(token) = std::env::var("CONSUL_HTTP_TOKEN") {
        request = request.header("X-Consul-Token", token);
    }
    request.send().await.expect("PUT").status().as_u16()
}

#[tokio::test]
async fn fail_soft_gives_none_when_full() {
    let env = Env::new("sem-failsoft");
    let s = sem(&env, "pool", 2).acquire_timeout(Duration::from_millis(300));
    let a = s.acquire().await.unwrap();
    let b = s.acquire().await.unwrap();
    let started = Instant::now();
    assert!(s.try_acquire().await.unwrap().is_none());
    assert!(started.elapsed() >= Duration::from_millis(290));
    let err = s.acquire().await.unwrap_err();
    assert!(matches!(err, Error::NotAcquired { .. }), "{err}");
    assert!(err.to_string().contains(&format!("{}pool", env.prefix)));
    let zero = s.clone().acquire_timeout(Duration::ZERO);
    assert!(zero.try_acquire().await.unwrap().is_none());
    drop(a); // given back in the background
    consul_lock_runtime::flush_releases().await;
    let c = zero
        .try_acquire()
        .await
        .unwrap()
        .expect("a slot is free after the drop");
    b.release().await.unwrap();
    c.release().await.unwrap();
    assert!(env.my_sessions().await.is_empty());
}

#[tokio::test]
async fn a_panicking_holder_gives_its_slot_back() {
    let env = Env::new("sem-panic");
    let s = sem(&env, "pool", 1);
    let held = s.clone();
    let result = tokio::spawn(async move {
        let _guard = held.acquire().await.unwrap();
        panic!("the body panics");
    })
    .await;
    assert!(result.is_err());
    consul_lock_runtime::flush_releases().await;
    // Given back: nobody holds it, so `.lock` is gone.
    assert!(lock_value(&env, "pool").await.is_none());
    let guard = s.acquire_timeout(Duration::ZERO).acquire().await.unwrap();
    guard.release().await.unwrap();
}

#[tokio::test]
async fn renewal_keeps_a_slot_and_loss_is_reported() {
    let env = Env::new("sem-renew");
    let ttl = env.min_ttl();
    let guard = sem(&env, "pool", 2)
        .lock_timeout(ttl)
        .renew(true)
        .acquire()
        .await
        .unwrap();
    let lost = guard.lost();
    tokio::select! {
        reason = lost => panic!("lost while renewed: {reason}"),
        () = tokio::time::sleep(ttl * 2 + ttl / 2) => {}
    }
    assert!(guard.is_held());
    // A release with renewal on is reported as a release, not as the contender key's loss.
    let other = sem(&env, "pool", 2)
        .lock_timeout(ttl)
        .renew(true)
        .acquire()
        .await
        .unwrap();
    let other_lost = other.lost();
    other.release().await.unwrap();
    assert_eq!(other_lost.await, LostReason::Released);
    env.client
        .destroy_session(guard.session_id())
        .await
        .unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(5), guard.lost())
        .await
        .expect("loss reported at once");
    assert_eq!(reason, LostReason::SessionInvalidated);
    assert!(!guard.is_held());
    drop(guard);
}

#[test]
fn the_blocking_api_works() {
    let env = Env::new("sem-blocking");
    let s = sem(&env, "pool", 1).acquire_timeout(Duration::ZERO);
    let guard = s.acquire_blocking().unwrap();
    assert!(s.try_acquire_blocking().unwrap().is_none());
    guard.release_blocking().unwrap();
    s.try_acquire_blocking()
        .unwrap()
        .expect("free again")
        .release_blocking()
        .unwrap();
}
