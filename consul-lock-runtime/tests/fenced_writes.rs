//! Fenced writes: Consul applies them only while the lock's session holds the lock key(s),
//! and refuses a holder that lost its lock with `Error::LockLost`, writing nothing. Every test
//! runs against the test server and, with `CONSUL_HTTP_ADDR` set, a real agent.

mod common;

use std::time::Duration;

use common::Env;
use consul_lock_runtime::{Error, KvOp, Lock, Semaphore, MAX_TXN_OPS};

/// Deletes what the test wrote under its prefix (through a fenced delete-tree of its own).
async fn clean_up(env: &Env) {
    let guard = env.lock("clean-up").acquire().await.unwrap();
    guard
        .fence()
        .txn([KvOp::delete_tree(env.prefix.clone())])
        .await
        .unwrap();
    drop(guard);
    assert!(env.my_sessions().await.is_empty(), "no session left");
    assert!(env.my_keys().await.is_empty(), "no key left");
}

/// The value of `key`, if any.
async fn value(env: &Env, key: &str) -> Option<Vec<u8>> {
    env.client.kv_get(key).await.expect("read").map(|e| e.value)
}

#[tokio::test]
async fn a_fenced_write_is_applied_while_held_and_refused_once_the_lock_is_gone() {
    let env = Env::new("fenced-basic");
    let data = format!("{}data/state", env.prefix);
    let guard = env.lock("job").acquire().await.unwrap();
    let fence = guard.fence();
    let index = fence.put(&data, "running").await.unwrap();
    assert!(
        index > guard.fencing_token(),
        "written after the acquisition"
    );
    let entry = env.client.kv_get(&data).await.unwrap().expect("written");
    assert_eq!(
        (entry.value.as_slice(), entry.modify_index),
        (&b"running"[..], index)
    );

    // An operator ends the lock; the holder is not told (no renew, no watch).
    env.client
        .destroy_session(guard.session_id())
        .await
        .unwrap();
    let err = fence.put(&data, "stale").await.unwrap_err();
    match &err {
        Error::LockLost { key, message } => {
            assert_eq!(key, guard.key());
            assert!(message.contains("doesn't exist"), "{message}");
        }
        other => panic!("expected LockLost, got {other:?}"),
    }
    assert!(err.to_string().contains(guard.key()), "{err}");
    assert_eq!(value(&env, &data).await.as_deref(), Some(&b"running"[..]));
    let err = fence.delete(&data).await.unwrap_err();
    assert!(matches!(err, Error::LockLost { .. }), "{err:?}");
    assert_eq!(value(&env, &data).await.as_deref(), Some(&b"running"[..]));
    drop(guard);
    clean_up(&env).await;
}

#[tokio::test]
async fn a_stale_holder_is_refused_while_the_next_holder_writes() {
    let env = Env::new("fenced-stale");
    let data = format!("{}data/owner", env.prefix);
    let first = env.lock("job").acquire().await.unwrap();
    let stale = first.handle().fence();
    // The first holder's session ends (as if its TTL ran out while it was paused) and a
    // second holder, another process, takes the key.
    env.client
        .destroy_session(first.session_id())
        .await
        .unwrap();
    let other = env.another_client();
    let second = env.lock("job").client(&other).acquire().await.unwrap();
    assert!(second.fencing_token() > first.fencing_token());
    second.fence().put(&data, "second").await.unwrap();

    let err = stale.put(&data, "first").await.unwrap_err();
    match &err {
        Error::LockLost { key, message } => {
            assert_eq!(key, first.key());
            assert!(
                message.contains(second.session_id()),
                "names the holder: {message}"
            );
        }
        other => panic!("expected LockLost, got {other:?}"),
    }
    assert_eq!(value(&env, &data).await.as_deref(), Some(&b"second"[..]));
    second.release().await.unwrap();
    drop(first);
    clean_up(&env).await;
}

