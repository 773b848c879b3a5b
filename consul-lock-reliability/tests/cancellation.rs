//! Cancellation: acquires (and holds) cut at random moments, by `tokio::time::timeout` and by
//! aborting the task, on a few keys some of which are held by others, leave no session and no
//! key once the background cleanups have settled.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use consul_lock::{Blocker, Error, Lock};
use consul_lock_reliability::support::{
    client, consul, leftovers, raise_open_files_limit, ttl, unique_prefix,
};
use tokio::sync::Semaphore;

const ACQUIRES: u64 = 1000;
const KEYS: u32 = 4;
const CONCURRENCY: usize = 40;
/// Open files the test wants at `CONCURRENCY` (client and embedded server share the process;
/// cancelled acquires finish their cleanup on the background worker's own connections).
const WANT_FDS: u64 = 1024;
const SPARE_FDS: u64 = 64;

/// `CONCURRENCY`, or fewer (printed) when the open-files hard limit is below `WANT_FDS`.
fn concurrency() -> usize {
    let limit = raise_open_files_limit(WANT_FDS);
    if limit >= WANT_FDS {
        return CONCURRENCY;
    }
    let n = (CONCURRENCY as u64 * limit.saturating_sub(SPARE_FDS) / (WANT_FDS - SPARE_FDS)).max(2)
        as usize;
    println!(
        "scaled down: {n} acquires at a time instead of {CONCURRENCY}; the open-files hard \
         limit is {limit} (raise it with `ulimit -Hn {WANT_FDS}` to run {CONCURRENCY})"
    );
    n
}

#[derive(Default)]
struct Counts {
    cancelled_by_timeout: AtomicU64,
    cancelled_by_abort: AtomicU64,
    cancelled_while_holding: AtomicU64,
    acquired: AtomicU64,
    not_acquired: AtomicU64,
    /// Consul did not answer a request within the 300 ms acquire timeout (a real agent on a
    /// busy machine): not acquired, waiting for Consul's answer.
    unanswered_in_time: AtomicU64,
}

