//! The waiters' queue of a held key, and this process's memory of its recent releases.
//!
//! A waiter joins `<key>/.waiters/<session>` (an entry held by its own session, so Consul
//! deletes it when the session ends) and watches the key and the queue with one blocking
//! query on the key as a prefix. When the key is freed, the oldest waiter tries first; the
//! others leave it [`HEAD_GRACE`] before they try too. A client that takes a key it released
//! [`RECENT_RELEASE`] ago or less, ahead of older waiters, gives it back and queues.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::pending::PendingSession;
use super::retry::{Backoff, Deadline, MIN_LEFT};
use super::Background;
use crate::{Client, KvEntry, Result};

/// Where waiters queue for a held key: `<key>/.waiters/<session>`, each entry held by its
/// waiter's session, so that Consul deletes it when the session ends (released, given up,
/// expired). When the key is freed, the waiter whose entry is oldest (lowest `CreateIndex`)
/// tries first; the others leave it 25 ms before they try too (the first may have died with
/// its session still alive). Keys ending in this suffix are reserved.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// use consul_lock_runtime::{Lock, WAITERS_SUFFIX};
/// # use std::time::Duration;
/// let lock = Lock::new("waiters-example").client(&client);
/// let guard = lock.acquire().await?;
/// let patient = lock.clone().acquire_timeout(Duration::from_secs(5));
/// let waiter = tokio::spawn(async move { patient.acquire().await });
/// let queue = format!("{}{WAITERS_SUFFIX}", guard.key());
/// # while client.kv_keys(&queue).await?.is_empty() { tokio::time::sleep(Duration::from_millis(5)).await; }
/// let queued = client.kv_keys(&queue).await?; // once the waiter has queued
/// guard.release().await?;
/// let second = waiter.await??; // the waiter's session now holds the key
/// assert_eq!(queued, [format!("{queue}{}", second.session_id())]);
/// # second.release().await?;
/// # Ok(()) }
/// ```
pub const WAITERS_SUFFIX: &str = "/.waiters/";

/// How long a waiter that is not first in the queue leaves a freed key to the first one: long
/// enough for the first's lock transaction on loopback or a LAN, short next to a hand-over.
const HEAD_GRACE: Duration = Duration::from_millis(25);

/// How long after a release a new acquire of the same key by the same client yields to older
/// waiters: covers a releaser that takes the key again at once, not a later newcomer.
const RECENT_RELEASE: Duration = Duration::from_millis(50);

/// How many recent releases are remembered: more than the keys one process releases within
/// [`RECENT_RELEASE`] in practice; past it, a release is simply not remembered.
const MAX_RECENT_RELEASES: usize = 256;

/// The queue prefix of `key`.
pub(crate) fn prefix(key: &str) -> String {
    format!("{key}{WAITERS_SUFFIX}")
}

/// Keys released lately by this process: (client, key, when). The client is told apart by
/// [`Client::id`], so that clones of one client share one memory.
static RECENT: Mutex<Vec<(u64, String, Instant)>> = Mutex::new(Vec::new());

/// Notes that `client` just released `key`.
pub(crate) fn note_release(client: &Client, key: &str) {
    let now = Instant::now();
    let id = client.id();
    let mut recent = RECENT.lock().unwrap_or_else(PoisonError::into_inner);
    recent.retain(|(c, k, at)| !(*c == id && k == key) && now.duration_since(*at) < RECENT_RELEASE);
    if recent.len() < MAX_RECENT_RELEASES {
        recent.push((id, key.to_owned(), now));
    }
}

/// Whether `client` released `key` within the last [`RECENT_RELEASE`].
pub(crate) fn released_recently(client: &Client, key: &str) -> bool {
    let id = client.id();
    let recent = RECENT.lock().unwrap_or_else(PoisonError::into_inner);
    recent
        .iter()
        .any(|(c, k, at)| *c == id && k == key && at.elapsed() < RECENT_RELEASE)
}

/// Whether the queue read with a lock holds a live waiter that queued before this session (or
/// any live waiter, when this session has not queued).
pub(crate) fn older_waiter(waiters: &[KvEntry], queue: &str, session: &str) -> bool {
    let mine = format!("{queue}{session}");
    let my_index = waiters
        .iter()
        .find(|e| e.key == mine)
        .map(|e| e.create_index);
    waiters.iter().any(|e| {
        e.key != mine && e.session.is_some() && my_index.is_none_or(|m| e.create_index < m)
    })
}

/// What waiting for a held key ended with.
pub(crate) enum Wait {
    /// The key looks free: try to lock it again. `head`: this waiter is first in the queue
    /// (false when the first one let the grace pass, so that this waiter takes the key).
    Free { head: bool },
    /// The session is gone (invalidated while waiting): make a new one.
    SessionGone,
    /// The deadline passed.
    TimedOut,
}

