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
    /// The last transport failure that was not the deadline's (no answer within the client's
    /// request timeout, no connection): Consul was unreachable then.
    last_unreachable: Option<Error>,
}

impl Outcome {
    pub(crate) fn new(key: &str, deadline: Deadline) -> Outcome {
        Outcome {
            key: key.to_owned(),
            deadline,
            attempts: 0,
            blocked_by: None,
            last_answer: None,
            last_unreachable: None,
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

    /// The error to return for `e` when no retry is possible. A request that ran out of the
    /// time left before the deadline is explained by what was last known: the key held by
    /// another session (or under a lock-delay): not acquired; else Consul's own last answer (a
    /// 5xx); else an earlier request that got no answer within the client's request timeout,
    /// or no connection: unreachable; else not acquired, waiting for that request's answer.
    /// So Consul counts as unreachable only when it did not answer within the client's request
    /// timeout or could not be connected to.
    pub(crate) fn give_up(&mut self, e: Error) -> Error {
        if e.reached_deadline() {
            if self.blocked_by.is_none() {
                if let Some(known) = self.last_answer.take().or(self.last_unreachable.take()) {
                    self.record();
                    return known;
                }
                if let Error::Unreachable { operation, .. } = e {
                    self.blocked_by = Some(Blocker::Unanswered { operation });
                }
            }
            return self.not_acquired();
        }
        self.record();
        e
    }

    /// Remembers a transient error; whether a retry may follow (after the backoff).
    pub(crate) async fn retry_after(&mut self, e: &Error, backoff: &mut Backoff) -> bool {
        match e {
            Error::ConsulRefused { .. } => self.last_answer = Some(e.clone()),
            Error::Unreachable { .. } if !e.reached_deadline() => {
                self.last_unreachable = Some(e.clone());
            }
            _ => {}
        }
        backoff.wait(&self.deadline).await
    }
}
