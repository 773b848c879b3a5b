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

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::ThreadId;
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::retry::Deadline;
use crate::{Client, Error, Result};

/// How long after a release a new acquire of the same key by the same client yields to older
/// waiters: covers a releaser that takes the key again at once, not a later newcomer.
pub(crate) const RECENT_RELEASE: Duration = Duration::from_millis(50);

/// The table is swept of idle records once it holds this many, and then whenever it has
/// doubled since the last sweep.
const FIRST_SWEEP: usize = 64;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A lock whose lease bounds a turn: the turn passes on once Consul may have freed the key.
pub(crate) trait LeaseEnd: Send + Sync {
    /// The moment after which Consul may have freed the key (it moves on with each renewal).
    fn valid_until(&self) -> Instant;
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
            known: tokio::sync::Mutex::new(None),
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
    known: tokio::sync::Mutex<Option<Known>>,
}

/// The key's value and `ModifyIndex` as this client last wrote or read them.
#[derive(Clone, Debug)]
pub(crate) struct Known {
    pub(crate) value: Vec<u8>,
    pub(crate) index: u64,
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
    /// the order they asked, with what this client last wrote or read of it (`None`: read it
    /// first). Whoever writes it sets what it wrote, or `None` when the write failed.
    pub(crate) async fn writer(&self) -> tokio::sync::MutexGuard<'_, Option<Known>> {
        self.known.lock().await
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

// ---- local turns -------------------------------------------------------------------------

/// The turns at one key: `slots` permits (1, or a semaphore's limit).
struct Turns {
    slots: u32,
    /// One permit per turn. Tokio's semaphore serves its waiters first come, first served.
    fifo: Arc<Semaphore>,
    state: Mutex<TurnState>,
    /// Signalled when a turn's holder takes its lock (the waiters then watch its lease), and
    /// when a turn ends.
    changed: Notify,
}

#[derive(Default)]
struct TurnState {
    /// The number of the latest turn.
    last: u64,
    /// The turns that hold a permit, each with the lock it took (once taken). A turn taken
    /// away (its lease ran out) is no longer here, and its permit is no longer a turn.
    active: HashMap<u64, Option<Weak<dyn LeaseEnd>>>,
}

impl Turns {
    fn new(slots: u32) -> Turns {
        Turns {
            slots,
            fifo: Arc::new(Semaphore::new(slots as usize)),
            state: Mutex::new(TurnState::default()),
            changed: Notify::new(),
        }
    }

    /// When the first lease of the current turns ends, if any of them holds a lock.
    fn first_lease_end(&self) -> Option<Instant> {
        lock(&self.state)
            .active
            .values()
            .filter_map(|l| Some(l.as_ref()?.upgrade()?.valid_until()))
            .min()
    }

    /// Takes the turn from holders whose lease has run out; the next waiters get them.
    fn revoke_lapsed(&self, key: &str) {
        let now = Instant::now();
        let mut state = lock(&self.state);
        let lapsed: Vec<u64> = state
            .active
            .iter()
            .filter(|(_, l)| {
                l.as_ref()
                    .and_then(Weak::upgrade)
                    .is_some_and(|lease| now >= lease.valid_until())
            })
            .map(|(n, _)| *n)
            .collect();
        for n in lapsed {
            tracing::debug!(key = %key, "a local holder's lease ran out: its turn passes on");
            state.active.remove(&n);
            self.fifo.add_permits(1);
        }
    }

    /// Waits until a current holder's lease may have run out (or the holders change).
    async fn lapse(&self) {
        let changed = self.changed.notified();
        match self.first_lease_end() {
            Some(end) => {
                tokio::select! {
                    () = changed => {}
                    () = tokio::time::sleep_until(end) => {}
                }
            }
            None => changed.await,
        }
    }
}

/// This task's turn at a key. The next local task's turn comes when it is dropped: an
/// acquisition that gave up drops it at once; one that took the lock hands it to the lock
/// ([`Turn::attach`]), which drops it when the lock ends.
pub(crate) struct Turn {
    record: Arc<KeyRecord>,
    number: u64,
    permit: Option<OwnedSemaphorePermit>,
}

impl Turn {
    fn new(record: Arc<KeyRecord>, permit: OwnedSemaphorePermit) -> Turn {
        let number = {
            let mut state = lock(&record.turns.state);
            state.last += 1;
            let number = state.last;
            state.active.insert(number, None);
            number
        };
        Turn {
            record,
            number,
            permit: Some(permit),
        }
    }

