//! Re-entry fails fast: a task (or, outside a task, a thread) that holds a key through this
//! library and asks for it again gets `Error::Reentrant` at once, instead of waiting out its
//! acquire timeout against itself; another task (a spawned one) waits as any client does.
//! Runs against the embedded test server, or a real agent when `CONSUL_HTTP_ADDR` is set.

mod common;

use std::time::{Duration, Instant};

use consul_lock::{consul_lock, Client, Error, Lock};
use consul_lock_testkit::TestConsul;

/// Longer than any of these tests may take: a re-entrant acquire that waited for it would fail
/// the "at once" checks.
const PATIENT: Duration = Duration::from_secs(30);

/// "At once": no wait for the key (a refusal before any request takes microseconds).
const AT_ONCE: Duration = Duration::from_secs(2);

struct Env {
    _consul: TestConsul,
    client: Client,
    run: String,
}

fn env(name: &str) -> Env {
    let consul = common::consul();
    Env {
        client: common::client(&consul),
        _consul: consul,
        run: common::run_name(&format!("reentry-tests/{name}")),
    }
}

impl Env {
    fn lock(&self) -> Lock {
        Lock::new(self.run.clone())
            .client(&self.client)
            .acquire_timeout(PATIENT)
    }
}

fn assert_reentrant(result: consul_lock::Result<consul_lock::LockGuard>, key: &str) {
    match result {
        Err(Error::Reentrant { key: k }) => {
            assert!(k.ends_with(key), "the error names the key: {k}");
            let message = Error::Reentrant { key: k }.to_string();
            assert!(message.contains("release it first"), "{message}");
        }
        Err(other) => panic!("expected Error::Reentrant, got {other}"),
        Ok(g) => panic!("acquired a key this holder already holds: {g:?}"),
    }
}

#[tokio::test]
async fn async_reentry_in_the_same_task_fails_at_once_without_a_request() {
    let env = env("async");
    let lock = env.lock();
    let guard = lock.acquire().await.expect("a free key");
    let sent = env.client.requests_sent();
    let start = Instant::now();
    assert_reentrant(lock.acquire().await, &env.run);
    assert!(start.elapsed() < AT_ONCE, "waited {:?}", start.elapsed());
    assert_eq!(
        env.client.requests_sent(),
        sent,
        "refused before any request"
    );
    // try_acquire is refused the same way (not "held": None).
    assert!(matches!(
        lock.try_acquire().await,
        Err(Error::Reentrant { .. })
    ));
    guard.release().await.expect("release");
    // Released: the same task may take it again; and after a drop too.
    let again = lock.acquire().await.expect("free again after the release");
    drop(again);
    consul_lock::flush_releases().await;
    let third = lock.acquire().await.expect("free again after the drop");
    third.release().await.expect("release");
}

#[test]
fn sync_reentry_on_the_same_thread_fails_at_once() {
    let env = env("sync");
    let lock = env.lock();
    let guard = lock.acquire_blocking().expect("a free key");
    let start = Instant::now();
    assert_reentrant(lock.acquire_blocking(), &env.run);
    assert!(start.elapsed() < AT_ONCE, "waited {:?}", start.elapsed());
    // Another thread is another holder: it waits (here: one try, so "held").
    let other = lock.clone().acquire_timeout(Duration::ZERO);
    let seen = std::thread::spawn(move || other.try_acquire_blocking())
        .join()
        .expect("the other thread");
    assert!(
        matches!(seen, Ok(None)),
        "another thread sees the key held: {seen:?}"
    );
    guard.release_blocking().expect("release");
    lock.acquire_blocking()
        .expect("free again")
        .release_blocking()
        .expect("release");
}

#[tokio::test]
async fn a_spawned_task_is_another_holder_and_waits_for_the_key() {
    let env = env("spawned");
    let lock = env.lock();
    let guard = lock.acquire().await.expect("a free key");
    let waiter = lock.clone();
    let sent = env.client.requests_sent();
    let task = tokio::spawn(async move { waiter.acquire().await });
    // The spawned task is not refused as re-entry: it waits for the key, in this process's
    // own queue for it (tasks of one process take turns at a key before asking Consul), so it
    // sends nothing. The test's runtime has one thread: each yield lets the task run until it
    // waits.
    for _ in 0..10 {
        tokio::task::yield_now().await;
        assert!(
            !task.is_finished(),
            "the spawned task ended instead of waiting"
        );
    }
    assert_eq!(
        env.client.requests_sent(),
        sent,
        "it waits without asking Consul"
    );
    let token = guard.fencing_token();
    guard.release().await.expect("release");
    let second = task
        .await
        .expect("the task")
        .expect("the spawned task gets the key after the release");
    assert!(second.fencing_token() > token);
    second.release().await.expect("release");
}

#[consul_lock(key = "<key>", acquire_timeout_ms = 30_000, client = client)]
async fn outer_async(client: &Client, key: &str) -> Result<&'static str, Error> {
    let start = Instant::now();
    let inner = inner_async(client, key).await;
    assert!(start.elapsed() < AT_ONCE, "waited {:?}", start.elapsed());
    match inner {
        Err(Error::Reentrant { .. }) => Ok("inner refused as re-entry"),
        other => panic!("the nested call on the same key answered {other:?}"),
    }
}

#[consul_lock(key = "<key>", acquire_timeout_ms = 30_000, client = client)]
async fn inner_async(client: &Client, key: &str) -> Result<(), Error> {
    let _ = (client, key);
    Ok(())
}

#[tokio::test]
async fn nested_async_attribute_calls_on_the_same_key_fail_fast() {
    let env = env("nested-async");
    let answer = outer_async(&env.client, &env.run)
        .await
        .expect("the outer call");
    assert_eq!(answer, "inner refused as re-entry");
    // Outside the outer call the inner one takes the key.
    inner_async(&env.client, &env.run)
        .await
        .expect("the key is free again");
}

#[consul_lock(key = "<key>", acquire_timeout_ms = 30_000, client = client)]
fn outer_sync(client: &Client, key: &str) -> Result<bool, Error> {
    Ok(matches!(
        inner_sync(client, key),
        Err(Error::Reentrant { .. })
    ))
}

#[consul_lock(key = "<key>", acquire_timeout_ms = 30_000, client = client)]
fn inner_sync(client: &Client, key: &str) -> Result<(), Error> {
    let _ = (client, key);
    Ok(())
}

#[test]
fn nested_sync_attribute_calls_on_the_same_key_fail_fast() {
    let env = env("nested-sync");
    let start = Instant::now();
    assert!(outer_sync(&env.client, &env.run).expect("the outer call"));
    assert!(start.elapsed() < AT_ONCE, "waited {:?}", start.elapsed());
    inner_sync(&env.client, &env.run).expect("the key is free again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reentry_inside_a_spawned_task_is_told_by_the_task_not_the_thread() {
    let env = env("task");
    let lock = env.lock();
    let inner = lock.clone();
    let task = tokio::spawn(async move {
        let guard = inner.acquire().await?;
        // The task may resume on another worker thread after each await: still the holder.
        tokio::task::yield_now().await;
        let again = inner.acquire().await;
        guard.release().await?;
        Ok::<_, Error>(again)
    });
    let again = task.await.expect("the task").expect("acquire and release");
    assert_reentrant(again, &env.run);
    // This (other) task never held it: it takes the key.
    lock.acquire()
        .await
        .expect("free")
        .release()
        .await
        .expect("release");
}
