//! One session per client, shared by its locks: which locks share it (what a lock cycle costs
//! Consul is measured in `raft_writes.rs`), that a lost shared session loses every lock on it, that the lock
//! timeout still bounds each lock's life, and that no path of one client takes a key twice
//! with it. Against the test server and, with `CONSUL_HTTP_ADDR` set, a real agent.

mod common;

use std::time::{Duration, Instant};

use common::Env;
use consul_lock_runtime::{Client, Error, LostReason, MultiLock, Semaphore};

/// A client of the test's Consul whose shared session has `ttl`.
fn client_with_shared_ttl(env: &Env, ttl: Duration) -> Client {
    consul_lock_runtime::ClientBuilder::from_env()
        .expect("CONSUL_* variables")
        .address(env.consul.url())
        .session_ttl_min(env.min_ttl())
        .shared_session_ttl(ttl)
        .agent_is_server(false)
        .build()
        .expect("client")
}

#[tokio::test]
async fn locks_of_one_client_share_one_session_unless_they_need_their_own() {
    let env = Env::new("shared-which");
    let a = env.lock("a").acquire().await.unwrap();
    let b = env.lock("b").renew(true).acquire().await.unwrap();
    let ab = MultiLock::new(["c", "d"])
        .key_prefix(env.prefix.clone())
        .client(&env.client)
        .acquire()
        .await
        .unwrap();
    assert_eq!(a.session_id(), b.session_id(), "two locks share");
    assert_eq!(
        ab.session_id(),
        a.session_id(),
        "a lock on several keys shares"
    );
    let own = env.lock("e").own_session(true).acquire().await.unwrap();
    assert_ne!(own.session_id(), a.session_id(), "own_session(true)");
    // A lock timeout shorter than the shared session's TTL (15 s): a session of its own, so
    // that a frozen process's key is freed within twice the lock timeout.
    let short = env
        .lock("f")
        .lock_timeout(env.min_ttl())
        .acquire()
        .await
        .unwrap();
    assert_ne!(short.session_id(), a.session_id(), "a short lock timeout");
    let slot = Semaphore::new("sem", 2)
        .key_prefix(env.prefix.clone())
        .client(&env.client)
        .acquire()
        .await
        .unwrap();
    assert_ne!(slot.session_id(), a.session_id(), "a semaphore's slot");
    let sessions = env.client.sessions().await.unwrap();
    let shared = sessions
        .iter()
        .find(|s| s.id == a.session_id())
        .expect("listed");
    assert!(
        shared.name.starts_with("consul-lock: shared #"),
        "{}",
        shared.name
    );
    assert_eq!(
        (shared.ttl.as_str(), shared.behavior.as_str()),
        ("15s", "delete")
    );
    assert!(shared.node_checks.is_empty() && shared.service_checks.is_empty());
    for key in ["a", "b", "c", "d"] {
        let entry = env
            .client
            .kv_get(&env.key(key))
            .await
            .unwrap()
            .expect("held");
        assert_eq!(entry.session.as_deref(), Some(a.session_id()), "{key}");
    }
    // Releasing one lock gives its key back and leaves the others held.
    a.release().await.unwrap();
    assert!(env.client.kv_get(&env.key("a")).await.unwrap().is_none());
    assert!(b.is_held() && ab.is_held());
    assert!(env.client.kv_get(&env.key("b")).await.unwrap().is_some());
    drop((b, ab, own, short));
    slot.release().await.unwrap();
    consul_lock_runtime::flush_releases().await;
    assert!(env.my_keys().await.is_empty(), "{:?}", env.my_keys().await);
    assert!(env.my_sessions().await.is_empty());
}

