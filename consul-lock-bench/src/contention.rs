//! Contention: workers competing for keys for a fixed duration. Measures acquisitions/s,
//! utilisation, hand-off latency (release complete → next holder's acquire returns) and
//! fairness (fewest ÷ most acquisitions per worker).
//!
//! Every worker is a task on the bench's runtime using the async API with a long acquire
//! timeout, so waiters wait in Consul blocking queries, not by polling. The hold is a
//! `std::thread::sleep` on the blocking pool (precise to tens of µs; tokio's timer rounds up
//! to whole milliseconds, which would inflate the hold time).

use std::time::{Duration, Instant};

use consul_lock::{Client, Lock};
use serde::Serialize;
use tokio::task::JoinSet;

use consul_lock_bench::peers::ContentionRun;

use crate::raft::RaftIndex;
use crate::stats::{fairness, Samples, Summary};

/// How long a waiter waits before giving up: far longer than any run's hand-off.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a contention row runs: `d`, and longer for many workers, `d` per 32 of them, so
/// that every worker gets enough turns for fairness (fewest ÷ most) to measure the order and
/// not the cut at the window's end: in a strict FIFO the counts differ by one at most, which
/// with 3 turns each reads as 0.67.
pub fn row_duration(d: Duration, workers: usize) -> Duration {
    let per_32 = u32::try_from(workers.div_ceil(32))
        .unwrap_or(u32::MAX)
        .max(1);
    d.saturating_mul(per_32)
}

/// One scenario.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    pub keys: usize,
    pub workers_per_key: usize,
    pub hold: Duration,
    pub duration: Duration,
}

#[derive(Clone, Debug, Serialize)]
pub struct ContentionResult {
    /// Which client ran it: `consul-lock`, or a peer's label.
    pub client: &'static str,
    pub keys: usize,
    pub workers_per_key: usize,
    pub workers: usize,
    pub hold_ms: f64,
    pub seconds: f64,
    /// Acquisitions that returned inside the measured window.
    pub acquisitions: u64,
    pub acquisitions_per_s: f64,
    /// acquisitions × hold ÷ (duration × keys): the share of time a key was held. `None`
    /// for a zero hold.
    pub utilisation: Option<f64>,
    /// The hold time as measured (acquire returned → release called), mean, µs.
    pub measured_hold_us: f64,
    /// Release complete → the next holder's acquire returned, on one monotonic clock.
    pub handoff: Summary,
    /// Hand-offs where the next holder's acquire returned before the previous holder's
    /// release call did (they count as 0 in the distribution).
    pub handoffs_before_release_returned: u64,
    pub fairness: Option<f64>,
    /// HTTP requests the client sent per acquisition (waits, retries and releases included).
    pub client_requests_per_acquisition: f64,
    /// The most TCP connections this process held open to Consul during the run (sampled
    /// every 5 ms on a thread of its own, see `sys::connections_to`; `None` where it cannot be read, and for peers).
    pub connections_max: Option<usize>,
    pub per_worker_min: u64,
    pub per_worker_max: u64,
    /// For a peer: its acquisitions/s ÷ consul-lock's in the same scenario.
    pub acquisitions_ratio_to_library: Option<f64>,
    /// Raft writes per acquisition (every holding of the run, waiters' writes included), from
    /// the server's Raft index before and after; `None` where it was not counted.
    pub raft_writes_per_acquisition: Option<f64>,
    /// acquisitions/s ÷ (the write ceiling ÷ 2), the many-keys row only: the share of what a
    /// 2-write lock could reach on this server in this run.
    pub share_of_half_ceiling: Option<f64>,
}

/// One holding of a key.
struct Hold {
    worker: usize,
    key: usize,
    token: u64,
    acquired: Instant,
    release_called: Instant,
    released: Instant,
}

async fn worker(
    lock: Lock,
    worker: usize,
    key: usize,
    hold: Duration,
    end: Instant,
) -> Result<Vec<Hold>, String> {
    let mut holds = Vec::new();
    while Instant::now() < end {
        let guard = lock.acquire().await.map_err(|e| e.to_string())?;
        let acquired = Instant::now();
        let token = guard.fencing_token();
        if !hold.is_zero() {
            tokio::task::spawn_blocking(move || std::thread::sleep(hold))
                .await
                .map_err(|e| e.to_string())?;
        }
        let release_called = Instant::now();
        guard.release().await.map_err(|e| e.to_string())?;
        holds.push(Hold {
            worker,
            key,
            token,
            acquired,
            release_called,
            released: Instant::now(),
        });
    }
    Ok(holds)
}

/// The port of an address such as `http://127.0.0.1:8500`.
fn server_port(address: &str) -> Option<u16> {
    let rest = address.split("://").nth(1).unwrap_or(address);
    let host_port = rest.split('/').next()?;
    host_port.rsplit(':').next()?.parse().ok()
}

