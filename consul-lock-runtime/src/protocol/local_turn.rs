//! The tasks of this process that acquire the same key (with the same client) take turns
//! before they talk to Consul: one at a time per key goes through the Consul protocol (session,
//! lock, the queue), the others wait in a local FIFO, without a session or a connection of
//! their own. So a process with a thousand tasks waiting on ten keys holds about ten blocking
//! queries (Consul refuses a 201st concurrent connection from one client IP), and its tasks
//! get each key in the order they asked for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::retry::Deadline;
use crate::Client;

/// A client (by [`Client::id`]) and a key.
type Slot = (u64, String);

/// The FIFO of each (client, key) with a local acquisition in progress.
static TURNS: Mutex<Option<HashMap<Slot, Arc<Semaphore>>>> = Mutex::new(None);

/// This task's turn at a key; the next local task's turn comes when it is dropped (the
/// acquisition ended: taken, or given up).
pub(crate) struct LocalTurn {
    slot: Slot,
    turns: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for LocalTurn {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut map = TURNS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(turns) = map.as_mut() {
            // Only the map and this turn hold the FIFO: nobody else waits, forget it.
            if Arc::strong_count(&self.turns) == 2 {
                turns.remove(&self.slot);
            }
        }
    }
}

/// Waits for this task's turn at `key` among the tasks of this process using `client`, in
/// the order they asked. The first one gets it at once. `None`: the deadline passed first.
/// A one-try acquire (`deadline` allows no retry) never waits here.
pub(crate) async fn take(client: &Client, key: &str, deadline: &Deadline) -> Option<LocalTurn> {
    let slot = (client.id(), key.to_owned());
    let turns = {
        let mut map = TURNS.lock().unwrap_or_else(PoisonError::into_inner);
        map.get_or_insert_with(HashMap::new)
            .entry(slot.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(1)))
            .clone()
    };
    let mut turn = LocalTurn {
        slot,
        turns: turns.clone(),
        permit: None,
    };
    turn.permit = match turns.clone().try_acquire_owned() {
        Ok(permit) => Some(permit),
        Err(_) if !deadline.can_retry() => None,
        Err(_) => {
            let remaining = deadline.remaining()?;
            // The semaphore is never closed; `ok()` covers it anyway.
            Some(
                tokio::time::timeout(remaining, turns.acquire_owned())
                    .await
                    .ok()?
                    .ok()?,
            )
        }
    };
    Some(turn)
}
