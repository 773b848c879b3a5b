//! The waiters' queue of a held key.
//!
//! A waiter joins `<key>/.waiters/<session>` (an entry held by its own session, so Consul
//! deletes it when the session ends) and blocks on the entry queued right before its own
//! (ZooKeeper's lock recipe); the first waiter blocks on the lock key, and takes it and leaves
//! the queue in one transaction, which wakes its successor only. A client that takes a key it
//! released a moment ago ([`RECENT_RELEASE`](super::key_state::RECENT_RELEASE)), ahead of
//! older waiters, gives it back and queues.

use tokio::time::Instant;

use super::pending::PendingSession;
use super::retry::{Backoff, Deadline, MIN_LEFT};
use super::Background;
use crate::api::Blocking;
use crate::{Client, Error, KvEntry, Result};

/// Where waiters queue for a held key: `<key>/.waiters/<session>`, each entry held by its
/// waiter's session, so that Consul deletes it when the session ends (released, given up,
/// expired). Waiters are served in the order of their entries' `CreateIndex`: each blocks on
/// the entry right before its own, the first on the lock key, which it takes in the same
/// transaction that deletes its entry. Keys ending in this suffix are reserved.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// use consul_lock_runtime::{Lock, WAITERS_SUFFIX};
/// # use std::time::Duration;
/// # let other_process = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// let lock = Lock::new("waiters-example").client(&client);
/// let guard = lock.acquire().await?;
/// // Another process (tasks of this one wait for their turn before they queue in Consul).
/// let patient = lock.clone().client(&other_process).acquire_timeout(Duration::from_secs(5));
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

