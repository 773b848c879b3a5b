//! The semaphore protocol, in Consul's own layout (as Go's `api.Semaphore` and
//! `consul lock -n N` write it), so that Rust, Go and the Consul CLI share the same slots:
//!
//! - each holder's session holds `PREFIX/<session>` (the contender key);
//! - `PREFIX/.lock` holds `{"Limit":N,"Holders":{"<session>":true,…}}`, updated with
//!   check-and-set;
//! - both carry the flags [`SEMAPHORE_FLAGS`];
//! - a holder whose session holds no key under the prefix any more is dead, and is pruned by
//!   the next contender that reads the prefix.
//!
//! Taking a slot ([`Slot`], a [`Kind`] of the engine) is one transaction: the contender key
//! and the holders' check-and-set together, so that a holder always has its contender key.
//! While every slot is taken, this library's contenders queue in `PREFIX/.lock/.waiters/`
//! (herd-free, as for a lock): only the first of them watches the prefix, and a release wakes
//! it alone. Go's contenders cannot queue; they watch the prefix, as Go does.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::MutexGuard;
use tokio::time::Instant;

use super::key_state::{KeyRecord, Records, Written};
use super::kind::{Attempt, Kind, Try, Undo};
use super::lease::Lease;
use super::queue::{self, Head, Waits};
use super::retry::Backoff;
use crate::api::kv_write::{Cas, SlotAttempt, TakeSlot};
use crate::{Client, Error, KvEntry, Result};

/// The flags Go's `api.Semaphore` puts on its keys (`api.SemaphoreFlagValue`).
pub const SEMAPHORE_FLAGS: u64 = 0xe0f6_9a2b_aa41_4de0;

/// The flags Go's `api.Lock` puts on its key (`api.LockFlagValue`), to name a conflict.
const GO_LOCK_FLAGS: u64 = 0x2ddc_cbc0_58a5_0c18;

/// The name of the coordination key under the prefix (`api.DefaultSemaphoreKey`).
pub const SEMAPHORE_LOCK_KEY: &str = ".lock";

/// The largest limit accepted: the `.lock` value lists every holder's session (about 45 bytes
/// each), and every contender rewrites it, so very large limits make every acquire slow.
pub const MAX_SEMAPHORE_LIMIT: u32 = consul_lock_syntax::MAX_SEMAPHORE_LIMIT;

/// The value of `PREFIX/.lock`, field for field as Go's `semaphoreLock` encodes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SlotTable {
    #[serde(rename = "Limit")]
    pub(crate) limit: i64,
    /// Go's `map[string]bool`; Go writes keys sorted, as a `BTreeMap` does.
    #[serde(rename = "Holders", default, deserialize_with = "null_as_empty")]
    pub(crate) holders: BTreeMap<String, bool>,
}

/// Go encodes a nil map as `null`; read it as no holders.
fn null_as_empty<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, bool>, D::Error> {
    Ok(Option::<BTreeMap<String, bool>>::deserialize(d)?.unwrap_or_default())
}

/// A slot of the semaphore at `prefix`, checked before any request.
pub(crate) struct Slot {
    /// The full prefix (no trailing `/`).
    pub(crate) prefix: String,
    pub(crate) limit: u32,
    /// The value stored in the contender key.
    pub(crate) value: Vec<u8>,
    /// `PREFIX/.lock`: the coordination key, whose queue waiters join.
    lock_key: String,
    /// `PREFIX/`: what a contender reads.
    tree: String,
}

impl Slot {
    /// The table in `value` (`.lock` at `index`), checked as a read of `.lock` is.
    fn table_of(&self, value: &[u8], index: u64) -> Result<(SlotTable, u64)> {
        read_table(
            &self.prefix,
            self.limit,
            &[known_entry(&self.lock_key, value, index)],
        )
    }

    pub(crate) fn new(prefix: String, limit: u32, value: Vec<u8>) -> Slot {
        Slot {
            lock_key: lock_key(&prefix),
            tree: format!("{prefix}/"),
            prefix,
            limit,
            value,
        }
    }
}

/// `PREFIX/.lock`.
pub(crate) fn lock_key(prefix: &str) -> String {
    format!("{prefix}/{SEMAPHORE_LOCK_KEY}")
}

/// `PREFIX/<session>`.
pub(crate) fn contender_key(prefix: &str, session: &str) -> String {
    format!("{prefix}/{session}")
}

