//! The tasks of this process that lock the same key (with the same client) take turns before
//! they talk to Consul. A task's turn lasts from the start of its acquisition to the end of the
//! lock it took: the release confirmed (or, when Consul does not confirm it at once, its first
//! attempt over: the retries go on without holding up the next task), the lock lost, or its
//! lease run out. Only then does the next task of the process start on Consul (session, lock,
//! the queue). The others wait in a local FIFO without a session or a connection of their own.
//!
//! So per key a process has one piece of Consul work at a time: a thousand tasks waiting on ten
//! keys hold about ten connections (Consul refuses a 201st concurrent connection from one
//! client IP), and the tasks get each key in the order they asked for it. Other processes
//! still meet this one in Consul's queue, where its turn holder stands for all its tasks.
//!
//! A turn never outlives the lease of the lock it took: a guard that is forgotten, or a lock
//! whose TTL ran out without a renewal, passes the turn on when Consul may have freed the key,
//! so local waiters are never stuck behind a lock that Consul no longer holds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::retry::Deadline;
use crate::Client;

/// A lock whose lease bounds a turn: the turn passes on once Consul may have freed the key.
pub(crate) trait LeaseEnd: Send + Sync {
    /// The moment after which Consul may have freed the key (it moves on with each renewal).
    fn valid_until(&self) -> Instant;
}

/// A client (by [`Client::id`]) and a key.
type SlotKey = (u64, String);

/// The turns at one (client, key).
struct Slot {
    key: SlotKey,
    /// One permit: the turn. Tokio's semaphore serves its waiters first come, first served.
    fifo: Arc<Semaphore>,
    holder: Mutex<Holder>,
    /// Signalled when the turn's holder takes its lock (the waiters then watch its lease).
    holder_changed: Notify,
}

/// Who has the turn.
#[derive(Default)]
struct Holder {
    /// The number of the latest turn, which has the turn (unless revoked).
    current: u64,
    /// The lock the current turn took, once taken.
    lease: Option<Weak<dyn LeaseEnd>>,
    /// The current turn was taken away (its lease ran out): its permit is no longer the turn.
    revoked: bool,
}

impl Slot {
    fn holder(&self) -> MutexGuard<'_, Holder> {
        self.holder.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// When the current holder's lease ends, if it holds a lock (and its turn is not over).
    fn holder_lease_end(&self) -> Option<Instant> {
        let holder = self.holder();
        if holder.revoked {
            return None;
        }
        Some(holder.lease.as_ref()?.upgrade()?.valid_until())
    }

    /// Takes the turn from a holder whose lease has run out; the next waiter gets it.
    fn revoke_if_lapsed(&self) {
        let mut holder = self.holder();
        if holder.revoked {
            return;
        }
        let lapsed = holder
            .lease
            .as_ref()
            .and_then(Weak::upgrade)
            .is_some_and(|lease| Instant::now() >= lease.valid_until());
        if lapsed {
            tracing::debug!(key = %self.key.1, "the local holder's lease ran out: its turn passes on");
            holder.revoked = true;
            holder.lease = None;
            self.fifo.add_permits(1);
        }
    }

