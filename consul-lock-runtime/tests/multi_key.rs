//! Locks on several keys at once, against the test server (or a real agent with
//! CONSUL_HTTP_ADDR): all or none in one transaction, waits, no deadlock, tokens, limits.

mod common;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Env;
use consul_lock_runtime::{Client, Error, Lock, LostReason, MultiLock, MAX_KEYS};

fn multi(env: &Env, client: &Client, keys: &[&str]) -> MultiLock {
    MultiLock::new(keys.iter().copied())
        .key_prefix(env.prefix.clone())
        .client(client)
}

#[tokio::test]
async fn all_keys_are_taken_in_one_transaction_and_released_together() {
    let env = Env::new("multi-cycle");
    let locker = env.another_client();
    let guard = multi(&env, &locker, &["a", "b", "c"])
        .acquire()
        .await
        .expect("acquire");
    // One session create and one transaction.
    assert_eq!(locker.requests_sent(), 2);
    let full: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|k| format!("{}{k}", env.prefix))
        .collect();
    assert_eq!(guard.keys(), full);
    for (key, token) in guard.fencing_tokens() {
        let entry = env.client.kv_get(key).await.unwrap().expect("held");
        assert_eq!(entry.session.as_deref(), Some(guard.session_id()), "{key}");
        assert_eq!(entry.modify_index, *token, "the token of {key}");
        assert_eq!(guard.fencing_token(key), Some(*token));
    }
    assert!(guard.is_held());
    guard.release().await.expect("release");
    assert_eq!(locker.requests_sent(), 3, "one destroy releases every key");
    assert!(env.my_keys().await.is_empty(), "every key is deleted");
    assert!(
        env.my_sessions().await.is_empty(),
        "the session is destroyed"
    );
}

#[tokio::test]
async fn none_is_taken_while_one_is_held() {
    let env = Env::new("multi-none");
    let holder = env.lock("b").acquire().await.expect("plain lock on b");
    let set = multi(&env, &env.client, &["a", "b", "c"]);
    assert!(set.try_acquire().await.unwrap().is_none());
    let err = set.acquire().await.unwrap_err();
    match &err {
        Error::NotAcquired { key, attempts, .. } => {
            assert_eq!(
                key,
                &format!("{p}a, {p}b, {p}c", p = env.prefix),
                "the error names every key"
            );
            assert_eq!(*attempts, 1);
        }
        other => panic!("expected NotAcquired, got {other:?}"),
    }
    // Nothing but the plain lock's key was written.
    assert_eq!(env.my_keys().await, [holder.key().to_owned()]);
    holder.release().await.unwrap();
    let sessions = env.my_sessions().await;
    assert!(
        sessions.is_empty(),
        "failed acquires leave no session: {sessions:?}"
    );
}

#[tokio::test]
async fn waits_with_blocking_queries_for_a_key_held_by_a_plain_lock() {
    let env = Env::new("multi-wait");
    let holder = env.lock("b").acquire().await.expect("plain lock on b");
    let waiter_client = env.another_client();
    let set = multi(&env, &waiter_client, &["a", "b"]).acquire_timeout(Duration::from_secs(20));
    let waiter = tokio::spawn(async move { set.acquire().await });
    // Create session, transaction (b held), read b, blocking read of b.
    Env::until_waiting(&waiter_client).await;
    // While it waits it sends nothing more (no polling), and holds nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        waiter_client.requests_sent(),
        4,
        "waiting is one blocking query"
    );
    assert_eq!(env.my_keys().await, [holder.key().to_owned()]);
    let released = Instant::now();
    holder.release().await.unwrap();
    let guard = waiter.await.unwrap().expect("acquired once b was free");
    let handoff = released.elapsed();
    assert!(
        handoff < Duration::from_secs(1),
        "hand-off took {handoff:?}"
    );
    eprintln!("multi-key hand-off after a plain release: {handoff:?}");
    assert_eq!(guard.keys().len(), 2);
    guard.release().await.unwrap();
    assert!(env.my_keys().await.is_empty());
}