/// Reads the `.lock` entry among `entries` and checks it: flags, JSON, limit.
pub(crate) fn read_table(
    prefix: &str,
    limit: u32,
    entries: &[KvEntry],
) -> Result<(SlotTable, u64)> {
    let key = lock_key(prefix);
    let Some(entry) = entries.iter().find(|e| e.key == key) else {
        return Ok((
            SlotTable {
                limit: i64::from(limit),
                holders: BTreeMap::new(),
            },
            0,
        ));
    };
    if entry.flags != SEMAPHORE_FLAGS {
        let what = if entry.flags == GO_LOCK_FLAGS {
            "a Go `api.Lock` (or `consul lock` without `-n`) uses it as a lock".to_owned()
        } else {
            format!("its flags are {:#x}, not the semaphore's", entry.flags)
        };
        return Err(Error::InvalidKey {
            key,
            reason: format!(
                "the key is not a semaphore's coordination key ({what}, {SEMAPHORE_FLAGS:#x}); \
                 use another prefix for the semaphore, or delete the key once nothing uses it"
            ),
        });
    }
    if entry.value.is_empty() {
        return Ok((
            SlotTable {
                limit: i64::from(limit),
                holders: BTreeMap::new(),
            },
            entry.modify_index,
        ));
    }
    let table: SlotTable = serde_json::from_slice(&entry.value).map_err(|e| Error::InvalidKey {
        key: key.clone(),
        reason: format!(
            "the semaphore's coordination value is not Consul's semaphore JSON \
             ({{\"Limit\":N,\"Holders\":{{…}}}}): {e}; delete the key once nothing holds the semaphore"
        ),
    })?;
    if table.limit != i64::from(limit) {
        return Err(Error::InvalidOption {
            option: "limit",
            reason: format!(
                "semaphore `{prefix}` is stored with limit {} (in `{key}`), but this holder asks \
                 for limit {limit}; every holder must use the same limit: use {}, or change it \
                 once no holder is left by deleting `{key}`",
                table.limit, table.limit
            ),
        });
    }
    Ok((table, entry.modify_index))
}

/// Removes the holders whose session holds no key under the prefix (Go's `pruneDeadHolders`).
pub(crate) fn prune_dead(table: &mut SlotTable, entries: &[KvEntry]) {
    table.holders.retain(|holder, _| {
        entries
            .iter()
            .any(|e| e.session.as_deref() == Some(holder.as_str()))
    });
}

impl Kind for Slot {
    /// Go's layout keys each contender by its session (`PREFIX/<session>`, and the holders in
    /// `.lock`): every slot has a session of its own.
    fn can_share(&self) -> bool {
        false
    }

    fn records(&self) -> (Vec<&str>, u32) {
        (vec![self.lock_key.as_str()], self.limit)
    }

    fn name_of(&self, _key: &str) -> String {
        self.prefix.clone()
    }

    fn span(&self) -> tracing::Span {
        tracing::info_span!(
            "consul_lock.semaphore.acquire",
            key = %self.prefix,
            limit = self.limit,
            waited_ms = tracing::field::Empty,
            attempts = tracing::field::Empty,
            fencing_token = tracing::field::Empty,
        )
    }