    /// The turn now lasts as long as `lease`: the waiters pass it on once the lease has run
    /// out, should the lock never be released (a forgotten guard).
    pub(crate) fn attach(&self, lease: Weak<dyn LeaseEnd>) {
        let turns = &self.record.turns;
        match lock(&turns.state).active.get_mut(&self.number) {
            Some(slot) => *slot = Some(lease),
            None => return,
        }
        turns.changed.notify_waiters();
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let turns = &self.record.turns;
        {
            let mut state = lock(&turns.state);
            let permit = self.permit.take();
            if state.active.remove(&self.number).is_none() {
                // A waiter took the turn away and added a permit in this one's place.
                if let Some(permit) = permit {
                    permit.forget();
                }
            } else {
                drop(permit);
            }
        }
        turns.changed.notify_waiters();
        self.record.forget_if_idle();
    }
}

/// Waits for this task's turns at each of `records` (in their order: sorted by key, so that
/// two tasks locking overlapping sets never wait for each other in a circle), among the tasks
/// of this process that use the same client, in the order they asked. A free turn is taken at
/// once. `Ok(None)`: the deadline passed first; a one-try acquire (`deadline` allows no retry)
/// never waits here.
///
/// # Errors
///
/// [`Error::InvalidOption`] (`limit`) when a record has other slots than the acquisition asks
/// for (this process uses the semaphore with another limit at the same time).
pub(crate) async fn take_turns(
    records: &Records,
    deadline: &Deadline,
) -> Result<Option<Vec<Turn>>> {
    let slots = records.slots;
    let mut turns = Vec::with_capacity(records.records.len());
    for record in &records.records {
        if record.turns.slots != slots {
            return Err(Error::InvalidOption {
                option: "limit",
                reason: format!(
                    "this process uses `{}` with limit {} already, and this holder asks for \
                     limit {slots}; every holder must use the same limit",
                    record.key, record.turns.slots
                ),
            });
        }
        match take(record, deadline).await {
            Some(turn) => turns.push(turn),
            None => return Ok(None),
        }
    }
    Ok(Some(turns))
}

async fn take(record: &Arc<KeyRecord>, deadline: &Deadline) -> Option<Turn> {
    let turns = &record.turns;
    if let Ok(permit) = turns.fifo.clone().try_acquire_owned() {
        return Some(Turn::new(record.clone(), permit));
    }
    if !deadline.can_retry() {
        // One try: a lapsed holder's turn is taken over, a live one means "held".
        turns.revoke_lapsed(&record.key);
        let permit = turns.fifo.clone().try_acquire_owned().ok()?;
        return Some(Turn::new(record.clone(), permit));
    }
    let until = Instant::now() + deadline.remaining()?;
    // One acquire future for the whole wait: dropping it would lose the place in the FIFO.
    let acquire = turns.fifo.clone().acquire_owned();
    tokio::pin!(acquire);
    let permit = loop {
        tokio::select! {
            biased;
            permit = &mut acquire => break permit.ok()?,
            () = tokio::time::sleep_until(until) => return None,
            () = turns.lapse() => turns.revoke_lapsed(&record.key),
        }
    };
    Some(Turn::new(record.clone(), permit))
}

// ---- re-entry ----------------------------------------------------------------------------

/// Who holds a key within this process: the tokio task the acquire was called from
/// ([`tokio::task::try_id`], unique within the process, so tasks of different runtimes are
/// told apart), or the thread when it is not called from inside a task. A spawned task is
/// another holder: it waits for the key like any other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Holder {
    Task(tokio::task::Id),
    Thread(ThreadId),
}

impl Holder {
    /// The caller: its tokio task, else its thread.
    fn current() -> Holder {
        match tokio::task::try_id() {
            Some(id) => Holder::Task(id),
            None => Holder::Thread(std::thread::current().id()),
        }
    }
}

/// Whether the guard still holds its keys (false once the lock is known lost or its lease ran
/// out: asking for the key again is then not re-entry).
type StillHeld = Arc<dyn Fn() -> bool + Send + Sync>;

/// The caller of an acquire and the records of the keys it asks for, captured where the
/// acquire is called (the acquisition itself may run on another thread).
pub(crate) struct Caller {
    holder: Holder,
    /// Sorted by key, without duplicates.
    records: Records,
}

impl Caller {
    /// The calling holder, asking `client` for `keys`; `slots` as for [`take_turns`].
    ///
    /// # Errors
    ///
    /// [`Error::Reentrant`] (naming the key) when this holder already holds one of `keys`
    /// through this client (or a clone of it) as many times as it has turns (a lock: once; a
    /// semaphore: every slot), and those locks are not lost.
    pub(crate) fn check<'a>(
        client: &Client,
        keys: impl IntoIterator<Item = &'a str>,
        slots: u32,
    ) -> Result<Caller> {
        let holder = Holder::current();
        let mut keys: Vec<&str> = keys.into_iter().collect();
        keys.sort_unstable();
        keys.dedup();
        let table = &client.inner.keys;
        let records = Records {
            records: keys.iter().map(|k| table.record(k, slots)).collect(),
            slots,
        };
        for record in records.as_slice() {
            let mine: Vec<StillHeld> = lock(&record.holders)
                .iter()
                .filter(|(h, _)| *h == holder)
                .map(|(_, still_held)| still_held.clone())
                .collect();
            let held = mine.iter().filter(|still_held| still_held()).count();
            if held >= record.turns.slots as usize {
                return Err(Error::Reentrant {
                    key: record.key.clone(),
                });
            }
        }
        Ok(Caller { holder, records })
    }

    /// The records of the keys asked for, sorted by key.
    pub(crate) fn records(&self) -> &Records {
        &self.records
    }

    /// Notes that the caller now holds the keys, until the returned mark is dropped or
    /// `still_held` answers false.
    pub(crate) fn register(
        self,
        still_held: impl Fn() -> bool + Send + Sync + 'static,
    ) -> HeldMark {
        let still_held: StillHeld = Arc::new(still_held);
        for record in self.records.as_slice() {
            lock(&record.holders).push((self.holder, still_held.clone()));
        }
        HeldMark {
            holder: self.holder,
            still_held,
            records: self.records,
        }
    }
}