/// Runs one scenario on the current runtime, counting its Raft writes with `raft` (whose
/// readings must be made on this runtime).
pub async fn run(
    client: &Client,
    key_base: &str,
    s: Scenario,
    raft: &RaftIndex,
) -> Result<ContentionResult, String> {
    let raft0 = raft.mark().await;
    let raw = run_raw(client, key_base, s).await?;
    let raft_writes = raft.writes_between(raft0, raft.mark().await);
    let mut holds = raw.holds;
    let mut r = analyse(&mut holds, s, raw.workers, raw.start, raw.end);
    r.client_requests_per_acquisition = raw.requests as f64 / holds.len().max(1) as f64;
    r.connections_max = raw.connections_max;
    r.raft_writes_per_acquisition = crate::raft::per(raft_writes, holds.len() as u64);
    Ok(r)
}

/// What one scenario's workers did, before analysis.
pub struct Raw {
    holds: Vec<Hold>,
    workers: usize,
    start: Instant,
    end: Instant,
    pub requests: u64,
    pub connections_max: Option<usize>,
}

impl Raw {
    /// The holdings as a peer run (times in ns from `base`, which must not be later than any
    /// of them), for a worker process to hand to its parent.
    pub fn to_run(&self, base: Instant) -> ContentionRun {
        use consul_lock_bench::peers::PeerHold;
        let ns = |t: Instant| t.saturating_duration_since(base).as_nanos() as u64;
        let mut holds: Vec<&Hold> = self.holds.iter().collect();
        holds.sort_unstable_by_key(|h| h.token);
        ContentionRun {
            library: "consul-lock".into(),
            workers: self.workers,
            seconds: (self.end - self.start).as_secs_f64(),
            holds: holds
                .into_iter()
                .map(|h| PeerHold {
                    worker: h.worker,
                    acquired_ns: ns(h.acquired),
                    release_called_ns: ns(h.release_called),
                    released_ns: ns(h.released),
                })
                .collect(),
            client_requests: self.requests,
        }
    }
}

