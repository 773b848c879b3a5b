//! Tasks of one process waiting on the same key share Consul's queue: one goes through the
//! Consul protocol at a time per key, the others wait in a local FIFO without a connection,
//! and the next one starts only when the previous one's lock has ended. A thousand tasks on
//! ten keys hold at most 20 connections to Consul (which refuses a 201st from one client IP),
//! and each key is granted in the order its tasks asked.
//!
//! Per key one request is in flight at a time (the turn holder's session, lock, wait, release),
//! so the measured peak is one connection per key; the bound asserted is 2 per key, which
//! leaves room for the connection pool handing a request a new connection while the last
//! one is on its way back. Before local turns the same workload opened one connection per
//! waiting task; with turns that passed at the acquisition (not the release), 20-28.
//!
//! Connections are counted exactly by a loopback TCP proxy between the client and Consul: it
//! counts each accepted connection until either side closes it, and keeps the peak. The test
//! server also enforces the same limit per client IP (`http_max_conns_per_client`),
//! but the library retries a 429 as transient, so that alone would not catch a regression.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consul_lock_runtime::{Client, ClientBuilder, Lock};
use consul_lock_testkit::{ServerConfig, TestConsul};
use tokio::net::{TcpListener, TcpStream};

/// Counts concurrent connections through it: (current, peak).
#[derive(Default)]
struct Counter {
    now: AtomicUsize,
    peak: AtomicUsize,
}

/// Starts a proxy to `upstream` (`host:port`); returns its address.
async fn proxy(upstream: String, counter: Arc<Counter>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the proxy");
    let addr = listener.local_addr().expect("proxy address");
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                return;
            };
            let n = counter.now.fetch_add(1, Ordering::SeqCst) + 1;
            counter.peak.fetch_max(n, Ordering::SeqCst);
            let counter = counter.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
                counter.now.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn a_thousand_tasks_on_ten_keys_share_a_few_connections_per_key_and_keep_their_order() {
    const KEYS: usize = 10;
    const TASKS_PER_KEY: usize = 100;
    const MAX_CONNECTIONS: usize = 2 * KEYS;
    let consul = TestConsul::from_env_or_start_with(
        ServerConfig::default().http_max_conns_per_client(MAX_CONNECTIONS),
    )
    .expect("start the test server or reach CONSUL_HTTP_ADDR");
    if !consul.is_embedded() {
        println!(
            "real agent: its own http_max_conns_per_client applies (default 200); the proxy counts"
        );
    }
    let upstream = consul
        .url()
        .split("://")
        .nth(1)
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned();
    let counter = Arc::new(Counter::default());
    let through = proxy(upstream, counter.clone()).await;
    let client = ClientBuilder::from_env()
        .expect("CONSUL_* variables")
        .address(through)
        .build()
        .expect("client");
    let prefix = format!("test/runtime/shared-{:08x}/", fastrand::u32(..));

    // Each key's order of grant, by task number (tasks of a key are spawned in order, and the
    // test's runtime is single-threaded, so they ask in that order).
    let granted: Arc<Vec<Mutex<Vec<usize>>>> =
        Arc::new((0..KEYS).map(|_| Mutex::new(Vec::new())).collect());
    let mut tasks = Vec::new();
    for n in 0..TASKS_PER_KEY {
        for k in 0..KEYS {
            let lock = Lock::new(format!("k{k}"))
                .key_prefix(prefix.clone())
                .client(&client)
                .acquire_timeout(Duration::from_secs(60));
            let granted = granted.clone();
            tasks.push(tokio::spawn(async move {
                let guard = lock.acquire().await?;
                granted[k].lock().unwrap().push(n);
                guard.release().await
            }));
        }
    }
    for t in tasks {
        t.await.expect("task").expect("acquired and released");
    }
    let peak = counter.peak.load(Ordering::SeqCst);
    println!(
        "peak connections to Consul: {peak} for {} tasks",
        KEYS * TASKS_PER_KEY
    );
    assert!(peak <= MAX_CONNECTIONS, "{peak} connections at once");
    for (k, order) in granted.iter().enumerate() {
        let order = order.lock().unwrap();
        assert_eq!(*order, (0..TASKS_PER_KEY).collect::<Vec<_>>(), "key {k}");
    }
    consul_lock_runtime::flush_releases().await;
    assert!(client.kv_keys(&prefix).await.unwrap().is_empty());
}

/// A client for `consul` with the shortest TTL it accepts.
fn client_for(consul: &TestConsul) -> Client {
    ClientBuilder::from_env()
        .expect("CONSUL_* variables")
        .address(consul.url())
        .session_ttl_min(consul.session_ttl_min())
        .build()
        .expect("client")
}

