//! The lock protocol, as plain async functions over the [`api`](crate::api) calls. Nothing
//! here decides where it runs: work that must go on after its caller stops waiting is handed
//! to a [`Background`], given by the caller.
//!
//! - [`acquire`]: the engine, for every kind: local turns → a session → the attempt → on
//!   held, wait in the queue → retry; [`outcome`] chooses the error an acquire that gives up
//!   reports;
//! - [`kind`]: what a kind of lock supplies to the engine; [`one_key`], [`multi`] and
//!   [`semaphore`] are the kinds;
//! - [`pending`]: the session of an acquire in progress, destroyed if the acquire fails;
//! - [`key_state`]: what the client knows per key: local turns (tasks of this process
//!   acquiring one key take turns before Consul), queue memory, holders for re-entry;
//! - [`queue`]: the waiters' queue, and this process's memory of its recent releases;
//! - [`lease`]: a held lock's lease: renewal with its election grace, the key watch, release;
//! - [`multi`]: several keys at once, all or none, in one transaction;
//! - [`shared_session`]: the session a client's locks share, its renewal and its end;
//! - [`teardown`]: ending sessions for sure, through elections and lost answers;
//! - [`semaphore`]: Consul's semaphore layout (as Go's `api.Semaphore`): take and give back a slot;
//! - [`retry`]: the acquire deadline and jittered backoff.

pub(crate) mod acquire;
pub(crate) mod key_state;
pub(crate) mod kind;
pub(crate) mod lease;
pub(crate) mod multi;
pub(crate) mod one_key;
pub(crate) mod outcome;
pub(crate) mod pending;
pub(crate) mod queue;
pub(crate) mod retry;
pub(crate) mod semaphore;
pub(crate) mod shared_session;
pub(crate) mod teardown;

use std::future::Future;

/// What the protocol needs from whoever runs it: a place for work that must go on after its
/// caller stops waiting.
pub(crate) trait Background: Copy + Send + Sync + 'static {
    /// `work`, run in place; if the returned future is dropped half-way, the rest of `work`
    /// still runs to its end (and its output is dropped there, so its drop guards act).
    fn finish<T: Send + 'static>(
        self,
        work: impl Future<Output = T> + Send + 'static,
    ) -> impl Future<Output = T> + Send + 'static;

    /// Runs a cleanup to its end without waiting for it; it is counted until done, so that
    /// [`flush_releases`](crate::flush_releases) waits for it.
    fn detach(self, work: impl Future<Output = ()> + Send + 'static);

    /// Runs long-lived work (a shared session's renewal) in the background, uncounted: it
    /// ends on its own.
    fn spawn(self, work: impl Future<Output = ()> + Send + 'static);
}
