//! No key left behind. After a load in which waiters give up (short acquire timeouts),
//! releasers ask again at once (taking the key ahead of older waiters, then giving it back),
//! acquires are cancelled part-way and semaphore slots are taken and given back, nothing of
//! this library's stays in Consul once nobody holds or waits: no lock key, no queue entry, no
//! semaphore `.lock`, no session. With one key per user, anything left would grow without
//! bound.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Env;
use consul_lock_runtime::{Client, Error, Lock, MultiLock, Semaphore};
use tokio::time::Instant;

const KEYS: usize = 3;
const CLIENTS: usize = 6;
/// Tasks per client: tasks of one process take local turns, tasks of different clients
/// meet in Consul's queue.
const TASKS: usize = 2;
const LOAD: Duration = Duration::from_millis(2500);

type Tally = Arc<Mutex<BTreeMap<&'static str, usize>>>;

fn count(tally: &Tally, what: &'static str) {
    *tally.lock().unwrap().entry(what).or_default() += 1;
}

fn ms(range: std::ops::Range<u64>) -> Duration {
    Duration::from_millis(fastrand::u64(range))
}

/// One task's load until `end`: on a random key, one of: an acquire with a short timeout (a
/// waiter that gives up) that, once held, releases and at once asks again (a releaser ahead
/// of older waiters); an acquire cancelled part-way; two keys at once; a semaphore slot
/// (limit 2).
async fn work(client: Client, prefix: String, end: Instant, tally: Tally) {
    while Instant::now() < end {
        let key = format!("k{}", fastrand::usize(..KEYS));
        let lock = Lock::new(key.clone())
            .key_prefix(prefix.clone())
            .client(&client);
        match fastrand::u8(..10) {
            0..=5 => {
                let lock = lock.acquire_timeout(ms(20..150));
                match lock.try_acquire().await {
                    Ok(Some(guard)) => {
                        count(&tally, "acquired");
                        tokio::time::sleep(ms(0..15)).await;
                        guard.release().await.expect("release");
                        // Again at once, ahead of the waiters that queued meanwhile.
                        match lock.try_acquire().await {
                            Ok(Some(again)) => {
                                count(&tally, "acquired again at once");
                                again.release().await.expect("release");
                            }
                            Ok(None) => count(&tally, "gave up after asking again"),
                            Err(e) => panic!("acquire: {e}"),
                        }
                    }
                    Ok(None) => count(&tally, "gave up"),
                    Err(e) => panic!("acquire: {e}"),
                }
            }
            6..=7 => {
                let lock = lock.acquire_timeout(Duration::from_secs(5));
                let cut = tokio::time::timeout(ms(1..60), lock.acquire()).await;
                match cut {
                    Err(_) => count(&tally, "cancelled"),
                    Ok(Ok(guard)) => {
                        count(&tally, "acquired before the cancellation");
                        drop(guard);
                    }
                    Ok(Err(e)) => panic!("acquire: {e}"),
                }
            }
            8 => {
                let pair = MultiLock::new([key.clone(), format!("k{}", fastrand::usize(..KEYS))])
                    .key_prefix(prefix.clone())
                    .client(&client)
                    .acquire_timeout(ms(20..100));
                match pair.try_acquire().await {
                    Ok(Some(both)) => {
                        count(&tally, "two keys at once");
                        both.release().await.expect("release");
                    }
                    Ok(None) => count(&tally, "two keys: gave up"),
                    Err(e) => panic!("two keys: {e}"),
                }
            }
            _ => {
                let semaphore = Semaphore::new(format!("sem-{key}"), 2)
                    .key_prefix(prefix.clone())
                    .client(&client)
                    .acquire_timeout(ms(20..100));
                match semaphore.try_acquire().await {
                    Ok(Some(slot)) => {
                        count(&tally, "semaphore slot");
                        tokio::time::sleep(ms(0..15)).await;
                        slot.release().await.expect("give the slot back");
                    }
                    Ok(None) => count(&tally, "semaphore full"),
                    Err(Error::NotAcquired { .. }) => count(&tally, "semaphore full"),
                    Err(e) => panic!("semaphore: {e}"),
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_left_in_consul_after_a_load_with_waiters_giving_up() {
    let env = Env::new("no-keys-left");
    let tally: Tally = Arc::default();
    let end = Instant::now() + LOAD;
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let client = env.another_client();
        for _ in 0..TASKS {
            tasks.push(tokio::spawn(work(
                client.clone(),
                env.prefix.clone(),
                end,
                tally.clone(),
            )));
        }
    }
    for t in tasks {
        t.await.expect("a load task failed");
    }
    // Every release and every cleanup of a cancelled acquire has been answered by Consul.
    consul_lock_runtime::flush_releases().await;
    eprintln!("no keys left: {:?}", tally.lock().unwrap());
    let sessions = env.my_sessions().await;
    let left = env.client.kv_list(&env.prefix).await.expect("list keys");
    let described: Vec<String> = left
        .iter()
        .map(|e| {
            format!(
                "{} (session {:?}, flags {:#x}, lock index {})",
                e.key, e.session, e.flags, e.lock_index
            )
        })
        .collect();
    assert!(
        described.is_empty() && sessions.is_empty(),
        "left in Consul: {} keys {described:#?}, {} sessions",
        described.len(),
        sessions.len()
    );
}

/// Another process's waiter, queued by hand: its own session, and its entry in the key's
/// queue held by that session.
async fn foreign_waiter(env: &Env, key: &str) -> String {
    let http = reqwest::Client::new();
    let base = env.consul.url();
    let token = std::env::var("CONSUL_HTTP_TOKEN").unwrap_or_default();
    let name = format!("consul-lock: {key} #foreign");
    let created: serde_json::Value = http
        .put(format!("{base}/v1/session/create"))
        .header("X-Consul-Token", &token)
        .body(format!(
            r#"{{"Name": "{name}", "Behavior": "delete", "LockDelay": "0s", "TTL": "30s"}}"#
        ))
        .send()
        .await
        .expect("create the waiter's session")
        .json()
        .await
        .expect("the session's id");
    let session = created["ID"].as_str().expect("an ID").to_owned();
    let queued = http
        .put(format!(
            "{base}/v1/kv/{key}{}{session}?acquire={session}",
            consul_lock_runtime::WAITERS_SUFFIX
        ))
        .header("X-Consul-Token", &token)
        .send()
        .await
        .expect("queue the waiter")
        .text()
        .await
        .expect("the answer");
    assert_eq!(queued.trim(), "true");
    session
}

/// The give-back: a client that takes a key it released a moment ago, ahead of an older
/// waiter, gives it back and queues; when that waiter then gives up and so does the client,
/// nobody holds or waits, and the key must be gone (it stayed, without a session, when the
/// give-back was an `unlock`).
#[tokio::test]
async fn a_key_given_back_to_a_waiter_that_gives_up_is_gone() {
    let env = Env::new("give-back");
    let lock = env.lock("k").acquire_timeout(Duration::from_millis(300));
    let key = lock.full_key().expect("key");
    let guard = lock.acquire().await.expect("the key is free");
    let waiter = foreign_waiter(&env, &key).await;
    guard.release().await.expect("release");
    // At once again: taken ahead of the waiter, given back, then queued behind it until this
    // acquire's timeout.
    let again = lock.try_acquire().await.expect("no error");
    assert!(again.is_none(), "the older waiter comes first");
    // The waiter gives up too.
    env.client
        .destroy_session(&waiter)
        .await
        .expect("end the waiter's session");
    consul_lock_runtime::flush_releases().await;
    let left = env.client.kv_list(&env.prefix).await.expect("list keys");
    assert!(
        left.is_empty(),
        "left in Consul: {:?}",
        left.iter()
            .map(|e| (&e.key, &e.session, e.lock_index))
            .collect::<Vec<_>>()
    );
}
