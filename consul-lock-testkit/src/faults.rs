//! Fault injection state: leaderless periods, latency, forced errors, stalls and dropped
//! connections. Shared by the request handlers and the [`TestServer`](crate::TestServer)
//! handle; nothing here needs a timer task (a timed leaderless period is a deadline).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Whether the cluster has a leader, as a function of time.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LeaderState {
    pub leaderless: bool,
    /// A timed leaderless period ends here.
    pub until: Option<Instant>,
    /// When the leader was lost (for `X-Consul-LastContact`).
    pub since: Option<Instant>,
}

impl LeaderState {
    pub(crate) fn has_leader(&self, now: Instant) -> bool {
        let in_period = match self.until {
            None => true,
            Some(u) => now < u,
        };
        !(self.leaderless && in_period)
    }
}

/// A canned answer for the next requests.
#[derive(Clone, Debug)]
pub(crate) struct FailNext {
    pub remaining: usize,
    pub status: u16,
    pub body: String,
}

pub(crate) struct Faults {
    pub leader: watch::Sender<LeaderState>,
    pub latency: Mutex<Duration>,
    pub fail_next: Mutex<Option<FailNext>>,
    pub stalled: watch::Sender<bool>,
    pub drop_next: AtomicUsize,
    /// Bumped by `drop_connections`; every connection task watches it.
    pub drop_all: watch::Sender<u64>,
    drop_gen: AtomicU64,
}

impl Faults {
    pub(crate) fn new() -> Faults {
        Faults {
            leader: watch::Sender::new(LeaderState::default()),
            latency: Mutex::new(Duration::ZERO),
            fail_next: Mutex::new(None),
            stalled: watch::Sender::new(false),
            drop_next: AtomicUsize::new(0),
            drop_all: watch::Sender::new(0),
            drop_gen: AtomicU64::new(0),
        }
    }

    pub(crate) fn leader_state(&self) -> LeaderState {
        *self.leader.borrow()
    }

    pub(crate) fn set_leaderless(&self, on: bool, until: Option<Instant>) {
        let now = Instant::now();
        self.leader.send_modify(|s| {
            let had = s.has_leader(now);
            s.leaderless = on;
            s.until = if on { until } else { None };
            if on && (had || s.since.is_none()) {
                s.since = Some(now);
            }
        });
    }

    pub(crate) fn latency(&self) -> Duration {
        *self.latency.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_latency(&self, d: Duration) {
        *self.latency.lock().unwrap_or_else(|e| e.into_inner()) = d;
    }

    pub(crate) fn set_fail_next(&self, n: usize, status: u16, body: &str) {
        *self.fail_next.lock().unwrap_or_else(|e| e.into_inner()) = (n > 0).then(|| FailNext {
            remaining: n,
            status,
            body: body.to_string(),
        });
    }

    /// Takes one forced failure, if any remain.
    pub(crate) fn take_fail(&self) -> Option<(u16, String)> {
        let mut g = self.fail_next.lock().unwrap_or_else(|e| e.into_inner());
        let f = g.as_mut()?;
        f.remaining -= 1;
        let out = (f.status, f.body.clone());
        if f.remaining == 0 {
            *g = None;
        }
        Some(out)
    }

    /// Takes one "drop this request" token, if any remain.
    pub(crate) fn take_drop(&self) -> bool {
        self.drop_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    pub(crate) fn drop_all_now(&self) {
        let g = self.drop_gen.fetch_add(1, Ordering::SeqCst) + 1;
        self.drop_all.send_replace(g);
    }
}