#[tokio::test]
async fn a_destroyed_shared_session_loses_every_lock_on_it_and_the_next_acquire_makes_another() {
    let env = Env::new("shared-destroyed");
    let plain = env.lock("plain").acquire().await.unwrap();
    let renewed = env.lock("renewed").renew(true).acquire().await.unwrap();
    let both = MultiLock::new(["x", "y"])
        .key_prefix(env.prefix.clone())
        .client(&env.client)
        .acquire()
        .await
        .unwrap();
    let session = plain.session_id().to_owned();
    assert_eq!(renewed.session_id(), session);
    assert_eq!(both.session_id(), session);
    let (lost_plain, lost_renewed, lost_both) = (plain.lost(), renewed.lost(), both.lost());
    // An operator ends the session.
    env.client.destroy_session(&session).await.unwrap();
    let at_once = Duration::from_secs(5);
    for (what, lost) in [
        ("plain", lost_plain),
        ("renewed", lost_renewed),
        ("both", lost_both),
    ] {
        let reason = tokio::time::timeout(at_once, lost).await.expect(what);
        assert_eq!(reason, LostReason::SessionInvalidated, "{what}");
    }
    assert!(!plain.is_held() && !renewed.is_held() && !both.is_held());
    // A lock taken before this client learnt of the loss would be told too; the next acquire
    // makes a new session.
    let next = env.lock("next").acquire().await.unwrap();
    assert_ne!(next.session_id(), session);
    assert!(next.is_held());
    drop((plain, renewed, both, next));
    consul_lock_runtime::flush_releases().await;
    assert!(env.my_keys().await.is_empty(), "{:?}", env.my_keys().await);
}

#[tokio::test]
async fn the_lock_timeout_bounds_a_lock_on_the_shared_session() {
    let env = Env::new("shared-timeout");
    let ttl = env.min_ttl();
    let client = client_with_shared_ttl(&env, ttl);
    let lock_timeout = ttl * 2;
    let lock = env.lock("job").client(&client).lock_timeout(lock_timeout);
    let started = Instant::now();
    let guard = lock.acquire().await.unwrap();
    // Held with renewal, on the same session, past the other lock's timeout.
    let kept = env
        .lock("kept")
        .client(&client)
        .lock_timeout(lock_timeout)
        .renew(true)
        .acquire()
        .await
        .unwrap();
    assert_eq!(
        guard.session_id(),
        kept.session_id(),
        "both on the shared session"
    );
    let handle = guard.handle();
    let reason = guard.lost().await;
    assert_eq!(reason, LostReason::Expired, "the lock timeout ran out");
    assert!(
        started.elapsed() >= lock_timeout,
        "not before the lock timeout"
    );
    assert!(!handle.is_held());
    // The key is given back at the deadline, though the guard is still alive.
    let key = env.key("job");
    let mut index = 0;
    loop {
        let (entries, next) = env
            .client
            .kv_watch_list(&key, index, Duration::from_secs(5))
            .await
            .unwrap();
        if !entries.iter().any(|e| e.key == key) {
            break;
        }
        index = next;
    }
    assert!(
        started.elapsed() < lock_timeout + Duration::from_secs(2),
        "given back at the lock timeout"
    );
    // The shared session lives on, renewed: the lock with renewal is held past the timeout.
    assert!(kept.is_held());
    let entry = env
        .client
        .kv_get(&env.key("kept"))
        .await
        .unwrap()
        .expect("held");
    assert_eq!(entry.session.as_deref(), Some(kept.session_id()));
    // Releasing the expired lock sends nothing more and leaves the other held.
    guard.release().await.unwrap();
    assert!(kept.is_held());
    kept.release().await.unwrap();
    assert!(env.my_keys().await.is_empty());
}

