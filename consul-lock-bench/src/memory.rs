//! Client memory: peak RSS of the bench process while it holds many locks at once.

use std::time::{Duration, Instant};

use consul_lock::{Client, Lock, LockGuard};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::sys::{reset_peak_rss, status_kib};

/// How many acquires and releases are in flight at once.
const CONCURRENCY: usize = 64;

#[derive(Clone, Debug, Serialize)]
pub struct MemoryResult {
    pub locks: usize,
    /// VmRSS just before the acquires.
    pub rss_before_kib: Option<u64>,
    /// VmHWM while all locks are held (the peak was reset to the current RSS first, when the
    /// kernel allows it; otherwise it is the peak of the whole run so far).
    pub peak_rss_kib: Option<u64>,
    pub peak_was_reset: bool,
    /// (peak − before) ÷ locks.
    pub bytes_per_lock: Option<f64>,
    pub acquire_seconds: f64,
    pub release_seconds: f64,
}

/// Acquires `locks` distinct keys, holds them all, reads the peak RSS, releases them.
pub async fn run(client: &Client, key_base: &str, locks: usize) -> Result<MemoryResult, String> {
    let rss_before = status_kib("VmRSS");
    let peak_was_reset = reset_peak_rss();
    let t = Instant::now();
    let mut set = JoinSet::new();
    let per_task = locks.div_ceil(CONCURRENCY);
    for task in 0..CONCURRENCY {
        let client = client.clone();
        let key_base = key_base.to_owned();
        let range = (task * per_task)..((task + 1) * per_task).min(locks);
        set.spawn(async move {
            let mut guards = Vec::with_capacity(range.len());
            for i in range {
                let guard = Lock::new(format!("{key_base}/lock-{i}"))
                    .client(&client)
                    .acquire_timeout(Duration::from_secs(10))
                    .acquire()
                    .await
                    .map_err(|e| e.to_string())?;
                guards.push(guard);
            }
            Ok::<Vec<LockGuard>, String>(guards)
        });
    }
    let mut guards = Vec::with_capacity(locks);
    let mut first_error = None;
    while let Some(joined) = set.join_next().await {
        match joined.map_err(|e| format!("an acquire task panicked: {e}"))? {
            Ok(g) => guards.extend(g),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let acquire_seconds = t.elapsed().as_secs_f64();
    let held = guards.len();
    let peak = status_kib("VmHWM");
    let t = Instant::now();
    release_all(guards).await?;
    let release_seconds = t.elapsed().as_secs_f64();
    if let Some(e) = first_error {
        return Err(format!("only {held} of {locks} locks acquired: {e}"));
    }
    Ok(MemoryResult {
        locks: held,
        rss_before_kib: rss_before,
        peak_rss_kib: peak,
        peak_was_reset,
        bytes_per_lock: match (rss_before, peak) {
            (Some(b), Some(p)) if held > 0 => {
                Some(p.saturating_sub(b) as f64 * 1024.0 / held as f64)
            }
            _ => None,
        },
        acquire_seconds,
        release_seconds,
    })
}

async fn release_all(mut guards: Vec<LockGuard>) -> Result<(), String> {
    let mut set = JoinSet::new();
    let per_task = guards.len().div_ceil(CONCURRENCY).max(1);
    while !guards.is_empty() {
        let chunk: Vec<LockGuard> = guards.drain(..per_task.min(guards.len())).collect();
        set.spawn(async move {
            for g in chunk {
                g.release().await.map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        });
    }
    let mut result = Ok(());
    while let Some(joined) = set.join_next().await {
        let r = joined.map_err(|e| format!("a release task panicked: {e}"))?;
        if result.is_ok() {
            result = r;
        }
    }
    result
}
