//! The semaphore protocol, in Consul's own layout (as Go's `api.Semaphore` and
//! `consul lock -n N` write it), so that Rust, Go and the Consul CLI share the same slots:
//!
//! - each contender's session acquires `PREFIX/<session>` (the contender key);
//! - `PREFIX/.lock` holds `{"Limit":N,"Holders":{"<session>":true,…}}`, updated with
//!   check-and-set;
//! - both carry the flags [`SEMAPHORE_FLAGS`];
//! - a holder whose session holds no key under the prefix any more is dead, and is pruned by
//!   the next contender that reads the prefix.
//!
//! A contender waits with blocking queries on the prefix: a release (the `.lock` update, or
//! the contender key deleted with its session) wakes it at once.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::Instrument as _;

use super::outcome::Outcome;
use super::pending::PendingSession;
use super::retry::{Backoff, Deadline, MIN_LEFT};
use super::round::{self, RoundSession};
use super::Background;
use crate::api::kv_write::Cas;
use crate::{Blocker, Client, Error, KvEntry, Result};

/// The flags Go's `api.Semaphore` puts on its keys (`api.SemaphoreFlagValue`).
pub const SEMAPHORE_FLAGS: u64 = 0xe0f6_9a2b_aa41_4de0;

/// The flags Go's `api.Lock` puts on its key (`api.LockFlagValue`), to name a conflict.
const GO_LOCK_FLAGS: u64 = 0x2ddc_cbc0_58a5_0c18;

/// The name of the coordination key under the prefix (`api.DefaultSemaphoreKey`).
pub const SEMAPHORE_LOCK_KEY: &str = ".lock";

/// The largest limit accepted: the `.lock` value lists every holder's session (about 45 bytes
/// each), and every contender rewrites it, so very large limits make every acquire slow.
pub const MAX_SEMAPHORE_LIMIT: u32 = 1024;

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

/// Everything a semaphore acquisition needs, resolved and checked before any request.
pub(crate) struct SemPlan {
    pub(crate) client: Client,
    /// The full prefix (no trailing `/`).
    pub(crate) prefix: String,
    pub(crate) limit: u32,
    pub(crate) acquire_timeout: Duration,
    pub(crate) ttl: Duration,
    /// The value stored in the contender key.
    pub(crate) value: Vec<u8>,
}

