//! What a client knows about each key it locks: one [`KeyRecord`] per key, kept in the client
//! ([`KeyTable`], shared by its clones), with
//!
//! - its **local turns**: tasks of this process that lock the key take turns before they talk
//!   to Consul ([`take_turns`]); a turn lasts from the start of the acquisition to the end of
//!   the lock it took, so per key the process has one piece of Consul work at a time (at a
//!   semaphore, as many as it has slots);
//! - its **queue memory**: when this client last released the key, and whether the key had
//!   waiters when it took it (a releaser coming back at once yields to older waiters);
//! - its **holders**: the tasks (or threads) of this process that hold it, so that a holder
//!   asking again gets [`Error::Reentrant`] at once instead of waiting for itself ([`Caller`]):
//!   for a lock, a holder of the key; for a semaphore, a holder of as many slots as it has;
//! - what this client last **wrote or read of the key itself** (a semaphore's coordination
//!   key, which its holders rewrite with check-and-set), held while this client writes it, so
//!   that its own writers never race each other and need not read it first
//!   ([`KeyRecord::writer`]).
//!
//! One eviction rule: a record is forgotten once nothing uses it (no turn taken or awaited, no
//! acquisition in progress, no holder, no lease) and its queue memory is stale
//! ([`RECENT_RELEASE`] after the last release). Records let go while their memory is fresh are
//! swept when the table has doubled since the last sweep, so a client that locks ever new keys
//! stays small.
//!
//! A turn never outlives the lease of the lock it took: a guard that is forgotten, or a lock
//! whose TTL ran out without a renewal, passes its turn on when Consul may have freed the key
//! ([`LeaseEnd`]), so local waiters are never stuck behind a lock Consul no longer holds.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use tokio::time::Instant;

mod reentry;
mod turns;

pub(crate) use reentry::{Caller, HeldMark};
use reentry::{Holder, StillHeld};
use turns::Turns;
pub(crate) use turns::{take_turns, LeaseEnd, Turn};

/// How long after a release a new acquire of the same key by the same client yields to older
/// waiters: covers a releaser that takes the key again at once, not a later newcomer.
pub(crate) const RECENT_RELEASE: Duration = Duration::from_millis(50);

/// The table is swept of idle records once it holds this many, and then whenever it has
/// doubled since the last sweep.
const FIRST_SWEEP: usize = 64;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The records of one client, by key.
#[derive(Default)]
pub(crate) struct KeyTable {
    inner: Arc<Mutex<Table>>,
}

#[derive(Default)]
struct Table {
    records: HashMap<String, Arc<KeyRecord>>,
    sweep_at: usize,
}

impl KeyTable {
    /// The record of `key`, made if this client has none; a new one has `slots` turns (a
    /// semaphore's limit, else 1).
    fn record(&self, key: &str, slots: u32) -> Arc<KeyRecord> {
        let mut table = lock(&self.inner);
        if let Some(record) = table.records.get(key) {
            return record.clone();
        }
        if table.records.len() >= table.sweep_at.max(FIRST_SWEEP) {
            let now = Instant::now();
            table.records.retain(|_, r| !r.idle(0, now));
            table.sweep_at = table.records.len() * 2;
        }
        let record = Arc::new(KeyRecord {
            key: key.to_owned(),
            table: Arc::downgrade(&self.inner),
            turns: Turns::new(slots),
            memory: Mutex::new(Memory::default()),
            holders: Mutex::new(Vec::new()),
            written: tokio::sync::Mutex::new(Written::default()),
        });
        table.records.insert(key.to_owned(), record.clone());
        record
    }
}

/// What this client knows about one key.
pub(crate) struct KeyRecord {
    key: String,
    table: Weak<Mutex<Table>>,
    turns: Turns,
    memory: Mutex<Memory>,
    /// One entry per lock held (a holder of several of a semaphore's slots has several).
    holders: Mutex<Vec<(Holder, StillHeld)>>,
    written: tokio::sync::Mutex<Written>,
}

/// What this client last wrote of the key itself (a semaphore's `.lock`).
#[derive(Default)]
pub(crate) struct Written {
    /// Its value and `ModifyIndex` after this client's last write; `None`: read it first.
    pub(crate) value: Option<(Vec<u8>, u64)>,
    /// This client's sessions the value names (a semaphore's holders in this process).
    pub(crate) mine: BTreeSet<String>,
}

/// What the queue remembers of the key.
#[derive(Default)]
struct Memory {
    /// When this client last released the key.
    released: Option<Instant>,
    /// Whether the key's queue held live waiters when this client last took it.
    had_waiters: bool,
}

impl KeyRecord {
    /// The key.
    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Notes that this client just released the key.
    pub(crate) fn note_release(&self) {
        lock(&self.memory).released = Some(Instant::now());
    }

    /// Whether this client released the key within the last [`RECENT_RELEASE`].
    pub(crate) fn released_recently(&self) -> bool {
        lock(&self.memory)
            .released
            .is_some_and(|at| at.elapsed() < RECENT_RELEASE)
    }

