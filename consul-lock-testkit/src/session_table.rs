//! A session as the server stores it (`structs.Session`), with its TTL deadline: a leaf, so
//! that the KV table (which checks a lock's session) and the store (which holds both) do not
//! import each other.

use std::time::{Duration, Instant};

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

    pub(crate) fn renew_deadline(&mut self, now: Instant) {
        self.deadline = self.ttl_dur.map(|t| now + t * TTL_MULTIPLIER);
    }
}
