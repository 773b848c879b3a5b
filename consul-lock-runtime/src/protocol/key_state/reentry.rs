//! Re-entry fails fast: the holders (tasks, or threads) of each key in this process, so that
//! a holder asking again for a lock it holds gets [`Error::Reentrant`] at once instead of
//! waiting out its acquire timeout for itself.

use std::sync::Arc;
use std::thread::ThreadId;

use super::{lock, Records};
use crate::{Client, Error, Result};

/// Who holds a key within this process: the tokio task the acquire was called from
/// ([`tokio::task::try_id`], unique within the process, so tasks of different runtimes are
/// told apart), or the thread when it is not called from inside a task. A spawned task is
/// another holder: it waits for the key like any other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum Holder {
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
pub(super) type StillHeld = Arc<dyn Fn() -> bool + Send + Sync>;

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
}
