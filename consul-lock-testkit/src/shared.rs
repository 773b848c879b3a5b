//! The state shared by the listener, the connection tasks, the TTL timer task and the
//! [`TestServer`](crate::TestServer) handle, and what every endpoint asks of it: writes that
//! wake blocking queries, the leader checks (held while there is none, as Consul does), ACL
//! resolution and the datacenter check.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::{watch, Notify};

use crate::acl::{self, Authz};
use crate::blocking::QueryOpts;
use crate::config::ServerConfig;
use crate::faults::Faults;
use crate::request::Req;
use crate::resp::{Meta, Resp};
use crate::store::Store;

pub(crate) struct Shared {
    pub config: ServerConfig,
    store: Mutex<Store>,
    /// The raft index after the last write; blocking queries wait on it.
    pub index_tx: watch::Sender<u64>,
    /// Wakes the TTL timer task when a session is created.
    pub ttl_notify: Notify,
    pub faults: Faults,
    pub requests: AtomicU64,
    pub live_tasks: Arc<AtomicUsize>,
    /// Open connections per client IP (for `http_max_conns_per_client`).
    pub conns_per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
    /// ACL tokens deleted since the start (`revoke_token`): unknown from then on.
    pub revoked: Mutex<Vec<String>>,
}

impl Shared {
    pub(crate) fn new(config: ServerConfig, store: Store) -> Shared {
        let idx = store.raft_index;
        Shared {
            config,
            store: Mutex::new(store),
            index_tx: watch::Sender::new(idx),
            ttl_notify: Notify::new(),
            faults: Faults::new(),
            requests: AtomicU64::new(0),
            live_tasks: Arc::new(AtomicUsize::new(0)),
            conns_per_ip: Arc::new(Mutex::new(HashMap::new())),
            revoked: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs a write and wakes blocking queries if the raft index moved.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let mut st = self.store();
        let before = st.raft_index;
        let out = f(&mut st);
        let after = st.raft_index;
        drop(st);
        if after != before {
            self.index_tx.send_replace(after);
        }
        out
    }

    /// Replaces the whole state (restart without keeping state).
    pub(crate) fn replace_store(&self, store: Store) {
        let idx = store.raft_index;
        *self.store() = store;
        self.index_tx.send_replace(idx);
        self.ttl_notify.notify_one();
    }

    pub(crate) fn has_leader(&self) -> bool {
        self.faults.leader_state().has_leader(Instant::now())
    }

    pub(crate) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::SeqCst);
    }

    /// Holds a request while there is no leader, up to `leaderless_hold`.
    pub(crate) async fn wait_leader(&self) -> Result<(), Resp> {
        let deadline = Instant::now() + self.config.leaderless_hold;
        let mut rx = self.faults.leader.subscribe();
        loop {
            let st = *rx.borrow_and_update();
            let now = Instant::now();
            if st.in_election(now) {
                // A client agent's RPC to the old leader fails at once during an election.
                return Err(Resp::text(500, self.faults.election_error()));
            }
            if st.has_leader(now) {
                return Ok(());
            }
            if now >= deadline {
                return Err(Resp::text(500, "No cluster leader"));
            }
            let wake = st.until.map_or(deadline, |u| u.min(deadline));
            tokio::select! {
                r = rx.changed() => { if r.is_err() { return Err(Resp::text(500, "No cluster leader")); } }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
        }
    }

    /// Leader check for a read: stale reads answer at once, others are held.
    pub(crate) async fn read_meta(&self, qo: &QueryOpts) -> Result<Meta, Resp> {
        let st = self.faults.leader_state();
        let now = Instant::now();
        if st.has_leader(now) {
            return Ok(Meta {
                known_leader: true,
                last_contact_ms: 0,
            });
        }
        if qo.stale {
            let since = st
                .since
                .map_or(0, |s| now.duration_since(s).as_millis() as u64);
            return Ok(Meta {
                known_leader: false,
                last_contact_ms: since,
            });
        }
        self.wait_leader().await?;
        Ok(Meta {
            known_leader: true,
            last_contact_ms: 0,
        })
    }

    /// What every write needs before it runs: a leader (held while there is none, as
    /// Consul does) and the caller's ACL token resolved.
    pub(crate) async fn write_access(&self, req: &Req) -> Result<Authz, Resp> {
        self.wait_leader().await?;
        self.authz(req)
    }

    pub(crate) fn authz(&self, req: &Req) -> Result<Authz, Resp> {
        let token = req.token();
        let revoked = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
        if self.config.acl.is_some() && revoked.contains(&token) {
            return Err(Resp::text(403, acl::ACL_NOT_FOUND));
        }
        drop(revoked);
        acl::resolve(self.config.acl.as_ref(), &token).map_err(|m| Resp::text(403, m))
    }

    /// `?dc=` naming another datacenter.
    pub(crate) fn check_dc(&self, req: &Req) -> Result<(), Resp> {
        match req.get("dc") {
            Some(dc) if !dc.is_empty() && dc != self.config.datacenter => {
                Err(Resp::text(500, "No path to datacenter"))
            }
            _ => Ok(()),
        }
    }
}

/// Counts a live task for as long as it is held.
pub(crate) struct TaskGuard(Arc<AtomicUsize>);

impl TaskGuard {
    pub(crate) fn new(c: &Arc<AtomicUsize>) -> TaskGuard {
        c.fetch_add(1, Ordering::SeqCst);
        TaskGuard(c.clone())
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