/// Per-key occupancy: each key's counter is 0 or 1 whenever someone holds it.
struct Occupancy {
    keys: Vec<String>,
    inside: Vec<AtomicU32>,
    overlaps: AtomicU64,
}

impl Occupancy {
    fn enter(&self, keys: &[&str]) {
        for key in keys {
            let i = self.keys.iter().position(|k| k == key).unwrap();
            if self.inside[i].fetch_add(1, Ordering::SeqCst) != 0 {
                self.overlaps.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    fn leave(&self, keys: &[&str]) {
        for key in keys {
            let i = self.keys.iter().position(|k| k == key).unwrap();
            self.inside[i].fetch_sub(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opposite_order_callers_never_deadlock_and_never_overlap() {
    const ROUNDS: usize = 25;
    let env = Arc::new(Env::new("multi-order"));
    let occupancy = Arc::new(Occupancy {
        keys: vec!["a".into(), "b".into()],
        inside: vec![AtomicU32::new(0), AtomicU32::new(0)],
        overlaps: AtomicU64::new(0),
    });
    let started = Instant::now();
    let mut tasks = Vec::new();
    // Two callers lock a then b, two lock b then a, one locks only a with a plain lock.
    for order in [["a", "b"], ["b", "a"], ["a", "b"], ["b", "a"]] {
        let (env, occupancy) = (env.clone(), occupancy.clone());
        tasks.push(tokio::spawn(async move {
            let client = env.another_client();
            let set = multi(&env, &client, &order).acquire_timeout(Duration::from_secs(30));
            for _ in 0..ROUNDS {
                let guard = set.acquire().await.expect("no deadlock: acquired in time");
                occupancy.enter(&order);
                tokio::time::sleep(Duration::from_millis(2)).await; // the work under the lock
                occupancy.leave(&order);
                guard.release().await.expect("release");
            }
        }));
    }
    {
        let (env, occupancy) = (env.clone(), occupancy.clone());
        tasks.push(tokio::spawn(async move {
            let lock = env.lock("a").acquire_timeout(Duration::from_secs(30));
            for _ in 0..ROUNDS {
                let guard = lock.acquire().await.expect("plain lock acquired in time");
                occupancy.enter(&["a"]);
                tokio::time::sleep(Duration::from_millis(2)).await;
                occupancy.leave(&["a"]);
                guard.release().await.expect("release");
            }
        }));
    }
    for task in tasks {
        task.await.expect("caller finished");
    }
    eprintln!(
        "{} multi-key and {ROUNDS} plain acquisitions in {:?}",
        4 * ROUNDS,
        started.elapsed()
    );
    assert_eq!(
        occupancy.overlaps.load(Ordering::SeqCst),
        0,
        "two holders of one key"
    );
    assert!(env.my_keys().await.is_empty());
    assert!(env.my_sessions().await.is_empty());
}

#[tokio::test]
async fn sixty_four_keys_are_taken_and_sixty_five_refused_before_any_request() {
    let env = Env::new("multi-limit");
    let keys: Vec<String> = (0..MAX_KEYS).map(|i| format!("k{i:02}")).collect();
    let set = MultiLock::new(keys.clone())
        .key_prefix(env.prefix.clone())
        .client(&env.client);
    let guard = set.acquire().await.expect("64 keys in one transaction");
    assert_eq!(guard.keys().len(), 64);
    assert_eq!(env.my_keys().await.len(), 64);
    guard.release().await.unwrap();
    assert!(env.my_keys().await.is_empty());

    let client = env.another_client();
    let mut more = keys;
    more.push("k64".into());
    let err = MultiLock::new(more)
        .key_prefix(env.prefix.clone())
        .client(&client)
        .acquire()
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidOption { option: "keys", .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("65 keys"), "{err}");
    assert_eq!(client.requests_sent(), 0, "refused before any request");
}

#[tokio::test]
async fn duplicate_keys_are_locked_once() {
    let env = Env::new("multi-dup");
    let guard = multi(&env, &env.client, &["a", "b", "a"])
        .acquire()
        .await
        .expect("acquire");
    assert_eq!(
        guard.keys(),
        [format!("{}a", env.prefix), format!("{}b", env.prefix)]
    );
    guard.release().await.unwrap();
}

#[tokio::test]
async fn a_renewed_multi_lock_reports_its_keys_taken_away() {
    let env = Env::new("multi-lost");
    let guard = multi(&env, &env.client, &["a", "b"])
        .renew(true)
        .acquire()
        .await
        .expect("acquire");
    env.client
        .destroy_session(guard.session_id())
        .await
        .unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(5), guard.lost())
        .await
        .expect("the loss is seen at once");
    assert_eq!(reason, LostReason::SessionInvalidated);
    assert!(!guard.is_held());
    drop(guard);
}

#[tokio::test]
async fn a_cancelled_multi_acquire_leaves_nothing() {
    let env = Env::new("multi-cancel");
    let holder = env.lock("b").acquire().await.unwrap();
    let set = multi(&env, &env.client, &["a", "b"]).acquire_timeout(Duration::from_secs(20));
    let attempt = tokio::time::timeout(Duration::from_millis(200), set.acquire()).await;
    assert!(attempt.is_err(), "still waiting when cancelled");
    consul_lock_runtime::flush_releases().await;
    let sessions = env.my_sessions().await;
    assert_eq!(
        sessions,
        [holder.session_id().to_owned()],
        "only the holder's session"
    );
    holder.release().await.unwrap();
}

#[test]
fn lock_all_is_the_same_as_multi_lock_new() {
    let a = Lock::all(["x", "y"]).full_keys().unwrap();
    let b = MultiLock::new(["x", "y"]).full_keys().unwrap();
    assert_eq!(a, b);
}

#[tokio::test]
async fn transient_errors_are_retried_and_a_release_goes_through_an_election() {
    let env = Env::new("multi-5xx");
    if !env.embedded_or_skip("multi-5xx") {
        return;
    }
    let server = env.consul.server().unwrap();
    server.fail_next(3, 500, "No cluster leader");
    let guard = multi(&env, &env.client, &["a", "b"])
        .acquire_timeout(Duration::from_secs(2))
        .acquire()
        .await
        .expect("retried past three 500s");
    // What Consul answers writes during a leader election, several times over.
    server.fail_next(6, 500, "rpc error making call: EOF");
    guard
        .release()
        .await
        .expect("the release is sent again until Consul confirms it");
    assert!(env.my_keys().await.is_empty(), "every key is free at once");
    assert!(env.my_sessions().await.is_empty());
}

#[tokio::test]
async fn a_multi_waiter_whose_session_was_invalidated_recovers() {
    let env = Env::new("multi-invalid");
    if !env.embedded_or_skip("multi-invalid") {
        return;
    }
    let server = env.consul.server().unwrap();
    let holder = env.lock("b").acquire().await.unwrap();
    let waiter_client = env.another_client();
    let set = multi(&env, &waiter_client, &["a", "b"]).acquire_timeout(Duration::from_secs(5));
    let waiter = tokio::spawn(async move { set.acquire().await });
    Env::until_waiting(&waiter_client).await;
    let waiting_session = env.session_other_than(holder.session_id()).await;
    assert!(server.expire_session(&waiting_session));
    holder.release().await.unwrap();
    let guard = waiter
        .await
        .unwrap()
        .expect("the waiter made a new session and took both keys");
    assert_ne!(guard.session_id(), waiting_session);
    guard.release().await.unwrap();
    assert!(env.my_sessions().await.is_empty());
    assert!(env.my_keys().await.is_empty());
}
