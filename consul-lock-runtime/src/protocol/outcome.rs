//! How an acquire that gives up explains itself: which error it reports, chosen from what it
//! saw, and the attempt count and wait it records on its span.

use super::retry::{Backoff, Deadline};
use crate::{Blocker, Error};

/// What an acquire has seen so far, to explain itself if it gives up.
pub(crate) struct Outcome {
    key: String,
    pub(crate) deadline: Deadline,
    pub(crate) attempts: u32,
    /// What kept the key from the last attempt (another holder, or a lock-delay), if anything.
    pub(crate) blocked_by: Option<Blocker>,
    /// The last error Consul itself answered (a 5xx), more telling than a timeout.
    last_answer: Option<Error>,
}

impl Outcome {
    pub(crate) fn new(key: &str, deadline: Deadline) -> Outcome {
        Outcome {
            key: key.to_owned(),
            deadline,
            attempts: 0,
            blocked_by: None,
            last_answer: None,
        }
    }

    /// Records the wait and the attempts on the current span.
    pub(crate) fn record(&self) {
        let span = tracing::Span::current();
        span.record("waited_ms", self.deadline.waited().as_millis() as u64);
        span.record("attempts", self.attempts);
    }

    /// The error for "the key stayed blocked until the deadline".
    pub(crate) fn not_acquired(&self) -> Error {
        self.record();
        Error::NotAcquired {
            key: self.key.clone(),
            waited: self.deadline.waited(),
            attempts: self.attempts,
            blocked_by: self.blocked_by.unwrap_or(Blocker::Holder),
        }
    }

    /// The error to return for `e` when no retry is possible: a request cut off by the
    /// deadline is reported as what was last known (held by another session, or Consul's
    /// own last answer), not as "unreachable".
    pub(crate) fn give_up(&mut self, e: Error) -> Error {
        let cut_by_deadline =
            matches!(e, Error::Unreachable { .. }) && self.deadline.remaining().is_some();
        if cut_by_deadline && self.blocked_by.is_some() {
            return self.not_acquired();
        }
        if cut_by_deadline {
            if let Some(answer) = self.last_answer.take() {
                self.record();
                return answer;
            }
        }
        self.record();
        e
    }

    /// Remembers a transient error; whether a retry may follow (after the backoff).
    pub(crate) async fn retry_after(&mut self, e: &Error, backoff: &mut Backoff) -> bool {
        if matches!(e, Error::ConsulRefused { .. }) {
            self.last_answer = Some(e.clone());
        }
        backoff.wait(&self.deadline).await
    }
}
