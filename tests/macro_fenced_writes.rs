//! Fenced writes from the attribute: the body reaches its lock through `guard = name` and
//! writes with `name.fence()`, for a lock (async and sync), several keys and a semaphore slot;
//! a body whose lock was taken away is refused by Consul with `Error::LockLost`. Against the
//! embedded test server, or a real agent when `CONSUL_HTTP_ADDR` is set.

mod common;

use consul_lock::{consul_lock, Client, Error, KvOp};
use consul_lock_testkit::TestConsul;

struct Env {
    _consul: TestConsul,
    client: Client,
    run: String,
}

impl Env {
    fn new(name: &str) -> Env {
        let consul = common::consul();
        Env {
            client: common::client(&consul),
            _consul: consul,
            run: common::run_name(name),
        }
    }

    fn data(&self, key: &str) -> String {
        format!("macro-fenced-data/{}/{key}", self.run)
    }

    /// Deletes what the test wrote (through a fenced delete-tree under a lock of its own).
    async fn clean_up(&self) {
        clean(self).await.expect("clean up");
        let locks = format!("locks/ephemeral/macro-fenced/{}/", self.run);
        let left = self.client.kv_keys(&locks).await.expect("list");
        assert!(left.is_empty(), "no lock key left: {left:?}");
    }
}

#[consul_lock(key = "macro-fenced/<env.run>/clean", client = env.client, guard = lock)]
async fn clean(env: &Env) -> Result<(), Error> {
    let tree = format!("macro-fenced-data/{}/", env.run);
    // The semaphore's state key stays after its last holder left (Consul's layout).
    let semaphore = format!("locks/ephemeral/macro-fenced/{}/exports/", env.run);
    let ops = [KvOp::delete_tree(tree), KvOp::delete_tree(semaphore)];
    lock.fence().txn(ops).await.map(drop)
}

#[consul_lock(key = "macro-fenced/<env.run>/report-<day>", client = env.client, guard = lock)]
async fn write_report(env: &Env, day: u32, text: &str) -> Result<u64, Error> {
    let index = lock
        .fence()
        .put(env.data(&format!("report-{day}")), text)
        .await?;
    assert!(index > lock.fencing_token());
    Ok(index)
}

#[consul_lock(key = "macro-fenced/<env.run>/sync", client = env.client, guard = lock)]
fn write_sync(env: &Env, text: &str) -> Result<u64, Error> {
    lock.fence().put_blocking(env.data("sync"), text)
}

#[consul_lock(key = "macro-fenced/<env.run>/taken", client = env.client, guard = lock)]
async fn write_after_losing(env: &Env) -> Result<(), Error> {
    lock.fence().put(env.data("taken"), "first").await?;
    // An operator takes the lock away in the middle of the body.
    env.client.destroy_session(lock.session_id()).await?;
    lock.fence().put(env.data("taken"), "second").await?;
    Ok(())
}

#[consul_lock(
    key = "macro-fenced/<env.run>/accounts/<from>",
    key = "macro-fenced/<env.run>/accounts/<to>",
    client = env.client,
    guard = lock
)]
async fn transfer(env: &Env, from: u32, to: u32) -> Result<(), Error> {
    let fence = lock.fence();
    assert_eq!(fence.checks().len(), 2, "every key is checked");
    fence
        .txn([
            KvOp::set(env.data(&format!("balance-{from}")), "90"),
            KvOp::set(env.data(&format!("balance-{to}")), "110"),
        ])
        .await
        .map(drop)
}

#[consul_lock(key = "macro-fenced/<env.run>/exports", limit = 2, client = env.client, guard = slot)]
async fn export(env: &Env) -> Result<(), Error> {
    assert_eq!(slot.fence().checks()[0].0, slot.contender_key());
    slot.fence().put(env.data("export"), "done").await.map(drop)
}

#[tokio::test]
async fn bodies_write_through_their_lock_fence() {
    let env = Env::new("fenced");
    let first = write_report(&env, 1, "monday").await.unwrap();
    let second = write_report(&env, 1, "monday, again").await.unwrap();
    assert!(second > first);
    let entry = env.client.kv_get(&env.data("report-1")).await.unwrap();
    assert_eq!(entry.expect("written").value, b"monday, again");
    transfer(&env, 17, 42).await.unwrap();
    export(&env).await.unwrap();
    let keys = env.client.kv_keys(&env.data("")).await.unwrap();
    assert_eq!(keys.len(), 4, "{keys:?}");
    env.clean_up().await;
}

#[test]
fn a_sync_body_writes_through_its_lock_fence() {
    let env = Env::new("fenced-sync");
    write_sync(&env, "from a sync function").unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let entry = env.client.kv_get(&env.data("sync")).await.unwrap();
        assert_eq!(entry.expect("written").value, b"from a sync function");
        env.clean_up().await;
    });
}

#[tokio::test]
async fn a_body_whose_lock_was_taken_away_is_refused_by_consul() {
    let env = Env::new("fenced-lost");
    let err = write_after_losing(&env).await.unwrap_err();
    match &err {
        Error::LockLost { key, .. } => assert!(key.ends_with("/taken"), "{key}"),
        other => panic!("expected LockLost, got {other:?}"),
    }
    let entry = env.client.kv_get(&env.data("taken")).await.unwrap();
    assert_eq!(entry.expect("the first write").value, b"first");
    env.clean_up().await;
}
