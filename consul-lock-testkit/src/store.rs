//! The replicated state of a Consul server, kept in one process: the raft-like index shared
//! by all writes, the KV table with its tombstones, sessions with their TTL deadlines, and
//! lock-delays. Everything here is synchronous; the HTTP layer locks it, applies one write
//! and publishes the new index to blocking queries.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

pub(crate) use crate::kv_table::{Entry, Kv};

/// Consul's cap on a lock-delay.
pub(crate) const MAX_LOCK_DELAY: Duration = Duration::from_secs(60);
/// Consul multiplies a session's TTL by this for its invalidation timer.
pub(crate) const TTL_MULTIPLIER: u32 = 2;

/// A session (`structs.Session`) and its TTL deadline.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub id: String,
    pub name: String,
    pub node: String,
    pub lock_delay_ns: i64,
    pub behavior_delete: bool,
    pub ttl: String,
    pub ttl_dur: Option<Duration>,
    pub node_checks: Option<Vec<String>>,
    /// The IDs of its service checks (`null` when none were given, `[]` when an empty list was).
    pub service_checks: Option<Vec<String>>,
    pub create_index: u64,
    pub modify_index: u64,
    /// When the TTL timer invalidates it (last renewal + 2 × TTL).
    pub deadline: Option<Instant>,
}

/// The ID of the node health check every Consul agent's node has.
pub(crate) const SERF_HEALTH: &str = "serfHealth";

impl Session {
    /// Whether the session is tied to the node check `check` (its `NodeChecks`; check IDs
    /// are matched ignoring case, as Consul's index does).
    pub(crate) fn carries(&self, check: &str) -> bool {
        self.node_checks
            .iter()
            .flatten()
            .any(|c| c.eq_ignore_ascii_case(check))
    }

    fn renew_deadline(&mut self, now: Instant) {
        self.deadline = self.ttl_dur.map(|t| now + t * TTL_MULTIPLIER);
    }
}

/// Everything the server stores.
#[derive(Clone, Debug)]
pub(crate) struct Store {
    pub raft_index: u64,
    pub kv: Kv,
    pub sessions: BTreeMap<String, Session>,
    pub sessions_index: u64,
    lock_delays: HashMap<String, Instant>,
    /// Whether the node's `serfHealth` check is critical (the node-health fault).
    pub node_critical: bool,
    /// Whether the node is registered in the catalog (the deregistration fault).
    pub node_registered: bool,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            // A fresh Consul agent has applied a few raft entries before serving.
            raft_index: 10,
            kv: Kv::default(),
            sessions: BTreeMap::new(),
            sessions_index: 0,
            lock_delays: HashMap::new(),
            node_critical: false,
            node_registered: true,
        }
    }
}

impl Store {
    /// Allocates the index of a new raft write.
    pub(crate) fn next_index(&mut self) -> u64 {
        self.raft_index += 1;
        self.raft_index
    }

    /// When a lock-delay on `key` ends, if one runs.
    pub(crate) fn lock_delay(&self, key: &str, now: Instant) -> Option<Instant> {
        self.lock_delays.get(key).copied().filter(|t| *t > now)
    }

    pub(crate) fn sessions_table_index(&self) -> u64 {
        self.sessions_index.max(1)
    }

    pub(crate) fn insert_session(&mut self, mut s: Session, now: Instant) -> String {
        let idx = self.next_index();
        s.create_index = idx;
        s.modify_index = idx;
        s.renew_deadline(now);
        self.sessions_index = idx;
        let id = s.id.clone();
        self.sessions.insert(id.clone(), s);
        id
    }

    /// A session by ID; Consul's UUID index ignores case.
    pub(crate) fn session(&self, id: &str) -> Option<&Session> {
        self.sessions.get(&id.to_ascii_lowercase())
    }

    pub(crate) fn renew_session(&mut self, id: &str, now: Instant) -> Option<Session> {
        let s = self.sessions.get_mut(&id.to_ascii_lowercase())?;
        s.renew_deadline(now);
        Some(s.clone())
    }

    /// Resets every TTL timer, as a newly elected leader does.
    pub(crate) fn reset_session_timers(&mut self, now: Instant) {
        for s in self.sessions.values_mut() {
            s.renew_deadline(now);
        }
    }

    /// Destroys or invalidates a session: its locks are released or their keys deleted
    /// (its `Behavior`), and its `LockDelay` starts on each key it held.
    pub(crate) fn invalidate_session(&mut self, id: &str, now: Instant) -> bool {
        if self.session(id).is_none() {
            return false;
        }
        let idx = self.next_index();
        self.invalidate_session_at(id, idx, now)
    }