    async fn attempt(&self, client: &Client, attempt: Try<'_>) -> Result<Attempt> {
        let session = attempt.session;
        let contender = contender_key(&self.prefix, session);
        // This client's writers of `.lock` take turns, each starting from what the last one
        // wrote: they never race each other, and need not read it first.
        let mut written = match attempt.records.as_slice().first() {
            Some(record) => Some(record.writer().await),
            None => None,
        };
        let remembered = written.as_deref_mut().and_then(|w| w.value.take());
        // A fresh read when nothing is remembered, or when the memory shows the slots full
        // (dead holders are pruned only from a read of the prefix).
        let remembered = remembered
            .map(|(value, index)| self.table_of(&value, index))
            .filter(|table| matches!(table, Ok((t, _)) if t.holders.len() < self.limit as usize));
        let (entries, table) = match (attempt.seen, remembered) {
            (Some(entries), _) => (entries, None),
            (None, Some(table)) => (Vec::new(), Some(table)),
            (None, None) => {
                let read = client.kv_read_tree(&self.prefix, &self.tree, attempt.timeout);
                (read.await?.0, None)
            }
        };
        let (mut table, index) = match table {
            Some(table) => table?,
            None => {
                // Dead holders are pruned from a read of the prefix only: a memory of `.lock`
                // shows no contender key, and would make every other holder look dead.
                let (mut table, index) = read_table(&self.prefix, self.limit, &entries)?;
                prune_dead(&mut table, &entries);
                (table, index)
            }
        };
        let mine = entries
            .iter()
            .find(|e| e.key == contender && e.session.as_deref() == Some(session));
        if let (true, Some(mine)) = (table.holders.contains_key(session), mine) {
            // A take whose answer was lost had gone through.
            return Ok(Attempt::Taken {
                keys: vec![(contender, mine.modify_index)],
                waiters: false,
            });
        }
        if table.holders.len() >= self.limit as usize {
            return Ok(Attempt::Held {
                queue_of: self.lock_key.clone(),
            });
        }
        table.holders.insert(session.to_owned(), true);
        let holders = serde_json::to_vec(&table).unwrap_or_default();
        let take = TakeSlot {
            contender: &contender,
            value: &self.value,
            session,
            flags: SEMAPHORE_FLAGS,
            cas: Cas {
                entry: &self.lock_key,
                value: Some(&holders),
                flags: SEMAPHORE_FLAGS,
                index,
            },
            leave: attempt.entry,
        };
        let taken = client
            .txn_take_slot(&self.prefix, take, attempt.timeout)
            .await?;
        Ok(match taken {
            SlotAttempt::Taken {
                contender_index,
                lock_index,
            } => {
                if let Some(written) = written.as_deref_mut() {
                    written.value = Some((holders, lock_index));
                    written.mine.insert(session.to_owned());
                }
                Attempt::Taken {
                    keys: vec![(contender, contender_index)],
                    waiters: queued(&entries, &self.lock_key, session),
                }
            }
            // Another contender changed `.lock` first: read it again at once.
            SlotAttempt::Raced => Attempt::Raced,
        })
    }

    fn undo(&self, client: &Client, session: &str, records: &Records) -> Option<Undo> {
        // A take whose answer was lost may have listed the session in `.lock`; its contender
        // key goes with the session, but `.lock` would name a dead holder until a contender
        // prunes it, and there may be none.
        let (client, prefix, limit) = (client.clone(), self.prefix.clone(), self.limit);
        let session = session.to_owned();
        let record = records.as_slice().first().cloned();
        Some(Box::pin(async move {
            give_back(&client, &prefix, limit, &session, record.as_deref()).await;
        }))
    }
}

impl Waits for Slot {
    fn label(&self) -> &str {
        &self.prefix
    }

    fn head<'a>(&'a self, _queue_of: &'a str) -> Head<'a> {
        Head::Tree(&self.tree)
    }

    fn head_free(&self, tree: &[KvEntry]) -> Result<bool> {
        let (mut table, _) = read_table(&self.prefix, self.limit, tree)?;
        prune_dead(&mut table, tree);
        Ok(table.holders.len() < self.limit as usize)
    }
}

/// `.lock` as this client last wrote it.
fn known_entry(lock_key: &str, value: &[u8], index: u64) -> KvEntry {
    KvEntry {
        key: lock_key.to_owned(),
        value: value.to_vec(),
        session: None,
        lock_index: 0,
        create_index: 0,
        modify_index: index,
        flags: SEMAPHORE_FLAGS,
    }
}

/// Whether live waiters other than `session` are queued for the slots.
fn queued(entries: &[KvEntry], lock_key: &str, session: &str) -> bool {
    let queue = queue::prefix(lock_key);
    entries.iter().any(|e| {
        e.key.starts_with(&queue) && e.session.is_some() && e.session.as_deref() != Some(session)
    })
}

/// Gives the slot of `lease` back ([`give_back`]); this process's next task for the semaphore
/// may start as soon as this holds the right to write `.lock` (the lease passes its turn
/// then): it makes its session while the slot is given back, and its take, which waits for
/// that right, starts from what this write left.
pub(crate) async fn leave(lease: &Lease, prefix: &str, limit: u32) {
    let record = lease.records().and_then(|r| r.as_slice().first());
    let written = match record {
        Some(record) => Some(record.writer().await),
        None => None,
    };
    lease.pass_turn();
    let (client, session) = (&lease.client, lease.session_id.as_str());
    remove_holder(client, prefix, limit, session, written).await;
}

/// Takes `session` out of the semaphore at `prefix` (after a lost answer, or as [`leave`]).
async fn give_back(
    client: &Client,
    prefix: &str,
    limit: u32,
    session: &str,
    record: Option<&KeyRecord>,
) {
    let written = match record {
        Some(record) => Some(record.writer().await),
        None => None,
    };
    remove_holder(client, prefix, limit, session, written).await;
}