#[tokio::test]
async fn a_transaction_is_all_or_nothing_and_answers_per_operation() {
    let env = Env::new("fenced-txn");
    let key = |k: &str| format!("{}data/{k}", env.prefix);
    let guard = env.lock("job").acquire().await.unwrap();
    let fence = guard.fence();
    let results = fence
        .txn([
            KvOp::set(key("a"), "1"),
            KvOp::cas(key("b"), "2", 0),
            KvOp::delete(key("none")),
            KvOp::check_not_exists(key("none")),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 4);
    let a = results[0].clone().expect("a set answers with its entry");
    let b = results[1].clone().expect("a cas answers with its entry");
    assert!(a.value.is_empty() && a.modify_index > guard.fencing_token());
    assert!(results[2].is_none() && results[3].is_none());

    let read = fence
        .txn([
            KvOp::get(key("b")),
            KvOp::check_index(key("a"), a.modify_index),
        ])
        .await
        .unwrap();
    assert_eq!(
        read[0].as_ref().map(|e| e.value.clone()),
        Some(b"2".to_vec())
    );
    assert_eq!(
        read[1].as_ref().map(|e| e.modify_index),
        Some(a.modify_index)
    );

    // A cas at a stale index fails the whole transaction: the set before it is not applied.
    let err = fence
        .txn([
            KvOp::set(key("c"), "3"),
            KvOp::cas(key("b"), "4", b.modify_index + 1000),
        ])
        .await
        .unwrap_err();
    match &err {
        Error::ConsulRefused {
            status: 409,
            message,
            ..
        } => assert!(
            message.contains(&format!("cas `{}`", key("b"))),
            "{message}"
        ),
        other => panic!("expected a 409, got {other:?}"),
    }
    assert_eq!(value(&env, &key("c")).await, None);
    assert_eq!(value(&env, &key("b")).await.as_deref(), Some(&b"2"[..]));

    // No operations: only the check that the lock is held.
    assert!(fence.txn([]).await.unwrap().is_empty());
    fence.txn([KvOp::delete_tree(key(""))]).await.unwrap();
    assert!(env.client.kv_keys(&key("")).await.unwrap().is_empty());
    guard.release().await.unwrap();
    assert!(matches!(fence.txn([]).await, Err(Error::LockLost { .. })));
    clean_up(&env).await;
}

#[tokio::test]
async fn a_multi_key_fence_checks_every_key() {
    let env = Env::new("fenced-multi");
    let data = format!("{}data/transfer", env.prefix);
    let guard = Lock::all(["a", "b"])
        .key_prefix(env.prefix.clone())
        .client(&env.client)
        .acquire()
        .await
        .unwrap();
    let fence = guard.fence();
    assert_eq!(fence.checks().len(), 2);
    fence.put(&data, "1").await.unwrap();
    // One of the keys is taken away from outside (deleted): the fence refuses, naming it.
    let b = format!("{}b", env.prefix);
    let url = format!("{}/v1/kv/{b}", env.client.address());
    let deleted = reqwest::Client::new().delete(url).send().await.unwrap();
    assert!(deleted.status().is_success());
    let err = fence.put(&data, "2").await.unwrap_err();
    assert!(
        matches!(&err, Error::LockLost { key, .. } if *key == b),
        "{err:?}"
    );
    assert_eq!(value(&env, &data).await.as_deref(), Some(&b"1"[..]));
    guard.release().await.unwrap();
    clean_up(&env).await;
}

#[tokio::test]
async fn a_semaphore_slot_fence_checks_its_contender_key() {
    let env = Env::new("fenced-semaphore");
    let data = format!("{}data/export", env.prefix);
    let slot = Semaphore::new("exports", 2)
        .key_prefix(env.prefix.clone())
        .client(&env.client)
        .acquire()
        .await
        .unwrap();
    let fence = slot.fence();
    assert_eq!(
        fence.checks(),
        [(
            slot.contender_key().to_owned(),
            slot.session_id().to_owned()
        )]
    );
    fence.put(&data, "running").await.unwrap();
    env.client.destroy_session(slot.session_id()).await.unwrap();
    let err = fence.put(&data, "stale").await.unwrap_err();
    assert!(
        matches!(&err, Error::LockLost { key, .. } if key == slot.contender_key()),
        "{err:?}"
    );
    drop(slot);
    clean_up(&env).await;
}

#[tokio::test]
async fn the_operation_limit_counts_the_checks_and_is_enforced_before_any_request() {
    let env = Env::new("fenced-limit");
    let key = |i: usize| format!("{}data/{i}", env.prefix);
    let guard = env.lock("job").acquire().await.unwrap();
    let fence = guard.fence();
    // One check + 63 operations: Consul's 64, accepted.
    let ops: Vec<KvOp> = (0..MAX_TXN_OPS - 1)
        .map(|i| KvOp::set(key(i), "x"))
        .collect();
    assert_eq!(fence.txn(ops).await.unwrap().len(), MAX_TXN_OPS - 1);
    let before = env.client.requests_sent();
    let ops: Vec<KvOp> = (0..MAX_TXN_OPS).map(|i| KvOp::set(key(i), "y")).collect();
    let err = fence.txn(ops).await.unwrap_err();
    match &err {
        Error::InvalidOption {
            option: "ops",
            reason,
        } => {
            assert!(reason.contains("65 operations"), "{reason}");
            assert!(reason.contains(guard.key()), "{reason}");
        }
        other => panic!("expected InvalidOption, got {other:?}"),
    }
    assert_eq!(
        env.client.requests_sent(),
        before,
        "refused before any request"
    );
    // A lock on two keys has two checks: 63 operations are one too many.
    let both = Lock::all(["k1", "k2"])
        .key_prefix(env.prefix.clone())
        .client(&env.client)
        .acquire()
        .await
        .unwrap();
    let ops: Vec<KvOp> = (0..MAX_TXN_OPS - 1)
        .map(|i| KvOp::set(key(i), "z"))
        .collect();
    assert!(matches!(
        both.fence().txn(ops).await,
        Err(Error::InvalidOption { option: "ops", .. })
    ));
    both.release().await.unwrap();
    guard.release().await.unwrap();
    clean_up(&env).await;
}

#[tokio::test]
async fn keys_and_sizes_consul_cannot_serve_are_refused_before_any_request() {
    let env = Env::new("fenced-bad-input");
    let guard = env.lock("job").acquire().await.unwrap();
    let fence = guard.fence();
    let before = env.client.requests_sent();
    for bad in ["", "a//b", "/a", "a/../b", "a\u{202e}b"] {
        let err = fence.put(bad, "x").await.unwrap_err();
        assert!(matches!(err, Error::InvalidKey { .. }), "{bad:?}: {err:?}");
    }
    let err = fence.txn([KvOp::delete_tree("")]).await.unwrap_err();
    assert!(err.to_string().contains("every key"), "{err}");
    let huge = vec![b'x'; 400 * 1024];
    let err = fence
        .put(format!("{}big", env.prefix), huge)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidOption { option: "ops", .. }),
        "{err:?}"
    );
    assert_eq!(env.client.requests_sent(), before);
    guard.release().await.unwrap();
    clean_up(&env).await;
}

#[test]
fn the_blocking_forms_work_outside_and_inside_a_runtime() {
    let env = Env::new("fenced-blocking");
    let data = format!("{}data/state", env.prefix);
    let lock = env
        .lock("job")
        .lock_timeout(env.min_ttl().max(Duration::from_secs(10)));
    let guard = lock.acquire_blocking().unwrap();
    let fence = guard.fence();
    fence.put_blocking(&data, "outside").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Inside a runtime the blocking form goes to the worker instead of deadlocking.
        fence.put_blocking(&data, "inside").unwrap();
    });
    let read = fence.txn_blocking([KvOp::get(&data)]).unwrap();
    assert_eq!(
        read[0].as_ref().map(|e| e.value.clone()),
        Some(b"inside".to_vec())
    );
    fence.delete_blocking(&data).unwrap();
    guard.release_blocking().unwrap();
    assert!(matches!(
        fence.put_blocking(&data, "late"),
        Err(Error::LockLost { .. })
    ));
    runtime.block_on(clean_up(&env));
}