#[tokio::test]
async fn a_forgotten_guard_passes_the_local_turn_when_its_lease_runs_out() {
    let consul = TestConsul::from_env_or_start().expect("start the test server or reach Consul");
    let client = client_for(&consul);
    let ttl = consul.session_ttl_min();
    let lock = Lock::new(format!("test/runtime/forgotten-{:08x}", fastrand::u32(..)))
        .client(&client)
        .lock_timeout(ttl)
        .acquire_timeout(ttl * 6);
    let forgotten = lock.acquire().await.expect("first acquire");
    let lease_end = std::time::Instant::now() + ttl;
    std::mem::forget(forgotten);

    // Another task of this process: it waits for the turn, which the forgotten lock never
    // gives back; the turn passes when the lease runs out, and Consul frees the key when the
    // session expires.
    let other = lock.clone();
    let next = tokio::spawn(async move { other.acquire().await })
        .await
        .expect("task")
        .expect("acquired after the forgotten lock's lease ran out");
    assert!(std::time::Instant::now() >= lease_end);
    next.release().await.expect("release");
}

#[tokio::test]
async fn a_try_after_a_forgotten_guards_lease_ran_out_asks_consul() {
    let consul = TestConsul::from_env_or_start().expect("start the test server or reach Consul");
    let client = client_for(&consul);
    let ttl = consul.session_ttl_min();
    let lock = Lock::new(format!(
        "test/runtime/forgotten-try-{:08x}",
        fastrand::u32(..)
    ))
    .client(&client)
    .lock_timeout(ttl);
    let forgotten = lock.acquire().await.expect("first acquire");
    let handle = forgotten.handle();
    std::mem::forget(forgotten);
    // Held: another task's one try is answered locally. (The same task would hear that it
    // already holds the key.)
    let other = lock.clone();
    let tried = tokio::spawn(async move { other.try_acquire().await.map(|g| g.is_some()) });
    assert!(!tried.await.expect("task").expect("try"));
    // Once the lease has run out, a try takes the turn over and asks Consul, which frees the
    // key when it expires the session (up to 2 × TTL later on a real agent).
    tokio::time::timeout(ttl * 2, handle.lost())
        .await
        .expect("the lease runs out");
    let mut taken = None;
    for _ in 0..100 {
        if let Some(guard) = lock.try_acquire().await.expect("try") {
            taken = Some(guard);
            break;
        }
        // Polling Consul's own session expiry, for which there is no event to wait on.
        tokio::time::sleep(ttl / 20).await;
    }
    taken
        .expect("the key is free once Consul expired the session")
        .release()
        .await
        .expect("release");
}

#[tokio::test]
async fn a_lost_lock_passes_the_local_turn_at_once() {
    let consul = TestConsul::from_env_or_start().expect("start the test server or reach Consul");
    let client = client_for(&consul);
    let lock = Lock::new(format!("test/runtime/lost-turn-{:08x}", fastrand::u32(..)))
        .client(&client)
        .renew(true)
        .acquire_timeout(Duration::from_secs(30));
    let holder = lock.acquire().await.expect("first acquire");
    let other = lock.clone();
    let waiter = tokio::spawn(async move { other.acquire().await });
    // An operator ends the holder's session: the key watch sees the loss, the turn passes,
    // and the waiter takes the key while the holder's guard is still alive.
    client
        .destroy_session(holder.session_id())
        .await
        .expect("destroy the holder's session");
    let next = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiter gets the key well before its timeout")
        .expect("task")
        .expect("acquired");
    assert!(holder.lost_reason().is_some());
    assert!(next.fencing_token() > holder.fencing_token());
    next.release().await.expect("release");
    drop(holder);
}

/// A task that waited for its turn behind another task of the process says so, without "0
/// attempt(s)" that read as if it had tried.
#[tokio::test]
async fn a_task_that_waited_for_its_local_turn_says_so() {
    let env = common::Env::new("local-turn-message");
    let lock = env.lock("k");
    let guard = lock.acquire().await.unwrap();
    let waiter = lock.clone().acquire_timeout(Duration::from_millis(100));
    let err = tokio::spawn(async move { waiter.acquire().await })
        .await
        .unwrap()
        .unwrap_err();
    let text = err.to_string();
    eprintln!("{text}");
    assert!(
        matches!(
            err,
            consul_lock_runtime::Error::NotAcquired {
                blocked_by: consul_lock_runtime::Blocker::LocalHolder,
                attempts: 0,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(text.contains("another task of this process"), "{text}");
    assert!(!text.contains("attempt(s)"), "{text}");
    guard.release().await.unwrap();
}