impl SemPlan {
    pub(crate) fn lock_key(&self) -> String {
        lock_key(&self.prefix)
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

/// A slot just taken.
pub(crate) struct Taken {
    pub(crate) session_id: String,
    /// The index of the read that saw the slot taken (the contender key's watch starts there).
    pub(crate) index: u64,
    pub(crate) renewed: Instant,
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

/// Takes a slot of `plan.prefix`, within a `consul_lock.semaphore.acquire` span.
pub(crate) async fn acquire(plan: &SemPlan, bg: impl Background) -> Result<Taken> {
    let span = tracing::info_span!(
        "consul_lock.semaphore.acquire",
        key = %plan.prefix,
        limit = plan.limit,
        waited_ms = tracing::field::Empty,
        attempts = tracing::field::Empty,
    );
    acquire_loop(plan, bg).instrument(span).await
}

async fn acquire_loop(plan: &SemPlan, bg: impl Background) -> Result<Taken> {
    let client = &plan.client;
    let lock_key = plan.lock_key();
    let tree = format!("{}/", plan.prefix);
    let mut out = Outcome::new(&plan.prefix, Deadline::new(plan.acquire_timeout));
    let mut backoff = Backoff::new();
    let mut session: Option<PendingSession<_>> = None;
    // Whether the kept session holds its contender key.
    let mut contending = false;
    // The index of the last read of the prefix; 0: read at once.
    let mut index = 0u64;
    // Set while `.lock` may list this session without the acquire knowing it (a
    // check-and-set on its way, or unanswered): ended without the slot, it leaves the table.
    let mut listed: Option<MaybeListed<_>> = None;
    loop {
        // 1. A session (kept from the last round, renewed at TTL/2) and its contender key.
        let round = round::session(
            &mut session,
            bg,
            client,
            &plan.prefix,
            plan.ttl,
            &mut out,
            &mut backoff,
        );
        let Some(RoundSession {
            session: pending,
            fresh,
        }) = round.await?
        else {
            continue;
        };
        if fresh {
            contending = false;
        }
        let Some(timeout) = out.deadline.request_timeout(client.request_timeout()) else {
            return Err(out.not_acquired());
        };
        if !contending {
            let entry = contender_key(&plan.prefix, pending.id());
            let made = client
                .kv_acquire_flagged(
                    &plan.prefix,
                    &entry,
                    plan.value.clone(),
                    pending.id(),
                    SEMAPHORE_FLAGS,
                    timeout,
                )
                .await;
            match made {
                Ok(true) => contending = true,
                // Consul refuses an acquire only for a session it no longer knows.
                Ok(false) => {
                    pending.forget();
                    continue;
                }
                Err(e) if e.is_invalid_session() => {
                    pending.forget();
                    continue;
                }
                Err(e) if e.is_transient() && out.retry_after(&e, &mut backoff).await => {
                    session = Some(pending);
                    continue;
                }
                Err(e) => return Err(out.give_up(e)),
            }
        }

        // 2. Read the prefix: at once, or as a blocking query until it changes (a release),
        // the session needs renewing, or the deadline.
        let Some(timeout) = out.deadline.request_timeout(client.request_timeout()) else {
            return Err(out.not_acquired());
        };
        let blocking = if index == 0 {
            None
        } else {
            let left = out.deadline.remaining().unwrap_or(MIN_LEFT);
            let wait = (left - left / 16)
                .min(pending.until_refresh(Instant::now()))
                .max(MIN_LEFT);
            Some((index, wait))
        };
        let read_timeout = match blocking {
            Some((_, wait)) => (wait + wait / 16 + client.request_timeout())
                .min(out.deadline.remaining().unwrap_or(MIN_LEFT)),
            None => timeout,
        };
        let read = client
            .kv_read_tree(&plan.prefix, &tree, blocking, read_timeout)
            .await;
        let (entries, new_index) = match read {
            Ok(read) => read,
            Err(e) if e.is_transient() && out.retry_after(&e, &mut backoff).await => {
                session = Some(pending);
                index = 0;
                continue;
            }
            Err(e) => return Err(out.give_up(e)),
        };
        backoff.reset();
        if !entries
            .iter()
            .any(|e| e.session.as_deref() == Some(pending.id()))
        {
            // The contender key is gone (the session ended, or someone deleted it).
            session = Some(pending);
            contending = false;
            index = 0;
            continue;
        }
        let (mut table, lock_index) = read_table(&plan.prefix, plan.limit, &entries)?;
        prune_dead(&mut table, &entries);
        if table.holders.contains_key(pending.id()) {
            // A check-and-set whose answer was lost had gone through.
            MaybeListed::disarm(&mut listed);
            return Ok(taken(&out, pending, new_index));
        }
        // Not listed: a check-and-set whose answer was lost did not go through.
        MaybeListed::disarm(&mut listed);

        // 3. Full: wait for a change. Free: take a slot with check-and-set.
        if table.holders.len() >= plan.limit as usize {
            out.blocked_by = Some(Blocker::Holder);
            if !out.deadline.can_retry() {
                return Err(out.not_acquired());
            }
            // Consul's rule: an index that goes backwards resets the wait.
            index = if new_index < index {
                0
            } else {
                new_index.max(1)
            };
            session = Some(pending);
            continue;
        }
        table.holders.insert(pending.id().to_owned(), true);
        let Some(timeout) = out.deadline.request_timeout(client.request_timeout()) else {
            return Err(out.not_acquired());
        };
        out.attempts += 1;
        let value = serde_json::to_vec(&table).unwrap_or_default();
        listed = Some(MaybeListed {
            bg,
            client: client.clone(),
            prefix: plan.prefix.clone(),
            limit: plan.limit,
            session: Some(pending.id().to_owned()),
        });
        let set = client
            .kv_cas(
                &plan.prefix,
                &lock_key,
                value,
                SEMAPHORE_FLAGS,
                lock_index,
                timeout,
            )
            .await;
        if set.is_ok() {
            MaybeListed::disarm(&mut listed);
        }
        match set {
            Ok(true) => return Ok(taken(&out, pending, new_index)),
            // Another contender changed `.lock` first: read again at once.
            Ok(false) => {
                index = 0;
                session = Some(pending);
                if !out.deadline.can_retry() {
                    return Err(out.not_acquired());
                }
            }
            Err(e) if e.is_transient() && out.retry_after(&e, &mut backoff).await => {
                index = 0;
                session = Some(pending);
            }
            Err(e) => return Err(out.give_up(e)),
        }
    }
}

/// A session that `.lock` may list although its acquire does not know it yet: a check-and-set
/// on its way, or one whose answer was lost. Dropped armed (the acquire ended without the slot:
/// an error, the deadline, a cancellation), it takes the session out of the table again
/// ([`leave`]), so that a semaphore nobody holds leaves no `.lock` behind; the next contender
/// would prune the dead holder, but there may be none.
struct MaybeListed<B: Background> {
    bg: B,
    client: Client,
    prefix: String,
    limit: u32,
    /// `None` once disarmed.
    session: Option<String>,
}

impl<B: Background> MaybeListed<B> {
    /// The outcome is known: nothing to undo.
    fn disarm(listed: &mut Option<Self>) {
        if let Some(mut l) = listed.take() {
            l.session = None;
        }
    }
}

impl<B: Background> Drop for MaybeListed<B> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            let (client, prefix, limit) = (self.client.clone(), self.prefix.clone(), self.limit);
            self.bg.detach(async move {
                leave(&client, &prefix, limit, &session).await;
            });
        }
    }
}