    /// Sets the node's `serfHealth` check critical or passing, in one write (as Consul's
    /// catalog update of the check is one Raft entry). Going critical invalidates, at that
    /// index, every session of `node` that carries the check, and only those; sessions created
    /// without checks live on. Returns how many were invalidated.
    pub(crate) fn set_node_health(&mut self, node: &str, critical: bool, now: Instant) -> usize {
        let idx = self.next_index();
        self.node_critical = critical;
        if !critical {
            return 0;
        }
        let bound: Vec<String> = self
            .sessions
            .values()
            .filter(|s| s.node == node && s.carries(SERF_HEALTH))
            .map(|s| s.id.clone())
            .collect();
        for id in &bound {
            self.invalidate_session_at(id, idx, now);
        }
        bound.len()
    }

    /// Deregisters the node (or registers it again), in one write, as Consul's catalog does:
    /// deregistering ends every session of `node` at that index, whatever its checks, and no
    /// session can be created for it until it is registered again. Returns how many ended.
    pub(crate) fn set_node_registered(
        &mut self,
        node: &str,
        registered: bool,
        now: Instant,
    ) -> usize {
        let idx = self.next_index();
        self.node_registered = registered;
        if registered {
            self.node_critical = false;
            return 0;
        }
        let ids: Vec<String> = self
            .sessions
            .values()
            .filter(|s| s.node == node)
            .map(|s| s.id.clone())
            .collect();
        for id in &ids {
            self.invalidate_session_at(id, idx, now);
        }
        ids.len()
    }

    /// [`invalidate_session`](Self::invalidate_session) at the index `idx` of a write that
    /// may invalidate several sessions.
    fn invalidate_session_at(&mut self, id: &str, idx: u64, now: Instant) -> bool {
        let Some(sess) = self.sessions.remove(&id.to_ascii_lowercase()) else {
            return false;
        };
        self.sessions_index = idx;
        let held: Vec<Entry> = self
            .kv
            .entries
            .values()
            .filter(|e| e.session.eq_ignore_ascii_case(&sess.id))
            .cloned()
            .collect();
        let delay = u64::try_from(sess.lock_delay_ns)
            .ok()
            .map(Duration::from_nanos)
            .map(|d| d.min(MAX_LOCK_DELAY))
            .filter(|d| !d.is_zero());
        self.lock_delays.retain(|_, t| *t > now);
        for mut e in held {
            if let Some(d) = delay {
                self.lock_delays.insert(e.key.clone(), now + d);
            }
            if sess.behavior_delete {
                self.kv.delete(idx, &e.key);
            } else {
                e.session.clear();
                self.kv.set(idx, e, true);
            }
        }
        true
    }

    /// The earliest TTL deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.sessions.values().filter_map(|s| s.deadline).min()
    }

    /// Invalidates every session whose TTL deadline has passed; returns how many.
    pub(crate) fn expire_due(&mut self, now: Instant) -> usize {
        let due: Vec<String> = self
            .sessions
            .values()
            .filter(|s| s.deadline.is_some_and(|d| d <= now))
            .map(|s| s.id.clone())
            .collect();
        for id in &due {
            self.invalidate_session(id, now);
        }
        due.len()
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::go::uuid::check_uuid;

    #[test]
    fn lock_indexes_and_fencing() {
        let mut st = Store::default();
        let now = Instant::now();
        let s = Session {
            id: "2826b3f3-6d27-baaf-33fc-aa51e9062ebc".into(),
            name: String::new(),
            node: "n".into(),
            lock_delay_ns: 0,
            behavior_delete: true,
            ttl: String::new(),
            ttl_dur: None,
            node_checks: None,
            service_checks: None,
            create_index: 0,
            modify_index: 0,
            deadline: None,
        };
        let id = st.insert_session(s, now);
        let idx = st.next_index();
        let e = st
            .kv
            .lock(
                idx,
                Entry::new("k", b"v".to_vec(), 0, &id),
                &st.sessions.clone(),
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            (e.lock_index, e.create_index, e.modify_index),
            (1, idx, idx)
        );
        // Re-locking with the same content is a no-op for the indexes.
        let idx2 = st.next_index();
        let e2 = st
            .kv
            .lock(
                idx2,
                Entry::new("k", b"v".to_vec(), 0, &id),
                &st.sessions.clone(),
            )
            .unwrap()
            .unwrap();
        assert_eq!(e2.modify_index, idx);
        assert!(st.invalidate_session(&id, now));
        assert!(st.kv.get("k").1.is_none());
        assert!(st.kv.get("k").0 > idx2);
        assert_eq!(
            check_uuid("not-a-uuid").unwrap_err(),
            "UUID must be 36 characters"
        );
    }
}
