//! Shared test setup: a Consul to talk to (the embedded test server, or a real agent when
//! `CONSUL_HTTP_ADDR` is set), a client for it, and a unique key prefix per test.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use consul_lock_runtime::{Client, Lock, WAITERS_SUFFIX};
use consul_lock_testkit::TestConsul;

pub mod slow;

/// Waiters queued by [`Env::queue_waiters`].
pub struct Queued {
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The waiters' numbers, in the order they got the key.
    pub order: Arc<Mutex<Vec<usize>>>,
    pub clients: Vec<Client>,
}

pub struct Env {
    pub consul: TestConsul,
    pub client: Client,
    pub prefix: String,
}

impl Env {
    /// Starts (or connects to) Consul for the test named `name`.
    pub fn new(name: &str) -> Env {
        let consul = TestConsul::from_env_or_start()
            .expect("start the test server or reach CONSUL_HTTP_ADDR");
        // From the environment, so that a real agent's token and TLS settings apply. These
        // tests count the lock protocol's requests, so the client is told that the agent is no
        // server instead of asking (the two requests a client sends once otherwise, tested in
        // `tests/agent_kind.rs`); the test server and a dev agent are lone servers, which
        // make no difference to a lease.
        let client = consul_lock_runtime::ClientBuilder::from_env()
            .expect("CONSUL_* variables")
            .address(consul.url())
            .session_ttl_min(consul.session_ttl_min())
            .agent_is_server(false)
            .build()
            .expect("client");
        let prefix = format!("test/runtime/{name}-{:08x}/", fastrand::u32(..));
        Env {
            consul,
            client,
            prefix,
        }
    }

    /// Another client for the same Consul (its own request counter and connection pool).
    pub fn another_client(&self) -> Client {
        consul_lock_runtime::ClientBuilder::from_env()
            .expect("CONSUL_* variables")
            .address(self.consul.url())
            .session_ttl_min(self.min_ttl())
            .agent_is_server(false)
            .build()
            .expect("client")
    }

    /// Returns once `n` live waiters are queued for `queue_of`, the key whose queue they join
    /// (`<queue_of>/.waiters/<session>`): a lock's full key, the held key a lock on several
    /// keys waits for, or a semaphore's `PREFIX/.lock`. Watched with blocking queries.
    pub async fn until_queued(&self, queue_of: &str, n: usize) {
        let queue = format!("{queue_of}{WAITERS_SUFFIX}");
        let mut index = 0;
        loop {
            let (entries, next) = self
                .client
                .kv_watch_list(&queue, index, Duration::from_secs(10))
                .await
                .expect("watch the queue");
            if entries.iter().filter(|e| e.session.is_some()).count() >= n {
                return;
            }
            index = next;
        }
    }

    /// The full key of `key` under this test's prefix.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The one session of this test other than `known` (a waiter's, while `known` holds).
    pub async fn session_other_than(&self, known: &str) -> String {
        self.my_sessions()
            .await
            .into_iter()
            .find(|id| id != known)
            .expect("another session of this test")
    }

    /// Queues `n` waiters for `key` while it is held, one after another, each with a client of
    /// its own (as separate processes do): each starts once the one before it has queued. When a
    /// waiter gets the key it records its number in the returned order, then releases.
    /// Returns the waiters' tasks, that order, and their clients.
    pub async fn queue_waiters(&self, key: &str, n: usize, timeout: Duration) -> Queued {
        let order = Arc::new(Mutex::new(Vec::new()));
        let (mut tasks, mut clients) = (Vec::new(), Vec::new());
        for i in 0..n {
            let client = self.another_client();
            let lock = self.lock(key).client(&client).acquire_timeout(timeout);
            let order = order.clone();
            tasks.push(tokio::spawn(async move {
                let guard = lock.acquire().await.expect("acquired in turn");
                order.lock().unwrap().push(i);
                guard.release().await.unwrap();
            }));
            self.until_queued(&self.key(key), i + 1).await;
            clients.push(client);
        }
        Queued {
            tasks,
            order,
            clients,
        }
    }

    /// A lock on `key` under this test's prefix, with this test's client.
    pub fn lock(&self, key: &str) -> Lock {
        Lock::new(key)
            .key_prefix(self.prefix.clone())
            .client(&self.client)
    }

    /// The shortest lock timeout the server accepts (1 s on the test server, 10 s on an agent
    /// with default settings).
    pub fn min_ttl(&self) -> Duration {
        self.consul.session_ttl_min()
    }

    /// Sessions of this test: those created by this library for keys under this test's
    /// prefix (a lock's own session is named after its key), and those that hold a key there
    /// (a client's shared session, named `consul-lock: shared #…`, holding a lock or a queue
    /// entry). A shared session that holds nothing of this test any more is not one.
    pub async fn my_sessions(&self) -> Vec<String> {
        consul_lock_runtime::flush_releases().await;
        let marker = format!("consul-lock: {}", self.prefix);
        let listed = self.client.sessions().await.expect("list sessions");
        let holding: Vec<String> = self
            .client
            .kv_list(&self.prefix)
            .await
            .expect("list keys")
            .into_iter()
            .filter_map(|e| e.session)
            .collect();
        let mut mine: Vec<String> = Vec::new();
        for s in listed {
            if (s.name.starts_with(&marker) || holding.contains(&s.id)) && !mine.contains(&s.id) {
                mine.push(s.id);
            }
        }
        mine
    }

    /// Keys left under this test's prefix.
    pub async fn my_keys(&self) -> Vec<String> {
        self.client.kv_keys(&self.prefix).await.expect("list keys")
    }

    /// Says why a fault-injection test does not run, and whether it may.
    pub fn embedded_or_skip(&self, test: &str) -> bool {
        if self.consul.server().is_none() {
            eprintln!("{test}: needs the embedded test server's fault injection; skipped against a real agent");
            return false;
        }
        true
    }
}
