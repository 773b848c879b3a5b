//! A lock on one key, the engine's simplest kind: one transaction takes the key, leaves the
//! key's queue and reads it.

use super::kind::{Attempt, Kind, Try};
use super::queue::{self, Waits};
use crate::api::LockAttempt;
use crate::{Client, Result};

/// A lock on one key ([`Lock`](crate::Lock)): the lock transaction takes the key and leaves
/// the key's queue in one write, and reads the queue in the same round trip.
pub(crate) struct LockKey {
    /// The full key.
    pub(crate) key: String,
    /// The value stored in the key.
    pub(crate) value: Vec<u8>,
}

impl Waits for LockKey {
    fn label(&self) -> &str {
        &self.key
    }
}

impl Kind for LockKey {
    fn span(&self) -> tracing::Span {
        tracing::info_span!(
            "consul_lock.acquire",
            key = %self.key,
            waited_ms = tracing::field::Empty,
            attempts = tracing::field::Empty,
            fencing_token = tracing::field::Empty,
        )
    }

    fn records(&self) -> (Vec<&str>, u32) {
        (vec![self.key.as_str()], 1)
    }

    fn first_queue(&self) -> Option<&str> {
        Some(&self.key)
    }

    async fn attempt(&self, client: &Client, attempt: Try<'_>) -> Result<Attempt> {
        let (key, session) = (&self.key, attempt.session);
        let queue = queue::prefix(key);
        let locked = client
            .txn_lock(key, &self.value, session, &queue, attempt.timeout)
            .await?;
        match locked {
            LockAttempt::Acquired {
                modify_index,
                queue: waiters,
            } => {
                if attempt.yield_to_older && queue::older_waiter(&waiters, &queue, session) {
                    // Taken ahead of older waiters (a releaser overtaking the queue): give it
                    // back (deleted, as a release does, so that no key stays without a
                    // session) and queue up, so that waiters are served in order. Should the
                    // give-back fail, dropping the session destroys it, which deletes the key.
                    tracing::trace!(
                        fencing_token = modify_index,
                        "yielding the key to an older waiter"
                    );
                    client.txn_give_back(key, session, attempt.timeout).await?;
                    return Ok(Attempt::Held {
                        queue_of: key.clone(),
                    });
                }
                Ok(Attempt::Taken {
                    keys: vec![(key.clone(), modify_index)],
                    waiters: waiters.iter().any(|e| e.session.is_some()),
                })
            }
            LockAttempt::Held => Ok(Attempt::Held {
                queue_of: key.clone(),
            }),
            LockAttempt::LockDelay => Ok(Attempt::LockDelay),
        }
    }
}