/// Waits with blocking queries until the key is free and it is this waiter's turn, or the
/// deadline passes. The waiter joins the key's queue and watches the key and the queue with
/// one blocking query on the key as a prefix; it renews its session at TTL/2 so that it
/// survives a wait longer than its TTL.
pub(crate) async fn wait_turn<B: Background>(
    client: &Client,
    key: &str,
    session: &mut PendingSession<B>,
    deadline: &Deadline,
) -> Result<Wait> {
    let queue = prefix(key);
    let mine = format!("{queue}{}", session.id());
    let mut index = 0u64;
    let mut grace_until: Option<Instant> = None;
    let mut backoff = Backoff::new();
    loop {
        let Some(remaining) = deadline.remaining().filter(|r| *r >= MIN_LEFT) else {
            return Ok(Wait::TimedOut);
        };
        let request_timeout = remaining.min(client.request_timeout());
        let step = match session.refresh(request_timeout).await {
            Ok(false) => return Ok(Wait::SessionGone),
            Ok(true) => session.join_queue(&mine, request_timeout).await,
            Err(e) => Err(e),
        };
        match step {
            Ok(()) => {}
            Err(e) if e.is_invalid_session() => return Ok(Wait::SessionGone),
            Err(e) if e.is_transient() => {
                tracing::debug!(error = %e, "renewing or queueing the waiting session failed; retrying");
                if !backoff.wait(deadline).await {
                    return Ok(Wait::TimedOut);
                }
                continue;
            }
            Err(e) => return Err(e),
        }
        // Consul may answer a blocking query up to wait/16 late: ask for a bit less than the
        // time left, and never past the point where the session needs renewing or the grace
        // left to the first waiter ends.
        let now = Instant::now();
        let mut wait = (remaining * 15 / 16).min(session.until_refresh(now));
        if let Some(grace) = grace_until {
            wait = wait.min(grace.saturating_duration_since(now));
        }
        let blocking = (index > 0).then_some((index, wait.max(MIN_LEFT)));
        match client.kv_read_tree(key, key, blocking, remaining).await {
            Ok((entries, new_index)) => {
                // Consul's rule: an index that goes backwards resets the watch.
                index = if new_index < index {
                    0
                } else {
                    new_index.max(1)
                };
                let held = entries.iter().any(|e| e.key == key && e.session.is_some());
                if held {
                    grace_until = None;
                    continue;
                }
                let first = entries
                    .iter()
                    .filter(|e| e.key.starts_with(&queue) && e.session.is_some())
                    .min_by_key(|e| e.create_index);
                if first.is_none_or(|e| e.key == mine) {
                    return Ok(Wait::Free { head: true });
                }
                match grace_until {
                    None => grace_until = Some(Instant::now() + HEAD_GRACE),
                    Some(grace) if Instant::now() >= grace => {
                        return Ok(Wait::Free { head: false })
                    }
                    Some(_) => {}
                }
            }
            Err(e) if e.is_transient() => {
                if !backoff.wait(deadline).await {
                    return Ok(Wait::TimedOut);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, create_index: u64, session: Option<&str>) -> KvEntry {
        KvEntry {
            key: key.to_owned(),
            value: Vec::new(),
            session: session.map(str::to_owned),
            lock_index: 1,
            create_index,
            modify_index: create_index,
            flags: 0,
        }
    }

    #[test]
    fn who_counts_as_an_older_waiter() {
        let q = "locks/k/.waiters/";
        let waiters = vec![
            entry("locks/k/.waiters/a", 10, Some("a")),
            entry("locks/k/.waiters/b", 20, Some("b")),
            entry("locks/k/.waiters/dead", 5, None),
        ];
        // A newcomer (not queued) sees live waiters.
        assert!(older_waiter(&waiters, q, "new"));
        // The oldest live waiter has nobody ahead (an entry without a session does not count).
        assert!(!older_waiter(&waiters, q, "a"));
        // A later waiter has someone ahead.
        assert!(older_waiter(&waiters, q, "b"));
        // An empty queue: nobody to yield to.
        assert!(!older_waiter(&[], q, "new"));
    }

    #[test]
    fn releases_are_remembered_per_client_and_key() {
        let a = Client::builder().build().unwrap();
        let b = Client::builder().build().unwrap();
        note_release(&a, "queue-test/k");
        assert!(released_recently(&a, "queue-test/k"));
        assert!(released_recently(&a.clone(), "queue-test/k"));
        assert!(!released_recently(&b, "queue-test/k"));
        assert!(!released_recently(&a, "queue-test/other"));
    }
}