#[tokio::test]
async fn no_path_of_one_client_takes_a_key_twice_with_its_shared_session() {
    let env = Env::new("shared-twice");
    let ttl = env.min_ttl();
    let client = client_with_shared_ttl(&env, ttl);
    let lock = env.lock("k").client(&client).lock_timeout(ttl * 2);
    let first = lock.acquire().await.unwrap();
    // Re-entry: the holder asking again is refused before any request.
    assert!(matches!(lock.acquire().await, Err(Error::Reentrant { .. })));
    // Other tasks of this client wait for their turn, a lock or a lock on several keys alike.
    let tried = lock.clone();
    let one_try = tokio::spawn(async move { tried.try_acquire().await.map(|g| g.is_some()) });
    assert!(
        !one_try.await.unwrap().unwrap(),
        "a one-try lock is refused"
    );
    let multi = MultiLock::new(["k", "other"])
        .key_prefix(env.prefix.clone())
        .client(&client)
        .lock_timeout(ttl * 2);
    let tried = multi.clone();
    let one_try = tokio::spawn(async move { tried.try_acquire().await.map(|g| g.is_some()) });
    assert!(
        !one_try.await.unwrap().unwrap(),
        "a one-try lock on several keys is refused"
    );
    assert!(
        env.client
            .kv_get(&env.key("other"))
            .await
            .unwrap()
            .is_none(),
        "nothing of the set was taken"
    );
    // A waiter of the same client gets the key when the first lock's timeout runs out; the
    // first lock's give-back then deletes nothing of the second's.
    let waiter = multi.acquire_timeout(ttl * 6);
    let waiting = tokio::spawn(async move { waiter.acquire().await });
    let second = waiting
        .await
        .unwrap()
        .expect("taken after the first lock's timeout");
    assert!(!first.is_held());
    assert_eq!(second.session_id(), first.session_id(), "the same session");
    let token = second.fencing_token(&env.key("k")).expect("k");
    assert!(token > first.fencing_token(), "a new fencing token");
    // The first lock's fence is refused though the session holds the key: it checks the index
    // the first lock took it at.
    let data = format!("{}data", env.prefix);
    let stale = first.fence().put(&data, "first").await;
    assert!(matches!(stale, Err(Error::LockLost { .. })), "{stale:?}");
    second
        .fence()
        .put(&data, "second")
        .await
        .expect("the holder writes");
    consul_lock_runtime::flush_releases().await;
    first.release().await.unwrap();
    let entry = env
        .client
        .kv_get(&env.key("k"))
        .await
        .unwrap()
        .expect("still held");
    assert_eq!(entry.session.as_deref(), Some(second.session_id()));
    assert_eq!(entry.modify_index, token);
    assert!(second.is_held());
    second.release().await.unwrap();
    let url = format!("{}/v1/kv/{data}", env.client.address());
    reqwest::Client::new()
        .delete(url)
        .send()
        .await
        .expect("delete the data");
    assert!(env.my_keys().await.is_empty(), "{:?}", env.my_keys().await);
}

#[tokio::test]
async fn a_lock_on_the_shared_session_whose_key_was_rewritten_still_gives_it_back() {
    let env = Env::new("shared-rewritten");
    let guard = env.lock("job").acquire().await.unwrap();
    let key = guard.key().to_owned();
    // The holder rewrites its own key through its fence: the key's index moves.
    guard
        .fence()
        .put(&key, "rewritten")
        .await
        .expect("fenced write");
    let entry = env.client.kv_get(&key).await.unwrap().expect("held");
    assert_eq!(entry.session.as_deref(), Some(guard.session_id()));
    assert_ne!(entry.modify_index, guard.fencing_token());
    // Still its lock: the next fenced write is applied (the new index is the lock's).
    guard
        .fence()
        .put(&key, "again")
        .await
        .expect("fenced write after the rewrite");
    guard.release().await.unwrap();
    assert!(
        env.client.kv_get(&key).await.unwrap().is_none(),
        "given back"
    );
}

#[tokio::test]
async fn a_take_on_the_shared_session_whose_answer_was_lost_is_given_back() {
    let env = Env::new("shared-lost-answer");
    if !env.embedded_or_skip("shared-lost-answer") {
        return;
    }
    let server = env.consul.server().unwrap();
    // The shared session exists already: the next request is the lock transaction.
    let warm = env.lock("warm").acquire().await.unwrap();
    let lock = env.lock("job");
    // Consul applies the take and the answer is lost (as after an election's `EOF`); the
    // one-try acquire gives up, and the key must not stay on the session, which lives on.
    server.apply_then_fail_next(1);
    let result = lock.try_acquire().await;
    assert!(!matches!(result, Ok(Some(_))), "{result:?}");
    consul_lock_runtime::flush_releases().await;
    assert!(
        env.client.kv_get(&env.key("job")).await.unwrap().is_none(),
        "the key was given back"
    );
    assert!(warm.is_held());
    // And the next acquire of this client takes it normally.
    let guard = lock.acquire().await.expect("acquire after the lost answer");
    assert_eq!(guard.session_id(), warm.session_id());
    drop((guard, warm));
    consul_lock_runtime::flush_releases().await;
    assert!(env.my_keys().await.is_empty(), "{:?}", env.my_keys().await);
}