/// Counts an acquire error the test expects, or fails on any other.
fn expected_error(counts: &Counts, e: Error) {
    match e {
        Error::NotAcquired {
            blocked_by: Blocker::Unanswered { .. },
            ..
        } => bump(&counts.unanswered_in_time),
        Error::NotAcquired { .. } => bump(&counts.not_acquired),
        e => panic!("unexpected acquire error: {e}"),
    }
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_cancelled_acquires_leave_nothing_behind() {
    let concurrency = concurrency();
    let consul = consul();
    let client = client(&consul);
    let prefix = unique_prefix("cancel");
    let ttl = ttl(&consul);
    let start = Instant::now();
    let lock = |k: u32| {
        Lock::new(format!("k{k}"))
            .client(&client)
            .key_prefix(&prefix)
            .lock_timeout(ttl)
            .acquire_timeout(Duration::from_millis(300))
    };

    // Two holders keep k0 and k1 busy most of the time, so that many acquires are cancelled
    // while waiting in a blocking query, not only while creating a session or locking.
    let stop = Arc::new(AtomicBool::new(false));
    let mut holders = Vec::new();
    for k in 0..2 {
        let lock = lock(k).acquire_timeout(Duration::from_secs(2));
        let stop = stop.clone();
        holders.push(tokio::spawn(async move {
            let mut held = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if let Ok(guard) = lock.acquire().await {
                    held += 1;
                    tokio::time::sleep(Duration::from_millis(fastrand::u64(20..80))).await;
                    guard.release().await.expect("holder release");
                }
            }
            held
        }));
    }

    let counts = Arc::new(Counts::default());
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks = Vec::new();
    for i in 0..ACQUIRES {
        let permit = permits.clone().acquire_owned().await.expect("semaphore");
        let lock = lock(fastrand::u32(0..KEYS));
        let counts = counts.clone();
        // Random moments from 0 to 50 ms: a session create + lock takes a few ms here, a wait
        // for a held key up to the 300 ms acquire timeout.
        let cut = Duration::from_micros(fastrand::u64(0..50_000));
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            match i % 4 {
                // Abort the task running the acquire at a random moment.
                0 => {
                    let c2 = counts.clone();
                    let task = tokio::spawn(async move {
                        match lock.acquire().await {
                            Ok(guard) => {
                                bump(&c2.acquired);
                                tokio::time::sleep(Duration::from_millis(5)).await;
                                drop(guard);
                            }
                            Err(e) => expected_error(&c2, e),
                        }
                    });
                    tokio::time::sleep(cut).await;
                    task.abort();
                    if let Err(e) = task.await {
                        if e.is_cancelled() {
                            bump(&counts.cancelled_by_abort);
                        } else {
                            std::panic::resume_unwind(e.into_panic());
                        }
                    }
                }
                // Cut a `hold` at a random moment: in the acquire or in the body.
                1 => {
                    let held = Arc::new(AtomicBool::new(false));
                    let h2 = held.clone();
                    let fut = lock.hold(|_| async move {
                        h2.store(true, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    });
                    match tokio::time::timeout(cut, fut).await {
                        Err(_) if held.load(Ordering::SeqCst) => {
                            bump(&counts.cancelled_while_holding)
                        }
                        Err(_) => bump(&counts.cancelled_by_timeout),
                        Ok(Ok(())) => bump(&counts.acquired),
                        Ok(Err(e)) => expected_error(&counts, e),
                    }
                }
                // A timeout around the acquire; a guard that comes back is released or dropped.
                _ => match tokio::time::timeout(cut, lock.acquire()).await {
                    Err(_) => bump(&counts.cancelled_by_timeout),
                    Ok(Ok(guard)) => {
                        bump(&counts.acquired);
                        if fastrand::bool() {
                            guard.release().await.expect("release");
                        }
                    }
                    Ok(Err(e)) => expected_error(&counts, e),
                },
            }
        }));
    }
    for t in tasks {
        t.await.expect("acquire task");
    }
    stop.store(true, Ordering::Relaxed);
    let mut held_by_holders = 0;
    for h in holders {
        held_by_holders += h.await.expect("holder");
    }
    let settle = Instant::now();
    consul_lock::flush_releases().await;
    let left = leftovers(&client, &prefix).await;
    let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
    println!(
        "{ACQUIRES} acquires on {KEYS} keys ({concurrency} at a time) + {held_by_holders} holds by 2 holders: \
         {} cancelled by timeout, {} cancelled by abort, {} cancelled while holding, {} acquired, \
         {} not acquired in time, {} unanswered by Consul in time; {} HTTP requests; settled and listed in {:?}; total {:?}; left: {} sessions, {} keys",
        c(&counts.cancelled_by_timeout),
        c(&counts.cancelled_by_abort),
        c(&counts.cancelled_while_holding),
        c(&counts.acquired),
        c(&counts.not_acquired),
        c(&counts.unanswered_in_time),
        client.requests_sent(),
        settle.elapsed(),
        start.elapsed(),
        left.sessions.len(),
        left.keys.len(),
    );
    assert!(
        left.is_empty(),
        "after {ACQUIRES} cancelled/finished acquires and flush_releases(), {} sessions and {} keys are \
         left under {prefix}. Sessions without a key are sessions whose create request was sent \
         but whose answer the cancelled acquire never read, so nothing destroys them before \
         their TTL: {left:?}",
        left.sessions.len(),
        left.keys.len()
    );
    let cancelled = c(&counts.cancelled_by_timeout)
        + c(&counts.cancelled_by_abort)
        + c(&counts.cancelled_while_holding);
    assert!(
        cancelled >= ACQUIRES / 4,
        "too few acquires were actually cancelled ({cancelled}) for the test to mean much"
    );
}
