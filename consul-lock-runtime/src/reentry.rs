//! Re-entry fails fast: the keys each holder (a tokio task, or else a thread) holds through
//! this library, per client, so that a holder asking again for a key it holds gets
//! [`Error::Reentrant`] at once instead of waiting out its acquire timeout against itself.
//!
//! A holder is the tokio task the acquire was called from ([`tokio::task::try_id`]), or the
//! thread when it is not called from inside a task (a plain thread, or `block_on`). Task ids
//! are unique within the process, so tasks of different runtimes are told apart. A spawned
//! task is another holder: it waits for the key like any other client.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::thread::ThreadId;

use crate::{Client, Error, Result};

/// Who holds a key within this process.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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

/// (client id, key, holder) of a guard alive in this process.
type Entry = (u64, String, Holder);

/// Whether the guard still holds its key (false once the lock is known lost or its lease ran
/// out: asking for the key again is then not re-entry).
type StillHeld = Box<dyn Fn() -> bool + Send>;

static HELD: Mutex<Option<HashMap<Entry, StillHeld>>> = Mutex::new(None);

fn with_held<T>(f: impl FnOnce(&mut HashMap<Entry, StillHeld>) -> T) -> T {
    let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
    f(held.get_or_insert_with(HashMap::new))
}

/// The caller of an acquire, captured where the acquire is called (the acquisition itself may
/// run on another thread).
#[derive(Debug)]
pub(crate) struct Caller {
    entry: Entry,
}

impl Caller {
    /// The calling holder, asking for `key` through `client`.
    ///
    /// # Errors
    /// [`Error::Reentrant`] when this holder already holds `key` through this client (or a
    /// clone of it), and that lock is not lost.
    pub(crate) fn check(client: &Client, key: &str) -> Result<Caller> {
        let entry = (client.id(), key.to_owned(), Holder::current());
        if with_held(|held| held.get(&entry).is_some_and(|still_held| still_held())) {
            return Err(Error::Reentrant {
                key: key.to_owned(),
            });
        }
        Ok(Caller { entry })
    }

    /// Notes that the caller now holds the key, until the returned mark is dropped or
    /// `still_held` answers false.
    pub(crate) fn register(self, still_held: impl Fn() -> bool + Send + 'static) -> HeldMark {
        with_held(|held| held.insert(self.entry.clone(), Box::new(still_held)));
        HeldMark { entry: self.entry }
    }
}

/// A key held by one holder; dropping it (when the guard is released or dropped) forgets it.
#[derive(Debug)]
pub(crate) struct HeldMark {
    entry: Entry,
}

impl Drop for HeldMark {
    fn drop(&mut self) {
        with_held(|held| held.remove(&self.entry));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_holding_a_key_is_refused_until_the_mark_is_dropped() {
        let client = Client::builder().build().unwrap();
        let mark = Caller::check(&client, "reentry/k")
            .unwrap()
            .register(|| true);
        let again = Caller::check(&client, "reentry/k").unwrap_err();
        assert!(matches!(again, Error::Reentrant { ref key } if key == "reentry/k"));
        // Another key, another client, another thread: not re-entry.
        assert!(Caller::check(&client, "reentry/other").is_ok());
        let other = Client::builder().build().unwrap();
        assert!(Caller::check(&other, "reentry/k").is_ok());
        let c = client.clone();
        std::thread::spawn(move || assert!(Caller::check(&c, "reentry/k").is_ok()))
            .join()
            .unwrap();
        drop(mark);
        assert!(Caller::check(&client, "reentry/k").is_ok());
    }

    #[test]
    fn a_lost_lock_is_not_held_any_more() {
        let client = Client::builder().build().unwrap();
        let _mark = Caller::check(&client, "reentry/lost")
            .unwrap()
            .register(|| false);
        assert!(Caller::check(&client, "reentry/lost").is_ok());
    }
}
