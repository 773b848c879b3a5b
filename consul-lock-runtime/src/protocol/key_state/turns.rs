//! Local turns: the tasks of this process that lock a key through one client take turns
//! before they talk to Consul (a semaphore: as many at once as it has slots), in the order they
//! asked, and a turn passes on when the lock it took ends, or when its lease runs out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::super::retry::Deadline;
use super::{lock, KeyRecord, Records};
use crate::{Error, Result};

/// A lock whose lease bounds a turn: the turn passes on once Consul may have freed the key.
pub(crate) trait LeaseEnd: Send + Sync {
    /// The moment after which Consul may have freed the key (it moves on with each renewal).
    fn valid_until(&self) -> Instant;
}

/// The turns at one key: `slots` permits (1, or a semaphore's limit).
pub(super) struct Turns {
    pub(super) slots: u32,
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
    pub(super) fn new(slots: u32) -> Turns {
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

#[cfg(test)]
mod tests {
    use crate::Client;
    use std::time::Duration;

    use super::super::Caller;
    use super::*;

    fn client() -> Client {
        Client::builder().build().unwrap()
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
