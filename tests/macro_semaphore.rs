//! `#[consul_lock(key = "...", limit = N)]`: the body runs holding one of N slots of a
//! semaphore in Consul's layout, against the embedded test server (or a real agent when
//! `CONSUL_HTTP_ADDR` is set).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use consul_lock::{consul_lock, Client, Error, Semaphore, SemaphoreGuard};
use consul_lock_testkit::TestConsul;

struct Env {
    _consul: TestConsul,
    client: Client,
    run: String,
    inside: AtomicUsize,
    most: AtomicUsize,
}

impl Env {
    fn new(name: &str) -> Env {
        let consul = common::consul();
        Env {
            client: common::client(&consul),
            _consul: consul,
            run: common::run_name(name),
            inside: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
        }
    }
}

#[consul_lock(
    key = "macro-sem/<env.run>/pool",
    limit = 2,
    client = env.client,
    acquire_timeout_ms = 20000,
    guard = slot
)]
async fn limited(env: &Env) -> Result<String, Error> {
    let now = env.inside.fetch_add(1, Ordering::SeqCst) + 1;
    env.most.fetch_max(now, Ordering::SeqCst);
    let contender = slot.contender_key().to_owned();
    assert!(slot.is_held());
    assert_eq!(slot.limit(), 2);
    tokio::time::sleep(Duration::from_millis(20)).await;
    env.inside.fetch_sub(1, Ordering::SeqCst);
    Ok(contender)
}

#[tokio::test]
async fn at_most_limit_bodies_run_at_once() {
    let env = Env::new("limit");
    let calls = (0..6).map(|_| limited(&env));
    let results = futures_join_all(calls).await;
    for r in &results {
        let contender = r.as_ref().expect("every call runs in time");
        assert!(contender.contains(&format!("macro-sem/{}/pool/", env.run)));
    }
    let most = env.most.load(Ordering::SeqCst);
    assert_eq!(most, 2, "at most 2 bodies at once, and both slots used");
    // Every slot was given back.
    let sem = Semaphore::new(format!("macro-sem/{}/pool", env.run), 2)
        .client(&env.client)
        .acquire_timeout(Duration::ZERO);
    let a = sem.acquire().await.expect("free");
    let b = sem.acquire().await.expect("free");
    a.release().await.unwrap();
    b.release().await.unwrap();
}

/// Polls every future together on this task (the test runtime is current-thread).
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = set.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in set.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|v| v.expect("ready")).collect()
}

#[consul_lock(key = "macro-sem/<run>/soft", limit = 1, client = client, fail_soft)]
fn soft(client: &Client, run: &str) -> Option<u32> {
    Some(7)
}

#[test]
fn fail_soft_gives_none_when_every_slot_is_taken() {
    let env = Env::new("soft");
    let sem = Semaphore::new(format!("macro-sem/{}/soft", env.run), 1).client(&env.client);
    let held: SemaphoreGuard = sem.acquire_blocking().expect("the only slot");
    assert_eq!(soft(&env.client, &env.run), None, "the body did not run");
    held.release_blocking().unwrap();
    assert_eq!(soft(&env.client, &env.run), Some(7));
}

#[consul_lock(key = "macro-sem/<run>/mismatch", limit = 3, client = client, acquire_timeout_ms = 0)]
fn three(client: &Client, run: &str) -> Result<(), Error> {
    Ok(())
}

#[test]
fn a_disagreeing_limit_is_an_error_naming_both() {
    let env = Env::new("mismatch");
    let sem = Semaphore::new(format!("macro-sem/{}/mismatch", env.run), 2).client(&env.client);
    let held = sem.acquire_blocking().unwrap();
    let err = three(&env.client, &env.run).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidOption {
                option: "limit",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("limit 2") && err.to_string().contains("limit 3"));
    held.release_blocking().unwrap();
}

#[consul_lock(key = "macro-sem/<run>/panic", limit = 2, client = client)]
fn panics(client: &Client, run: &str) -> Result<(), Error> {
    panic!("the body panics");
}

#[test]
fn a_panicking_body_gives_its_slot_back() {
    let env = Env::new("panic");
    let (client, run) = (env.client.clone(), env.run.clone());
    assert!(std::thread::spawn(move || panics(&client, &run))
        .join()
        .is_err());
    consul_lock::flush_releases_blocking().unwrap();
    let sem = Semaphore::new(format!("macro-sem/{}/panic", env.run), 2)
        .client(&env.client)
        .acquire_timeout(Duration::ZERO);
    let a = sem.acquire_blocking().expect("slot 1 free");
    let b = sem.acquire_blocking().expect("slot 2 free");
    a.release_blocking().unwrap();
    b.release_blocking().unwrap();
}