/// Runs one scenario's workers on the current runtime and returns what they did.
pub async fn run_raw(client: &Client, key_base: &str, s: Scenario) -> Result<Raw, String> {
    let workers = s.keys * s.workers_per_key;
    let requests0 = client.requests_sent();
    let start = Instant::now();
    let end = start + s.duration;
    let mut set = JoinSet::new();
    for k in 0..s.keys {
        let lock = Lock::new(format!("{key_base}/k{k}"))
            .client(client)
            .acquire_timeout(ACQUIRE_TIMEOUT);
        for w in 0..s.workers_per_key {
            let id = k * s.workers_per_key + w;
            set.spawn(worker(lock.clone(), id, k, s.hold, end));
        }
    }
    let port = server_port(client.address());
    // On a thread of its own, so that it never delays the workers' runtime.
    let sampler = std::thread::spawn(move || {
        let mut most = None;
        loop {
            if let Some(n) = port.and_then(crate::sys::connections_to) {
                most = Some(most.map_or(n, |m: usize| m.max(n)));
            }
            if Instant::now() >= end {
                return most;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    let mut holds = Vec::new();
    let mut first_error = None;
    while let Some(joined) = set.join_next().await {
        match joined.map_err(|e| format!("a worker panicked: {e}"))? {
            Ok(h) => holds.extend(h),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(Raw {
        holds,
        workers,
        start,
        end,
        requests: client.requests_sent() - requests0,
        connections_max: sampler.join().ok().flatten(),
    })
}

fn analyse(
    holds: &mut [Hold],
    s: Scenario,
    workers: usize,
    start: Instant,
    end: Instant,
) -> ContentionResult {
    // Acquisitions of one key are serialised, and fencing tokens grow: sorting by (key,
    // token) puts every key's holders in order.
    holds.sort_unstable_by_key(|h| (h.key, h.token));
    let mut per_worker = vec![0u64; workers];
    let mut handoff = Samples::with_capacity(holds.len());
    let mut early = 0;
    let mut held = Duration::ZERO;
    let mut counted = 0u64;
    for (i, h) in holds.iter().enumerate() {
        if h.acquired >= end {
            continue;
        }
        counted += 1;
        per_worker[h.worker] += 1;
        held += h.release_called - h.acquired;
        if i > 0 && holds[i - 1].key == h.key {
            let prev = &holds[i - 1];
            match h.acquired.checked_duration_since(prev.released) {
                Some(d) => handoff.push(d),
                None => {
                    early += 1;
                    handoff.push(Duration::ZERO);
                }
            }
        }
    }
    let seconds = (end - start).as_secs_f64();
    ContentionResult {
        client: "consul-lock",
        keys: s.keys,
        workers_per_key: s.workers_per_key,
        workers,
        hold_ms: s.hold.as_secs_f64() * 1e3,
        seconds,
        acquisitions: counted,
        acquisitions_per_s: counted as f64 / seconds,
        utilisation: (!s.hold.is_zero())
            .then(|| counted as f64 * s.hold.as_secs_f64() / (seconds * s.keys as f64)),
        measured_hold_us: if counted == 0 {
            0.0
        } else {
            held.as_secs_f64() * 1e6 / counted as f64
        },
        handoff: handoff.summary(),
        handoffs_before_release_returned: early,
        fairness: fairness(&per_worker),
        client_requests_per_acquisition: 0.0,
        connections_max: None,
        per_worker_min: per_worker.iter().copied().min().unwrap_or(0),
        per_worker_max: per_worker.iter().copied().max().unwrap_or(0),
        acquisitions_ratio_to_library: None,
        raft_writes_per_acquisition: None,
        share_of_half_ceiling: None,
    }
}

/// The same numbers, computed the same way, from a peer's raw holdings (one key). A peer's
/// client does not return fencing tokens, so its holders are ordered by the instant their
/// lock call returned: on one key that order is the order of the holders (each acquire
/// returns after the previous holder's release was applied).
pub fn from_peer(run: &ContentionRun, s: Scenario, client: &'static str) -> ContentionResult {
    let start = Instant::now();
    let at = |ns: u64| start + Duration::from_nanos(ns);
    let mut holds: Vec<Hold> = run
        .holds
        .iter()
        .map(|h| Hold {
            worker: h.worker.min(run.workers.saturating_sub(1)),
            key: 0,
            token: h.acquired_ns,
            acquired: at(h.acquired_ns),
            release_called: at(h.release_called_ns),
            released: at(h.released_ns),
        })
        .collect();
    let mut r = analyse(&mut holds, s, run.workers.max(1), start, start + s.duration);
    r.client = client;
    r.client_requests_per_acquisition = run.client_requests as f64 / run.holds.len().max(1) as f64;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(worker: usize, token: u64, t0: Instant, acq_ms: u64, rel_ms: u64) -> Hold {
        Hold {
            worker,
            key: 0,
            token,
            acquired: t0 + Duration::from_millis(acq_ms),
            release_called: t0 + Duration::from_millis(rel_ms),
            released: t0 + Duration::from_millis(rel_ms),
        }
    }

    #[test]
    fn handoffs_follow_token_order() {
        let t0 = Instant::now();
        // Given out of order; by token: w0 [0,10], w1 [11,21], w0 [24,34], w1 [200, ..] (after end).
        let mut holds = vec![
            hold(0, 30, t0, 24, 34),
            hold(1, 20, t0, 11, 21),
            hold(0, 10, t0, 0, 10),
            hold(1, 40, t0, 200, 210),
        ];
        let s = Scenario {
            keys: 1,
            workers_per_key: 2,
            hold: Duration::from_millis(10),
            duration: Duration::from_millis(100),
        };
        let r = analyse(&mut holds, s, 2, t0, t0 + s.duration);
        assert_eq!(r.acquisitions, 3);
        assert_eq!(r.handoff.count, 2);
        assert_eq!(r.handoff.p50_us, 1000.0);
        assert_eq!(r.handoff.p99_us, 3000.0);
        assert_eq!(r.per_worker_min, 1);
        assert_eq!(r.per_worker_max, 2);
        assert_eq!(r.fairness, Some(0.5));
        assert!((r.utilisation.unwrap() - 0.3).abs() < 1e-9);
        assert_eq!(r.measured_hold_us, 10_000.0);
    }

    #[test]
    fn peer_holds_are_analysed_like_our_own() {
        use consul_lock_bench::peers::PeerHold;
        let ms = |v: u64| v * 1_000_000;
        let h = |worker, a, r| PeerHold {
            worker,
            acquired_ns: ms(a),
            release_called_ns: ms(r),
            released_ns: ms(r),
        };
        let run = ContentionRun {
            library: "test".into(),
            workers: 2,
            seconds: 0.1,
            holds: vec![h(0, 0, 10), h(1, 11, 21), h(0, 24, 34), h(1, 200, 210)],
            client_requests: 12,
        };
        let s = Scenario {
            keys: 1,
            workers_per_key: 2,
            hold: Duration::from_millis(10),
            duration: Duration::from_millis(100),
        };
        let r = from_peer(&run, s, "peer");
        assert_eq!(r.client, "peer");
        assert_eq!(r.acquisitions, 3);
        assert_eq!(r.handoff.p50_us, 1000.0);
        assert_eq!(r.handoff.p99_us, 3000.0);
        assert_eq!(r.fairness, Some(0.5));
        assert_eq!(r.client_requests_per_acquisition, 3.0);
    }
}