fn taken<B: Background>(out: &Outcome, pending: PendingSession<B>, index: u64) -> Taken {
    out.record();
    let (session_id, renewed) = pending.into_parts();
    Taken {
        session_id,
        index,
        renewed,
    }
}

/// Gives a slot back: removes `session` from `PREFIX/.lock` with check-and-set and deletes
/// its contender key in the same transaction (one write, so waiters wake once), retrying
/// conflicts and transient failures for up to one request timeout. When no live holder is
/// left, `.lock` itself is deleted (check-and-set too, as Go's `Semaphore.Destroy` does), so
/// that a semaphore nobody holds leaves no key behind; a contender creates it again. The
/// caller then ends the session; should this fail, the session's end deletes the contender
/// key and the next contender prunes the dead holder, so a failure is only logged.
pub(crate) async fn leave(client: &Client, prefix: &str, limit: u32, session: &str) {
    let key = lock_key(prefix);
    let contender = contender_key(prefix, session);
    let give_up_at = Instant::now() + client.request_timeout();
    let mut backoff = Backoff::between(Duration::from_millis(10), Duration::from_millis(500));
    loop {
        let timeout = give_up_at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        let result = async {
            let (entries, _) = client
                .kv_read_tree(prefix, &format!("{prefix}/"), None, timeout)
                .await?;
            let (mut table, index) = read_table(prefix, limit, &entries)?;
            if index == 0 || table.holders.remove(session).is_none() {
                return Ok(true);
            }
            prune_dead(&mut table, &entries);
            let value = serde_json::to_vec(&table).unwrap_or_default();
            client
                .txn_cas_and_delete(
                    prefix,
                    Cas {
                        entry: &key,
                        value: (!table.holders.is_empty()).then_some(&value[..]),
                        flags: SEMAPHORE_FLAGS,
                        index,
                    },
                    &contender,
                    timeout,
                )
                .await
        }
        .await;
        match result {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) if e.is_transient() && Instant::now() < give_up_at => {
                tracing::debug!(key = %key, error = %e, "leaving the semaphore failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "could not remove this holder from the semaphore; the next contender prunes it once its session ends");
                return;
            }
        }
        if Instant::now() >= give_up_at {
            tracing::warn!(key = %key, "could not remove this holder from the semaphore in time; the next contender prunes it once its session ends");
            return;
        }
    }
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
