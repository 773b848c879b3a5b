//! The layout of a lock's queue of waiters in Consul: the one place that knows it, so that a
//! change of layout in the runtime is a change here only.
//!
//! Today a waiter holds `<key>/.waiters/<session>` with its own session
//! ([`WAITERS_SUFFIX`]); the waiter whose entry has the lowest `CreateIndex` goes first.

use consul_lock_runtime::WAITERS_SUFFIX;

/// The prefix under which the waiters of the lock `consul_key` queue.
pub fn queue_prefix(consul_key: &str) -> String {
    format!("{consul_key}{WAITERS_SUFFIX}")
}

/// When `key` is a queue entry: the lock it waits for.
pub fn lock_of_entry(key: &str) -> Option<&str> {
    key.find(WAITERS_SUFFIX).map(|at| &key[..at])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_belong_to_their_lock() {
        let prefix = queue_prefix("locks/ephemeral/send/user-42");
        let entry = format!("{prefix}0f6c2a1e-1111-2222-3333-444455556666");
        assert_eq!(lock_of_entry(&entry), Some("locks/ephemeral/send/user-42"));
        assert_eq!(lock_of_entry("locks/ephemeral/send/user-42"), None);
    }
}
