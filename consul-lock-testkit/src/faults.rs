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
    /// A leader election runs until then: requests needing a leader fail at once.
    pub election_until: Option<Instant>,
}

impl LeaderState {
    pub(crate) fn has_leader(&self, now: Instant) -> bool {
        let in_period = match self.until {
            None => true,
            Some(u) => now < u,
        };
        let leaderless = self.leaderless && in_period;
        !leaderless && !self.in_election(now)
    }

    pub(crate) fn in_election(&self, now: Instant) -> bool {
        self.election_until.is_some_and(|u| now < u)
    }

    /// When the leader state changes next by itself (a timed period ends).
    pub(crate) fn next_change(&self, now: Instant) -> Option<Instant> {
        let leaderless_end = self.until.filter(|u| self.leaderless && *u > now);
        let election_end = self.election_until.filter(|u| *u > now);
        match (leaderless_end, election_end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The texts of Consul's RPC errors seen by a client agent during a leader election.
pub(crate) const ELECTION_ERRORS: [&str; 2] = [
    "rpc error making call: EOF",
    "rpc error getting client: failed to get conn: dial tcp 127.0.0.1:8300: connect: connection refused",
];

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
    /// Which election error text comes next (they alternate).
    election_errors: AtomicUsize,
    /// Writes still to be applied and then answered `500 rpc error making call: EOF`.
    pub apply_then_fail: AtomicUsize,
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
            election_errors: AtomicUsize::new(0),
            apply_then_fail: AtomicUsize::new(0),
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

    /// Starts a leader election that lasts until `until`.
    pub(crate) fn set_election(&self, until: Instant) {
        let now = Instant::now();
        self.leader.send_modify(|s| {
            if s.has_leader(now) || s.since.is_none() {
                s.since = Some(now);
            }
            s.election_until = Some(until);
        });
    }

    /// The next election error text (alternating between Consul's two).
    pub(crate) fn election_error(&self) -> &'static str {
        let n = self.election_errors.fetch_add(1, Ordering::SeqCst);
        ELECTION_ERRORS[n % ELECTION_ERRORS.len()]
    }

    /// Takes one "apply, then fail the answer" token, if any remain.
    pub(crate) fn take_apply_then_fail(&self) -> bool {
        self.apply_then_fail
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
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
