//! Semaphore contention: M contenders competing for the N slots of one semaphore (Consul's
//! semaphore layout) for a fixed duration. Measures acquisitions/s, utilisation of the N slots
//! (time held ÷ (duration × N)), hand-off latency and the most holders seen at once (which
//! must never pass N).
//!
//! Hand-off: with more contenders than slots every slot is wanted at all times, so the k-th
//! acquisition after the first N fills the slot freed by the k-th release; the hand-off is
//! that release's completion → that acquisition's return, on one monotonic clock (a negative
//! one counts as 0). Contenders are tasks on the bench's runtime using the async API, so
//! waiters wait in Consul blocking queries. The hold is a `std::thread::sleep` on the
//! blocking pool, as in `contention.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use consul_lock::{Client, Semaphore};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::stats::{Samples, Summary};

/// How long a contender waits before giving up: far longer than any hand-off.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(120);

/// One scenario: `contenders` tasks on a semaphore of `limit` slots.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    pub limit: u32,
    pub contenders: usize,
    pub hold: Duration,
    pub duration: Duration,
}

#[derive(Clone, Debug, Serialize)]
pub struct SemaphoreResult {
    pub limit: u32,
    pub contenders: usize,
    pub hold_ms: f64,
    pub seconds: f64,
    pub acquisitions: u64,
    pub acquisitions_per_s: f64,
    /// Time held (acquire returned → release called) ÷ (duration × limit).
    pub utilisation: f64,
    /// The k-th release complete → the (N + k)-th acquisition returned.
    pub handoff: Summary,
    /// The most holders seen at once, counted by the contenders themselves (≤ limit).
    pub most_holders: usize,
    /// HTTP requests the client sent per acquisition (waits, retries and releases included).
    pub client_requests_per_acquisition: f64,
}

struct Hold {
    acquired: Instant,
    release_called: Instant,
    released: Instant,
}

async fn contender(
    sem: Semaphore,
    hold: Duration,
    end: Instant,
    inside: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
) -> Result<Vec<Hold>, String> {
    let mut holds = Vec::new();
    while Instant::now() < end {
        let guard = sem.acquire().await.map_err(|e| e.to_string())?;
        let acquired = Instant::now();
        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
        most.fetch_max(now, Ordering::SeqCst);
        if !hold.is_zero() {
            tokio::task::spawn_blocking(move || std::thread::sleep(hold))
                .await
                .map_err(|e| e.to_string())?;
        }
        inside.fetch_sub(1, Ordering::SeqCst);
        let release_called = Instant::now();
        guard.release().await.map_err(|e| e.to_string())?;
        holds.push(Hold {
            acquired,
            release_called,
            released: Instant::now(),
        });
    }
    Ok(holds)
}

/// Runs one scenario on the current runtime.
pub async fn run(client: &Client, key: &str, s: Scenario) -> Result<SemaphoreResult, String> {
    let requests0 = client.requests_sent();
    let start = Instant::now();
    let end = start + s.duration;
    let sem = Semaphore::new(key, s.limit)
        .client(client)
        .acquire_timeout(ACQUIRE_TIMEOUT);
    let inside = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let mut set = JoinSet::new();
    for _ in 0..s.contenders {
        set.spawn(contender(
            sem.clone(),
            s.hold,
            end,
            inside.clone(),
            most.clone(),
        ));
    }
    let mut holds = Vec::new();
    let mut first_error = None;
    while let Some(joined) = set.join_next().await {
        match joined.map_err(|e| format!("a contender panicked: {e}"))? {
            Ok(h) => holds.extend(h),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let requests = client.requests_sent() - requests0;
    let mut r = analyse(&holds, s, start, end);
    r.most_holders = most.load(Ordering::SeqCst);
    r.client_requests_per_acquisition = requests as f64 / holds.len().max(1) as f64;
    Ok(r)
}

fn analyse(holds: &[Hold], s: Scenario, start: Instant, end: Instant) -> SemaphoreResult {
    let mut acquired: Vec<Instant> = holds.iter().map(|h| h.acquired).collect();
    let mut released: Vec<Instant> = holds.iter().map(|h| h.released).collect();
    acquired.sort_unstable();
    released.sort_unstable();
    let counted = holds.iter().filter(|h| h.acquired < end).count() as u64;
    let held: Duration = holds
        .iter()
        .filter(|h| h.acquired < end)
        .map(|h| h.release_called - h.acquired)
        .sum();
    let mut handoff = Samples::with_capacity(holds.len());
    if s.contenders > s.limit as usize {
        let n = s.limit as usize;
        for (k, a) in acquired.iter().enumerate().skip(n) {
            if *a >= end {
                break;
            }
            if let Some(r) = released.get(k - n) {
                handoff.push(a.checked_duration_since(*r).unwrap_or(Duration::ZERO));
            }
        }
    }
    let seconds = (end - start).as_secs_f64();
    SemaphoreResult {
        limit: s.limit,
        contenders: s.contenders,
        hold_ms: s.hold.as_secs_f64() * 1e3,
        seconds,
        acquisitions: counted,
        acquisitions_per_s: counted as f64 / seconds,
        utilisation: held.as_secs_f64() / (seconds * f64::from(s.limit)),
        handoff: handoff.summary(),
        most_holders: 0,
        client_requests_per_acquisition: 0.0,
    }
}