    /// Notes whether the key's queue held live waiters when this client took it.
    pub(crate) fn note_waiters(&self, waiters: bool) {
        lock(&self.memory).had_waiters = waiters;
    }

    /// Whether the key's queue held live waiters when this client last took it.
    pub(crate) fn had_waiters(&self) -> bool {
        lock(&self.memory).had_waiters
    }

    /// The right to write the key itself with check-and-set, among this client's writers, in
    /// the order they asked, with what this client last wrote of it. Whoever writes it sets
    /// what it wrote, or `None` when it does not know.
    pub(crate) async fn writer(&self) -> tokio::sync::MutexGuard<'_, Written> {
        self.written.lock().await
    }

    /// The one eviction rule: nothing but the table and `users` other references use the
    /// record, no holder is registered, and its memory is stale.
    fn idle(self: &Arc<Self>, users: usize, now: Instant) -> bool {
        Arc::strong_count(self) <= 1 + users
            && lock(&self.holders).is_empty()
            && lock(&self.memory)
                .released
                .is_none_or(|at| now.duration_since(at) >= RECENT_RELEASE)
    }

    /// Forgets this record when it is idle; called by a user (`self` being its reference)
    /// that is about to let it go.
    fn forget_if_idle(self: &Arc<Self>) {
        let Some(table) = self.table.upgrade() else {
            return;
        };
        let mut table = lock(&table);
        let mine = table
            .records
            .get(&self.key)
            .is_some_and(|r| Arc::ptr_eq(r, self));
        if mine && self.idle(1, Instant::now()) {
            table.records.remove(&self.key);
        }
    }
}

/// Records in use by an acquisition, a held lock or its lease, with the slots the
/// acquisition asks for at each (1, or a semaphore's limit): each is forgotten, if idle, when
/// this is dropped.
pub(crate) struct Records {
    records: Vec<Arc<KeyRecord>>,
    slots: u32,
}

impl Records {
    /// The records, sorted by key.
    pub(crate) fn as_slice(&self) -> &[Arc<KeyRecord>] {
        &self.records
    }

    /// Notes that this client just released every one of these keys.
    pub(crate) fn note_release(&self) {
        for record in &self.records {
            record.note_release();
        }
    }

    /// Notes whether the keys' queues held live waiters when this client took them.
    pub(crate) fn note_waiters(&self, waiters: bool) {
        for record in &self.records {
            record.note_waiters(waiters);
        }
    }
}

impl Clone for Records {
    fn clone(&self) -> Records {
        Records {
            records: self.records.clone(),
            slots: self.slots,
        }
    }
}

impl Drop for Records {
    fn drop(&mut self) {
        for record in &self.records {
            record.forget_if_idle();
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Client;
    use std::time::Duration;

    use super::super::retry::Deadline;
    use super::*;

    fn client() -> Client {
        Client::builder().build().unwrap()
    }

    fn known(client: &Client) -> usize {
        lock(&client.inner.keys.inner).records.len()
    }

    #[test]
    fn releases_are_remembered_per_client_and_key() {
        let (a, b) = (client(), client());
        let remembered = |c: &Client, key| c.inner.keys.record(key, 1).released_recently();
        a.inner.keys.record("queue-test/k", 1).note_release();
        assert!(remembered(&a, "queue-test/k"));
        assert!(remembered(&a.clone(), "queue-test/k"));
        assert!(!remembered(&b, "queue-test/k"));
        assert!(!remembered(&a, "queue-test/other"));
    }

    #[tokio::test]
    async fn a_record_is_forgotten_when_unused_and_its_memory_is_stale() {
        let client = client();
        let caller = Caller::check(&client, ["evict/k"], 1).unwrap();
        let one_try = Deadline::new(Duration::ZERO);
        let turns = take_turns(caller.records(), &one_try).await.unwrap();
        let turns = turns.expect("a free turn");
        let lease = caller.records().clone();
        let mark = caller.register(|| true);
        lease.note_release();
        drop((mark, turns, lease));
        // Released a moment ago: remembered.
        assert_eq!(known(&client), 1);
        tokio::time::sleep(RECENT_RELEASE).await;
        // Let go but remembered until a sweep: the next one (at 64 records) forgets it, and
        // never a record in use; records let go with stale memory are forgotten at once.
        drop(Caller::check(&client, ["evict/let-go"], 1).unwrap());
        assert_eq!(known(&client), 1);
        tokio::time::sleep(RECENT_RELEASE).await;
        let in_use: Vec<Caller> = (0..FIRST_SWEEP)
            .map(|i| Caller::check(&client, [format!("evict/{i}").as_str()], 1).unwrap())
            .collect();
        assert_eq!(
            known(&client),
            FIRST_SWEEP,
            "evict/k swept, the ones in use kept"
        );
        assert!(!lock(&client.inner.keys.inner)
            .records
            .contains_key("evict/k"));
        drop(in_use);
        assert_eq!(known(&client), 0);
    }
}