/// Removes `session` from `PREFIX/.lock` with check-and-set and deletes its contender key in
/// the same transaction (one write, so waiters wake once); when no live holder is left,
/// `.lock` itself is deleted (check-and-set too, as Go's `Semaphore.Destroy` does), so that a
/// semaphore nobody holds leaves no key behind. It starts from what this client last wrote
/// of `.lock` when the holders left are this process's own (so alive); otherwise it reads the
/// prefix and prunes the dead. Conflicts and transient failures are retried for up to one
/// request timeout. Should this fail, the session's end deletes the contender key and the
/// next contender prunes the dead holder, so a failure is only logged.
async fn remove_holder(
    client: &Client,
    prefix: &str,
    limit: u32,
    session: &str,
    mut written: Option<MutexGuard<'_, Written>>,
) {
    let key = lock_key(prefix);
    let contender = contender_key(prefix, session);
    let tree = format!("{prefix}/");
    let give_up_at = Instant::now() + client.request_timeout();
    let mut backoff = Backoff::between(Duration::from_millis(10), Duration::from_millis(500));
    loop {
        let timeout = give_up_at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        let mine: BTreeSet<String> = written
            .as_deref()
            .map(|w| w.mine.clone())
            .unwrap_or_default();
        let remembered = written.as_deref_mut().and_then(|w| w.value.take());
        let result: Result<Step> = async {
            let from_memory = remembered.is_some();
            let entries: Vec<KvEntry> = match &remembered {
                Some((value, index)) => vec![known_entry(&key, value, *index)],
                None => client.kv_read_tree(prefix, &tree, timeout).await?.0,
            };
            let (mut table, index) = read_table(prefix, limit, &entries)?;
            if index == 0 || table.holders.remove(session).is_none() {
                // Not (or no longer) a holder; a memory of `.lock` proves nothing.
                return Ok(if from_memory {
                    Step::Read
                } else {
                    Step::Done(None)
                });
            }
            if from_memory {
                if !table.holders.keys().all(|h| mine.contains(h)) {
                    // Another process's holders may be dead: read the prefix to prune them.
                    return Ok(Step::Read);
                }
            } else {
                prune_dead(&mut table, &entries);
            }
            let value = serde_json::to_vec(&table).unwrap_or_default();
            let last = table.holders.is_empty();
            let cas = Cas {
                entry: &key,
                value: (!last).then_some(&value[..]),
                flags: SEMAPHORE_FLAGS,
                index,
            };
            let done = client
                .txn_cas_and_delete(prefix, cas, &contender, timeout)
                .await?;
            Ok(match done {
                Some(index) => Step::Done((!last).then_some((value, index))),
                None => Step::Read,
            })
        }
        .await;
        match result {
            Ok(Step::Done(value)) => {
                if let Some(written) = written.as_deref_mut() {
                    written.value = value;
                }
                break;
            }
            // Another writer came first, or the memory could not decide: read `.lock` again.
            Ok(Step::Read) => {}
            Err(e) if e.is_transient() && Instant::now() < give_up_at => {
                tracing::debug!(key = %key, error = %e, "leaving the semaphore failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "could not remove this holder from the semaphore; the next contender prunes it once its session ends");
                break;
            }
        }
        if Instant::now() >= give_up_at {
            tracing::warn!(key = %key, "could not remove this holder from the semaphore in time; the next contender prunes it once its session ends");
            break;
        }
    }
    // Given back or not, the session ends next: it is no longer one of this process's live
    // holders.
    if let Some(written) = written.as_deref_mut() {
        written.mine.remove(session);
    }
}

/// What one try of [`remove_holder`] ended with.
enum Step {
    /// Done: `.lock`'s value and index now, if it is still there.
    Done(Option<(Vec<u8>, u64)>),
    /// Read `.lock` (the prefix) again.
    Read,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_written_as_go_writes_it() {
        let mut table = SlotTable {
            limit: 2,
            holders: BTreeMap::new(),
        };
        table.holders.insert("b".into(), true);
        table.holders.insert("a".into(), true);
        let json = serde_json::to_string(&table).unwrap();
        assert_eq!(json, r#"{"Limit":2,"Holders":{"a":true,"b":true}}"#);
        let back: SlotTable = serde_json::from_str(r#"{"Limit":3,"Holders":null}"#).unwrap();
        assert_eq!(back.limit, 3);
        assert!(back.holders.is_empty());
    }
}
