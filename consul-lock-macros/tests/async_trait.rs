//! `#[consul_lock]` on `#[async_trait]` methods: `#[async_trait]` on the impl block expands
//! first and leaves `Box::pin(async move { .. })` bodies, which the attribute wraps in place.
//! Checked against the embedded test server (or `CONSUL_HTTP_ADDR`).

#![deny(warnings, clippy::pedantic)]
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use consul_lock::{consul_lock, Client, Error, Lock};
use consul_lock_testkit::TestConsul;

#[async_trait]
trait Jobs {
    async fn run(&self, id: u32) -> Result<u64, Error>;
    async fn run_soft(&self, id: u32) -> Result<Option<u32>, Error>;
    fn consul(&self) -> &Client;

    // A default method in an `#[async_trait]` trait.
    #[consul_lock(key = "macro-tests/<run>/default-<id>", client = self.consul())]
    async fn run_default(&self, run: String, id: u32) -> Result<u32, Error> {
        if id == 0 {
            return Ok(0);
        }
        Ok(id)
    }
}

struct Service {
    consul: Client,
    run: String,
    calls: AtomicU32,
}

#[async_trait]
impl Jobs for Service {
    #[consul_lock(key = "macro-tests/<self.run>/job-<id>", client = self.consul, guard = lock)]
    async fn run(&self, id: u32) -> Result<u64, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        // Held while the body runs: another task sees it held (this task asking again would
        // be refused as re-entry).
        let key = format!("macro-tests/{}/job-{id}", self.run);
        let client = self.consul.clone();
        let other = tokio::spawn(async move { Lock::new(key).client(&client).try_acquire().await })
            .await
            .expect("the other task")?;
        assert!(other.is_none());
        Ok(lock.fencing_token())
    }

    #[consul_lock(key = "macro-tests/<self.run>/job-<id>", client = self.consul, fail_soft)]
    async fn run_soft(&self, id: u32) -> Result<Option<u32>, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(Some(id))
    }

    fn consul(&self) -> &Client {
        &self.consul
    }
}

fn service() -> (TestConsul, Service) {
    let consul = TestConsul::from_env_or_start().expect("test server");
    let client = Client::builder()
        .address(consul.url())
        .session_ttl_min(consul.session_ttl_min())
        .build()
        .expect("client");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let run = format!("async-trait-{}-{nanos:09}", std::process::id());
    let service = Service {
        consul: client,
        run,
        calls: AtomicU32::new(0),
    };
    (consul, service)
}

#[tokio::test(flavor = "multi_thread")]
async fn async_trait_methods_lock_and_release() {
    let (consul, svc) = service();
    let first = svc.run(1).await.expect("acquired");
    let second = svc
        .run(1)
        .await
        .expect("free again right after the first call");
    assert!(second > first);
    assert_eq!(svc.run_soft(1).await.unwrap(), Some(1));
    assert_eq!(svc.run_default(svc.run.clone(), 0).await.unwrap(), 0);
    assert_eq!(svc.run_default(svc.run.clone(), 5).await.unwrap(), 5);

    // Held by another client (another process, as far as the methods' client can tell).
    let outsider = Client::builder()
        .address(consul.url())
        .session_ttl_min(consul.session_ttl_min())
        .build()
        .unwrap();
    let holder = Lock::new(format!("macro-tests/{}/job-1", svc.run))
        .client(&outsider)
        .acquire()
        .await
        .unwrap();
    assert!(matches!(svc.run(1).await, Err(Error::NotAcquired { .. })));
    assert_eq!(svc.run_soft(1).await.unwrap(), None);
    assert_eq!(
        svc.calls.load(Ordering::SeqCst),
        3,
        "bodies ran only when acquired"
    );
    holder.release().await.unwrap();

    // The futures are `Send`, as `#[async_trait]` requires.
    let svc = std::sync::Arc::new(svc);
    let s = svc.clone();
    tokio::spawn(async move { s.run(2).await })
        .await
        .unwrap()
        .unwrap();
    consul_lock::flush_releases().await;
    let key = format!(
        "{}macro-tests/{}/job-2",
        consul_lock::defaults::key_prefix(),
        svc.run
    );
    assert!(svc.consul.kv_get(&key).await.unwrap().is_none(), "released");
}
