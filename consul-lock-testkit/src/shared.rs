//! The state shared by the listener, the connection tasks, the TTL timer task and the
//! [`TestServer`](crate::TestServer) handle.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::{watch, Notify};

use crate::config::ServerConfig;
use crate::faults::Faults;
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