    /// Waits until the current holder's lease may have run out (or the holder changes).
    async fn holder_lapse(&self) {
        let changed = self.holder_changed.notified();
        match self.holder_lease_end() {
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

/// The slots with a turn taken or awaited.
static SLOTS: Mutex<Option<HashMap<SlotKey, Arc<Slot>>>> = Mutex::new(None);

fn slots() -> MutexGuard<'static, Option<HashMap<SlotKey, Arc<Slot>>>> {
    SLOTS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// This task's turn at a key. The next local task's turn comes when it is dropped: an
/// acquisition that gave up drops it at once; one that took the lock hands it to the lock
/// ([`LocalTurn::attach`]), which drops it when the lock ends.
pub(crate) struct LocalTurn {
    slot: Arc<Slot>,
    number: u64,
    permit: Option<OwnedSemaphorePermit>,
}

impl LocalTurn {
    fn new(slot: Arc<Slot>, permit: OwnedSemaphorePermit) -> LocalTurn {
        let number = {
            let mut holder = slot.holder();
            holder.current += 1;
            holder.lease = None;
            holder.revoked = false;
            holder.current
        };
        LocalTurn {
            slot,
            number,
            permit: Some(permit),
        }
    }

    /// The turn now lasts as long as `lease`: the waiters pass it on once the lease has run
    /// out, should the lock never be released (a forgotten guard).
    pub(crate) fn attach(&self, lease: Weak<dyn LeaseEnd>) {
        let mut holder = self.slot.holder();
        if holder.current == self.number && !holder.revoked {
            holder.lease = Some(lease);
            drop(holder);
            self.slot.holder_changed.notify_waiters();
        }
    }
}

impl Drop for LocalTurn {
    fn drop(&mut self) {
        {
            let mut holder = self.slot.holder();
            let permit = self.permit.take();
            if holder.current == self.number && !holder.revoked {
                holder.lease = None;
                drop(permit);
            } else if let Some(permit) = permit {
                // A waiter took the turn away and added a permit in this one's place.
                permit.forget();
            }
        }
        self.slot.holder_changed.notify_waiters();
        forget_if_unused(&self.slot);
    }
}

/// Waits for this task's turn at `key` among the tasks of this process using `client`, in
/// the order they asked. The first one gets it at once. `None`: the deadline passed first.
/// A one-try acquire (`deadline` allows no retry) never waits here.
pub(crate) async fn take(client: &Client, key: &str, deadline: &Deadline) -> Option<LocalTurn> {
    let slot_key = (client.id(), key.to_owned());
    let visit = SlotVisit(Some(
        slots()
            .get_or_insert_with(HashMap::new)
            .entry(slot_key.clone())
            .or_insert_with(|| {
                Arc::new(Slot {
                    key: slot_key,
                    fifo: Arc::new(Semaphore::new(1)),
                    holder: Mutex::new(Holder::default()),
                    holder_changed: Notify::new(),
                })
            })
            .clone(),
    ));
    let slot = visit.slot()?;
    if let Ok(permit) = slot.fifo.clone().try_acquire_owned() {
        return Some(LocalTurn::new(visit.into_slot()?, permit));
    }
    if !deadline.can_retry() {
        // One try: a lapsed holder's turn is taken over, a live one means "held".
        slot.revoke_if_lapsed();
        let permit = slot.fifo.clone().try_acquire_owned().ok()?;
        return Some(LocalTurn::new(visit.into_slot()?, permit));
    }
    let until = Instant::now() + deadline.remaining()?;
    // One acquire future for the whole wait: dropping it would lose the place in the FIFO.
    let acquire = slot.fifo.clone().acquire_owned();
    tokio::pin!(acquire);
    let permit = loop {
        tokio::select! {
            biased;
            permit = &mut acquire => break permit.ok()?,
            () = tokio::time::sleep_until(until) => return None,
            () = slot.holder_lapse() => slot.revoke_if_lapsed(),
        }
    };
    Some(LocalTurn::new(visit.into_slot()?, permit))
}

/// A task at a slot, before it has the turn: forgets the slot on the way out when nobody
/// else uses it.
struct SlotVisit(Option<Arc<Slot>>);

impl SlotVisit {
    fn slot(&self) -> Option<&Slot> {
        self.0.as_deref()
    }

    /// The slot, for the turn just taken (which forgets the slot when it ends).
    fn into_slot(mut self) -> Option<Arc<Slot>> {
        self.0.take()
    }
}

impl Drop for SlotVisit {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            forget_if_unused(&slot);
        }
    }
}

/// Forgets `slot` when only the map and the caller still know it: nobody else waits there.
fn forget_if_unused(slot: &Arc<Slot>) {
    let mut slots = slots();
    if let Some(map) = slots.as_mut() {
        if Arc::strong_count(slot) == 2 {
            map.remove(&slot.key);
        }
    }
}