/// The queue prefix of `key`.
pub(crate) fn prefix(key: &str) -> String {
    format!("{key}{WAITERS_SUFFIX}")
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

/// The entry `session` holds in the queue of `queue_of` (a lock key, or a semaphore's
/// coordination key): `<queue_of>/.waiters/<session>`.
pub(crate) fn entry(queue_of: &str, session: &str) -> String {
    format!("{queue_of}{WAITERS_SUFFIX}{session}")
}

/// What the queue asks of the lock its waiters wait for (each kind of the engine is one).
pub(crate) trait Waits {
    /// How errors, logs and session names call it: the key, the keys, the prefix.
    fn label(&self) -> &str;

    /// What the first waiter in the queue of `queue_of` watches.
    fn head<'a>(&'a self, queue_of: &'a str) -> Head<'a> {
        Head::Key(queue_of)
    }

    /// For [`Head::Tree`]: whether what was read there lets the first waiter in (a free slot).
    ///
    /// # Errors
    ///
    /// Whatever makes the lock unusable (a coordination key that is not the kind's).
    fn head_free(&self, _tree: &[KvEntry]) -> Result<bool> {
        Ok(false)
    }
}

/// What the first waiter in a queue watches.
pub(crate) enum Head<'a> {
    /// A key: the lock may be free once no session holds it.
    Key(&'a str),
    /// Everything under a prefix (a semaphore's): when anything changes there,
    /// [`Waits::head_free`] decides.
    Tree(&'a str),
}

/// What waiting in a queue ended with.
pub(crate) enum Waited {
    /// This waiter is first in the queue and the lock looks free: try again, with what the
    /// wait read when the kind watches a tree.
    Free(Option<Vec<KvEntry>>),
    /// The session is gone (invalidated while waiting): make a new one.
    SessionGone,
    /// The deadline passed.
    TimedOut,
}

/// What a waiter blocks on, as last read.
enum Watching {
    /// One key (its predecessor's queue entry, or the lock key for the first waiter), while
    /// `session` holds it, as created at `created` (a client's shared session names its entry
    /// the same each time it queues: an entry deleted and written again is another one).
    Key {
        key: String,
        index: u64,
        session: Option<String>,
        created: u64,
        head: bool,
    },
    /// Everything under the kind's prefix (the first waiter of a semaphore), past `index`.
    Tree { index: u64 },
}

/// What a read of `tree` tells this waiter (`mine`, in the queue `queue`) to watch: the live
/// entry queued right before its own, or, when it is first, what the kind's head watches.
/// `Ok(None)`: its turn (the read is handed to the attempt for a tree). `Err(None)`: its own
/// entry is missing (it must join again); `Err(Some(e))`: the kind refuses what it read.
fn watch_from<K: Waits>(
    kind: &K,
    head: &Head<'_>,
    tree: &[KvEntry],
    queue: &str,
    mine: &str,
) -> Result<Option<Watching>, Option<Error>> {
    let me = tree.iter().find(|e| e.key == mine).ok_or(None)?;
    let predecessor = tree
        .iter()
        .filter(|e| {
            e.key.starts_with(queue)
                && e.key != mine
                && e.session.is_some()
                && e.create_index < me.create_index
        })
        .max_by_key(|e| e.create_index);
    if let Some(p) = predecessor {
        return Ok(Some(Watching::Key {
            key: p.key.clone(),
            index: p.modify_index,
            session: p.session.clone(),
            created: p.create_index,
            head: false,
        }));
    }
    match head {
        Head::Key(key) => Ok(tree
            .iter()
            .find(|e| e.key == *key && e.session.is_some())
            .map(|held| Watching::Key {
                key: (*key).to_owned(),
                index: held.modify_index,
                session: held.session.clone(),
                created: held.create_index,
                head: true,
            })),
        Head::Tree(_) => {
            if kind.head_free(tree).map_err(Some)? {
                return Ok(None);
            }
            // The highest index read; Consul answers at once if the prefix has moved past it
            // (a deleted key), and the wait goes on from the index it answers with.
            let index = tree.iter().map(|e| e.modify_index).max().unwrap_or(1);
            Ok(Some(Watching::Tree { index }))
        }
    }
}

/// Waits until this waiter is first in the queue of `queue_of` and the lock looks free, or
/// the deadline passes. The waiter joins the queue once (one transaction that also reads what
/// it watches), then blocks on one key only: the entry of the waiter queued right before it,
/// or, once it is first, what the kind's [`Head`] names (a lock key; a semaphore's prefix,
/// which its first waiter alone watches). Consul answers a blocking query on one key only when
/// that key changes, so a join, a leave or a release wakes one waiter. It renews its session
/// at TTL/2 so that it survives a wait longer than its TTL.
pub(crate) async fn wait_in_queue<K: Waits + Sync, B: Background>(
    kind: &K,
    client: &Client,
    queue_of: &str,
    session: &mut PendingSession<B>,
    deadline: &Deadline,
) -> Result<Waited> {
    let head = kind.head(queue_of);
    let tree_path = match head {
        Head::Key(key) | Head::Tree(key) => key,
    };
    let queue = prefix(queue_of);
    let mine = entry(queue_of, session.id());
    let mut watching: Option<Watching> = None;
    let mut backoff = Backoff::new();
    loop {
        let Some(remaining) = deadline.remaining().filter(|r| *r >= MIN_LEFT) else {
            return Ok(Waited::TimedOut);
        };
        let request_timeout = remaining.min(client.request_timeout());
        let step = match session.refresh(request_timeout).await {
            Ok(false) => return Ok(Waited::SessionGone),
            Ok(true) => session.join_queue(&mine, tree_path, request_timeout).await,
            Err(e) => Err(e),
        };
        let joined = match step {
            Ok(joined) => joined,
            Err(e) if e.is_invalid_session() => return Ok(Waited::SessionGone),
            Err(e) if e.is_transient() => {
                tracing::debug!(error = %e, "renewing or queueing the waiting session failed; retrying");
                if !backoff.wait(deadline).await {
                    return Ok(Waited::TimedOut);
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        // 1. What to watch: from the join's read, as before, or from a fresh read.
        let tree = match (joined, watching.is_some()) {
            (Some(tree), _) => Some(tree),
            (None, true) => None,
            (None, false) => match client
                .kv_read_tree(kind.label(), tree_path, request_timeout)
                .await
            {
                Ok((tree, _)) => Some(tree),
                Err(e) if e.is_transient() => {
                    if !backoff.wait(deadline).await {
                        return Ok(Waited::TimedOut);
                    }
                    continue;
                }
                Err(e) => return Err(e),
            },
        };
        if let Some(tree) = tree {
            match watch_from(kind, &head, &tree, &queue, &mine) {
                Ok(Some(next)) => watching = Some(next),
                Ok(None) => return Ok(Waited::Free(matches!(head, Head::Tree(_)).then_some(tree))),
                Err(Some(e)) => return Err(e),
                Err(None) => {
                    // The entry is gone while the session lives (deleted from outside): join
                    // again, at the back.
                    session.left_queue();
                    watching = None;
                    continue;
                }
            }
        }
        let Some(w) = watching.take() else { continue };
        // 2. Block on that one thing, within the deadline and never past the point where the
        // session needs renewing.
        let wait = session.until_refresh(Instant::now());
        let (path, tree, index) = match &w {
            Watching::Key { key, index, .. } => (key.as_str(), false, *index),
            Watching::Tree { index } => (tree_path, true, *index),
        };
        let blocking = Blocking {
            index,
            wait,
            until: deadline.until(),
        };
        let read = client.kv_block(kind.label(), path, tree, blocking).await;
        match (read, w) {
            (Ok((entries, next)), Watching::Tree { index }) => {
                // Unchanged (the wait ran out): watch on; changed: see again what it shows.
                watching = Some(Watching::Tree { index: next });
                if next != index {
                    match watch_from(kind, &head, &entries, &queue, &mine) {
                        Ok(None) => return Ok(Waited::Free(Some(entries))),
                        Ok(Some(_)) => {}
                        Err(Some(e)) => return Err(e),
                        Err(None) => {
                            session.left_queue();
                            watching = None;
                        }
                    }
                }
            }
            (
                Ok((entries, next)),
                Watching::Key {
                    key,
                    session: held,
                    created,
                    head: first,
                    ..
                },
            ) => {
                match entries.into_iter().next() {
                    Some(e)
                        if e.session.is_some()
                            && e.session == held
                            && e.create_index == created =>
                    {
                        // Unchanged (the wait ran out) or rewritten by the same session.
                        watching = Some(Watching::Key {
                            key,
                            index: next,
                            session: held,
                            created,
                            head: first,
                        });
                    }
                    // The lock key is free: take it.
                    _ if first => return Ok(Waited::Free(None)),
                    // The predecessor left the queue (took the lock, gave up, or its session
                    // ended): read the queue again to find this waiter's place.
                    _ => {}
                }
            }
            (Err(e), w) if e.is_transient() => {
                watching = Some(w);
                if !backoff.wait(deadline).await {
                    return Ok(Waited::TimedOut);
                }
            }
            (Err(e), _) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::one_key::LockKey;
    use super::*;

    fn kv(key: &str, create_index: u64, session: Option<&str>) -> KvEntry {
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
            kv("locks/k/.waiters/a", 10, Some("a")),
            kv("locks/k/.waiters/b", 20, Some("b")),
            kv("locks/k/.waiters/dead", 5, None),
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
    fn a_waiter_watches_its_predecessor_or_else_the_held_key() {
        let lock = LockKey {
            key: "locks/k".into(),
            value: Vec::new(),
        };
        let (head, q) = (lock.head("locks/k"), prefix("locks/k"));
        let tree = vec![
            kv("locks/k", 3, Some("h")),
            kv("locks/k/.waiters/a", 10, Some("a")),
            kv("locks/k/.waiters/dead", 15, None),
            kv("locks/k/.waiters/b", 20, Some("b")),
            kv("locks/k/.waiters/c", 30, Some("c")),
            kv("locks/kx", 40, Some("x")),
        ];
        let watched = |tree: &[KvEntry], mine: &str| match watch_from(&lock, &head, tree, &q, mine)
        {
            Ok(Some(Watching::Key { key, head, .. })) => Ok(Some((key, head))),
            Ok(Some(Watching::Tree { .. })) => panic!("a lock's head watches its key"),
            Ok(None) => Ok(None),
            Err(e) => Err(e.is_some()),
        };
        // The first waiter watches the key; the others the live entry right before their own.
        assert_eq!(
            watched(&tree, "locks/k/.waiters/a"),
            Ok(Some(("locks/k".into(), true)))
        );
        assert_eq!(
            watched(&tree, "locks/k/.waiters/b"),
            Ok(Some(("locks/k/.waiters/a".into(), false)))
        );
        assert_eq!(
            watched(&tree, "locks/k/.waiters/c"),
            Ok(Some(("locks/k/.waiters/b".into(), false)))
        );
        // Not in the queue: join again.
        assert_eq!(watched(&tree, "locks/k/.waiters/z"), Err(false));
        // First and the key is free: its turn.
        let free = vec![
            kv("locks/k/.waiters/a", 10, Some("a")),
            kv("locks/kx", 40, Some("x")),
        ];
        assert_eq!(watched(&free, "locks/k/.waiters/a"), Ok(None));
    }
}