/// Keys held by one holder; dropping it (when the guard is released or dropped) forgets them.
pub(crate) struct HeldMark {
    holder: Holder,
    /// This mark's entry among each record's holders.
    still_held: StillHeld,
    records: Records,
}

impl Drop for HeldMark {
    fn drop(&mut self) {
        for record in self.records.as_slice() {
            lock(&record.holders)
                .retain(|(h, s)| !(*h == self.holder && Arc::ptr_eq(s, &self.still_held)));
        }
        // The records go right after (and are forgotten if idle).
    }
}

impl std::fmt::Debug for HeldMark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.records.as_slice().iter().map(|r| r.key()).collect();
        f.debug_struct("HeldMark")
            .field("holder", &self.holder)
            .field("keys", &keys)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client::builder().build().unwrap()
    }

    fn known(client: &Client) -> usize {
        lock(&client.inner.keys.inner).records.len()
    }

    #[test]
    fn a_holder_asking_again_is_refused_until_the_mark_is_dropped() {
        let client = client();
        let mark = Caller::check(&client, ["reentry/k"], 1)
            .unwrap()
            .register(|| true);
        let again = Caller::check(&client, ["reentry/k"], 1).err().unwrap();
        assert!(matches!(again, Error::Reentrant { ref key } if key == "reentry/k"));
        // A set holding the key: refused too, naming the held key.
        let set = Caller::check(&client, ["reentry/a", "reentry/k"], 1)
            .err()
            .unwrap();
        assert!(matches!(set, Error::Reentrant { ref key } if key == "reentry/k"));
        // Another key, another client, another thread: not re-entry.
        assert!(Caller::check(&client, ["reentry/other"], 1).is_ok());
        assert!(Caller::check(&self::client(), ["reentry/k"], 1).is_ok());
        let c = client.clone();
        std::thread::spawn(move || assert!(Caller::check(&c, ["reentry/k"], 1).is_ok()))
            .join()
            .unwrap();
        drop(mark);
        assert!(Caller::check(&client, ["reentry/k"], 1).is_ok());
    }

    #[test]
    fn a_semaphore_holder_is_refused_only_once_it_holds_every_slot() {
        let client = client();
        let first = Caller::check(&client, ["reentry/sem/.lock"], 2)
            .unwrap()
            .register(|| true);
        let second = Caller::check(&client, ["reentry/sem/.lock"], 2)
            .expect("one slot held of two")
            .register(|| true);
        assert!(matches!(
            Caller::check(&client, ["reentry/sem/.lock"], 2),
            Err(Error::Reentrant { .. })
        ));
        drop(first);
        assert!(Caller::check(&client, ["reentry/sem/.lock"], 2).is_ok());
        drop(second);
    }

    #[test]
    fn a_lost_lock_is_not_held_any_more() {
        let client = client();
        let _mark = Caller::check(&client, ["reentry/lost"], 1)
            .unwrap()
            .register(|| false);
        assert!(Caller::check(&client, ["reentry/lost"], 1).is_ok());
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

    #[tokio::test]
    async fn turns_are_taken_in_turn_and_a_semaphore_has_its_slots() {
        let client = client();
        let patient = Deadline::new(Duration::from_secs(5));
        let one_try = Deadline::new(Duration::ZERO);
        let lock_caller = Caller::check(&client, ["turns/k"], 1).unwrap();
        let records = lock_caller.records();
        let first = take_turns(records, &patient).await.unwrap().unwrap();
        assert!(take_turns(records, &one_try).await.unwrap().is_none());
        drop(first);
        assert!(take_turns(records, &one_try).await.unwrap().is_some());
        let sem = Caller::check(&client, ["turns/sem/.lock"], 3).unwrap();
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(take_turns(sem.records(), &one_try).await.unwrap().unwrap());
        }
        assert!(take_turns(sem.records(), &one_try).await.unwrap().is_none());
        let five = Caller::check(&client, ["turns/sem/.lock"], 5).unwrap();
        let other_limit = take_turns(five.records(), &patient).await;
        assert!(matches!(
            other_limit,
            Err(Error::InvalidOption {
                option: "limit",
                ..
            })
        ));
    }
}
