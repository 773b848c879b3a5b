//! What a kind of lock supplies to the acquisition engine ([`acquire`](super::acquire)): its
//! attempt, what its waiters watch, what undoes an attempt whose outcome is unknown; and what
//! an attempt works with and ends with.

use std::future::Future;
use std::time::Duration;

use super::key_state::Records;
use super::queue::Waits;
use crate::{Client, KvEntry, Result};

/// What differs between the kinds of lock; the engine does the rest.
/// What the queue asks of it ([`Waits`]: its label, what the first waiter watches) is a part.
pub(crate) trait Kind: Waits + Send + Sync + 'static {
    /// The span the acquire runs in, with the fields `waited_ms` and `attempts` (and
    /// `fencing_token`) left empty for the engine.
    fn span(&self) -> tracing::Span;

    /// The keys of the client's records the lock uses (their local turns, holders and
    /// memory), and how many turns each has: a lock's key (1), each of several keys (1), a
    /// semaphore's `.lock` (its limit).
    fn records(&self) -> (Vec<&str>, u32);

    /// How errors name the lock of the record `key` (a semaphore: by its prefix).
    fn name_of(&self, key: &str) -> String {
        key.to_owned()
    }

    /// The queue a client that released the lock a moment ago joins at once, when the lock
    /// had waiters then (instead of taking it ahead of them and giving it back); `None`:
    /// always try first.
    fn first_queue(&self) -> Option<&str> {
        None
    }

    /// One attempt to take the lock with the session in `attempt`.
    fn attempt(
        &self,
        client: &Client,
        attempt: Try<'_>,
    ) -> impl Future<Output = Result<Attempt>> + Send;

    /// What undoes the writes of an attempt with `session` whose outcome is unknown (its
    /// answer lost, or the acquire cancelled during it) that the session's end does not undo,
    /// should the acquire then end without the lock: a semaphore's place in `.lock`. `None`:
    /// nothing to undo (the session's end deletes everything it took).
    fn undo(&self, _client: &Client, _session: &str, _records: &Records) -> Option<Undo> {
        None
    }

    /// Whether the lock may be taken with the client's shared session: everything it writes
    /// is deleted by its give-back and by the take (a queue entry), not by the session's end.
    fn can_share(&self) -> bool {
        true
    }
}

/// Work that undoes what an attempt may have written ([`Kind::undo`]).
pub(crate) type Undo = futures::future::BoxFuture<'static, ()>;

/// What one attempt works with.
pub(crate) struct Try<'a> {
    pub(crate) session: &'a str,
    /// The client's records of the lock's keys (a semaphore remembers its coordination key
    /// there).
    pub(crate) records: &'a Records,
    /// The session's entry in a queue of waiters, if it waits in one: the write that takes
    /// the lock deletes it, which wakes the next waiter.
    pub(crate) entry: Option<&'a str>,
    /// What the last wait read (a semaphore's prefix), so that the attempt need not read it
    /// again.
    pub(crate) seen: Option<Vec<KvEntry>>,
    /// Give back a lock taken ahead of older waiters: this client released it a moment ago
    /// (so a releaser coming back at once does not overtake the queue).
    pub(crate) yield_to_older: bool,
    /// The timeout of each request.
    pub(crate) timeout: Duration,
}

/// What one attempt ended with.
pub(crate) enum Attempt {
    /// Taken: each key now held, with the `ModifyIndex` of the write that took it (its fencing
    /// token); whether live waiters were queued then.
    Taken {
        keys: Vec<(String, u64)>,
        waiters: bool,
    },
    /// Held by another session: wait in the queue of `queue_of`.
    Held { queue_of: String },
    /// Free, but a lock-delay runs.
    LockDelay,
    /// Another writer came first (a check-and-set lost): try again at once.
    Raced,
}
