//! Locking several keys at once ([`AllKeys`], a [`Kind`] of the engine): one session, one
//! `/v1/txn` with a `lock` per key, so that Consul writes all of them or none. Two callers
//! locking the same keys in opposite order can never deadlock, as neither ever holds a part of
//! the set. While a key is held by another session the waiter queues for that key alone (as a
//! lock on it would: behind the waiter queued before it), then tries the whole set again; when
//! another key of the set keeps it out, it moves to that key's queue.

use super::kind::{Attempt, Kind, Try};
use super::queue::Waits;
use crate::api::MultiAttempt;
use crate::{Client, Result};

/// The most keys one lock may take: Consul 1.10 refuses transactions of more than 64
/// operations, and the lock transaction has exactly one operation per key.
pub const MAX_KEYS: usize = consul_lock_syntax::MAX_LOCK_KEYS;

/// Several keys locked at once, checked before any request.
pub(crate) struct AllKeys {
    /// The full keys, without duplicates, in the order given.
    pub(crate) keys: Vec<String>,
    /// The value of each key.
    pub(crate) values: Vec<Vec<u8>>,
    /// The keys as errors and logs name them ([`label`]).
    pub(crate) label: String,
}

/// How errors and logs name a set of keys: `a, b, c`.
pub(crate) fn label(keys: &[String]) -> String {
    keys.join(", ")
}

impl Waits for AllKeys {
    fn label(&self) -> &str {
        &self.label
    }
}

impl Kind for AllKeys {
    fn records(&self) -> (Vec<&str>, u32) {
        (self.keys.iter().map(String::as_str).collect(), 1)
    }

    /// With 64 keys the take cannot also delete the waiter's queue entry (Consul's limit of
    /// 64 operations): the entry then goes with a session of the lock's own.
    fn can_share(&self) -> bool {
        self.keys.len() < MAX_KEYS
    }

    fn span(&self) -> tracing::Span {
        tracing::info_span!(
            "consul_lock.acquire_all",
            keys = %self.label,
            waited_ms = tracing::field::Empty,
            attempts = tracing::field::Empty,
            fencing_token = tracing::field::Empty,
        )
    }

    async fn attempt(&self, client: &Client, attempt: Try<'_>) -> Result<Attempt> {
        {
            // The write that takes the keys also leaves the queue the waiter was in, when
            // that fits in the transaction (with 64 keys, the entry goes with the session).
            let leave = attempt.entry.filter(|_| self.keys.len() < MAX_KEYS);
            let (keys, values) = (&self.keys, &self.values);
            let taken = client
                .txn_lock_all(
                    &self.label,
                    keys,
                    values,
                    attempt.session,
                    leave,
                    attempt.timeout,
                )
                .await?;
            Ok(match taken {
                MultiAttempt::Acquired { modify_indexes } => Attempt::Taken {
                    keys: keys.iter().cloned().zip(modify_indexes).collect(),
                    waiters: false,
                },
                MultiAttempt::Held { index } => {
                    // The plan has at least one key; Consul names the held one.
                    let key = keys.get(index).or(keys.last()).cloned().unwrap_or_default();
                    tracing::trace!(key = %key, "a key is held; waiting in its queue");
                    Attempt::Held { queue_of: key }
                }
                MultiAttempt::LockDelay { .. } => Attempt::LockDelay,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_label_names_every_key() {
        let keys = vec!["locks/a".to_owned(), "locks/b".to_owned()];
        assert_eq!(label(&keys), "locks/a, locks/b");
    }
}
