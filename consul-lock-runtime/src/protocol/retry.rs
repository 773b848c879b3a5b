//! Retry policy: the acquire deadline and jittered exponential backoff that never sleeps past it.

use std::time::Duration;

use tokio::time::Instant;

/// Under this much time left no request can complete: the deadline counts as passed.
pub(crate) const MIN_LEFT: Duration = Duration::from_millis(1);

/// When an acquire must be done by. `None` means "one try": every step is made once, each
/// request bounded by the client's request timeout.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline {
    pub start: Instant,
    at: Option<Instant>,
}

impl Deadline {
    pub(crate) fn new(timeout: Duration) -> Deadline {
        let start = Instant::now();
        Deadline {
            start,
            at: (!timeout.is_zero()).then(|| start + timeout),
        }
    }

    /// Time left, or `None` for a one-try acquire.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        self.at
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    /// Whether a failed step may be tried again.
    pub(crate) fn can_retry(&self) -> bool {
        self.remaining().is_some_and(|r| r >= MIN_LEFT)
    }

    /// The timeout for the next request: the client's request timeout, shortened to the time
    /// left. `None` when the deadline has passed.
    pub(crate) fn request_timeout(&self, client_timeout: Duration) -> Option<Duration> {
        match self.remaining() {
            None => Some(client_timeout),
            Some(r) if r >= MIN_LEFT => Some(r.min(client_timeout)),
            Some(_) => None,
        }
    }

    /// The moment it passes, or `None` for a one-try acquire.
    pub(crate) fn until(&self) -> Option<Instant> {
        self.at
    }

    pub(crate) fn waited(&self) -> Duration {
        self.start.elapsed()
    }
}

/// Jittered exponential backoff: 10 ms, 20 ms, … up to 500 ms, each delay drawn from
/// [d/2, d] so that many waiters do not retry in lockstep.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    first: Duration,
    max: Duration,
}

/// The first retry comes quickly: most transient refusals (a lock-delay just ending, one
/// 5xx) clear within milliseconds.
const FIRST: Duration = Duration::from_millis(10);
/// Retries stay at most half a second apart, so that an acquire notices a recovered Consul
/// soon without hammering a struggling one.
const MAX: Duration = Duration::from_millis(500);

impl Backoff {
    /// The acquire and release policy: 10 ms doubling up to 500 ms.
    pub(crate) fn new() -> Backoff {
        Backoff::between(FIRST, MAX)
    }

    /// Delays from `first` doubling up to `max` (for loops without a deadline, such as the
    /// key watch of a held lock).
    pub(crate) fn between(first: Duration, max: Duration) -> Backoff {
        Backoff {
            next: first,
            first,
            max,
        }
    }

    /// Starts again from the first delay (after a success).
    pub(crate) fn reset(&mut self) {
        self.next = self.first;
    }

    pub(crate) fn next_delay(&mut self) -> Duration {
        let cap = self.next;
        self.next = (cap * 2).min(self.max);
        let half = cap / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Sleeps for the next delay, but never past the deadline. Returns false (without
    /// sleeping) when no retry is possible.
    pub(crate) async fn wait(&mut self, deadline: &Deadline) -> bool {
        let Some(remaining) = deadline.remaining() else {
            return false;
        };
        if remaining < MIN_LEFT {
            return false;
        }
        tokio::time::sleep(self.next_delay().min(remaining)).await;
        deadline.can_retry()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let mut b = Backoff::new();
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert!(delays[0] >= Duration::from_millis(5) && delays[0] <= FIRST);
        assert!(delays.iter().all(|d| *d <= MAX));
        assert!(delays[9] >= MAX / 2);
    }

    #[tokio::test]
    async fn one_try_deadline_never_retries() {
        let d = Deadline::new(Duration::ZERO);
        assert!(!d.can_retry());
        assert_eq!(
            d.request_timeout(Duration::from_secs(3)),
            Some(Duration::from_secs(3))
        );
        assert!(!Backoff::new().wait(&d).await);
    }

    #[tokio::test]
    async fn requests_are_bounded_by_the_deadline() {
        let d = Deadline::new(Duration::from_millis(200));
        let t = d.request_timeout(Duration::from_secs(10)).unwrap();
        assert!(t <= Duration::from_millis(200));
    }
}
