//! `#[consul_lock]` with the `key` option repeated: every key is taken at once (one
//! transaction) or none, the body sees a `&MultiLockGuard`, and every key is free afterwards.
//! Against the embedded test server, or a real agent when `CONSUL_HTTP_ADDR` is set.

mod common;

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use consul_lock::{consul_lock, Client, Error, Lock, MultiLockGuard};
use consul_lock_testkit::TestConsul;

/// A bank for one test: its Consul, a run id that makes its keys unique, balances, and how
/// many transfers are inside each account right now.
struct Bank {
    _consul: TestConsul,
    client: Client,
    run: String,
    balances: [AtomicI64; 2],
    inside: [AtomicU32; 2],
    overlaps: AtomicU64,
    ran: AtomicU32,
}

impl Bank {
    fn new(name: &str) -> Arc<Bank> {
        let consul = common::consul();
        Arc::new(Bank {
            client: common::client(&consul),
            _consul: consul,
            run: common::run_name(name),
            balances: [AtomicI64::new(100), AtomicI64::new(100)],
            inside: [AtomicU32::new(0), AtomicU32::new(0)],
            overlaps: AtomicU64::new(0),
            ran: AtomicU32::new(0),
        })
    }

    /// The full Consul key of account `n`, as the attribute renders it.
    fn full(&self, n: usize) -> String {
        format!(
            "{}bank/{}/accounts/{n}",
            consul_lock::defaults::key_prefix(),
            self.run
        )
    }

    fn enter(&self, n: usize) {
        if self.inside[n].fetch_add(1, Ordering::SeqCst) != 0 {
            self.overlaps.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn leave(&self, n: usize) {
        self.inside[n].fetch_sub(1, Ordering::SeqCst);
    }
}

/// The example of `docs/attribute.md`: both accounts are locked, in one transaction, whatever the order.
#[consul_lock(
    key = "bank/<bank.run>/accounts/<from>",
    key = "bank/<bank.run>/accounts/<to>",
    client = bank.client,
    acquire_timeout_ms = 30000,
    guard = lock
)]
async fn transfer(bank: &Bank, from: usize, to: usize, amount: i64) -> Result<Vec<u64>, Error> {
    bank.ran.fetch_add(1, Ordering::SeqCst);
    bank.enter(from);
    if to != from {
        bank.enter(to);
    }
    let held: &MultiLockGuard = lock;
    assert!(held.is_held());
    // Both keys are held by the guard's one session, with their tokens.
    for (key, token) in held.fencing_tokens() {
        let entry = bank.client.kv_get(key).await?.expect("held");
        assert_eq!(entry.session.as_deref(), Some(held.session_id()));
        assert_eq!(entry.modify_index, *token);
    }
    // Read, pause, write: a lost update if two transfers touched one account at once.
    let (a, b) = (
        bank.balances[from].load(Ordering::SeqCst),
        bank.balances[to].load(Ordering::SeqCst),
    );
    tokio::time::sleep(Duration::from_millis(1)).await; // the work under the lock
    if to != from {
        bank.balances[from].store(a - amount, Ordering::SeqCst);
        bank.balances[to].store(b + amount, Ordering::SeqCst);
        bank.leave(to);
    }
    bank.leave(from);
    Ok(held.fencing_tokens().iter().map(|(_, t)| *t).collect())
}

#[consul_lock(
    key = "bank/<bank.run>/accounts/<from>",
    key = "bank/<bank.run>/accounts/<to>",
    client = bank.client,
    fail_soft
)]
async fn try_transfer(bank: &Bank, from: usize, to: usize) -> Result<Option<()>, Error> {
    bank.ran.fetch_add(1, Ordering::SeqCst);
    let _ = (from, to);
    Ok(Some(()))
}

#[consul_lock(
    key = "bank/<bank.run>/accounts/<from>",
    key = "bank/<bank.run>/accounts/<to>",
    client = bank.client,
    guard = lock
)]
fn audit(bank: &Bank, from: usize, to: usize) -> Result<Vec<String>, Error> {
    bank.ran.fetch_add(1, Ordering::SeqCst);
    let _ = (from, to);
    // Held while the body runs: neither key can be taken on its own.
    for key in lock.keys() {
        let one = Lock::new(key.to_owned())
            .key_prefix("")
            .client(&bank.client);
        assert!(one.try_acquire_blocking()?.is_none(), "{key} is held");
    }
    Ok(lock.keys().into_iter().map(str::to_owned).collect())
}

#[tokio::test]
async fn both_accounts_are_locked_by_one_session_and_freed_after() {
    let bank = Bank::new("both");
    let tokens = transfer(&bank, 0, 1, 10).await.expect("transfer");
    assert_eq!(tokens.len(), 2);
    assert!(tokens.iter().all(|t| *t > 0));
    assert_eq!(bank.balances[0].load(Ordering::SeqCst), 90);
    assert_eq!(bank.balances[1].load(Ordering::SeqCst), 110);
    for n in 0..2 {
        assert!(bank.client.kv_get(&bank.full(n)).await.unwrap().is_none());
    }
    let keys = tokio::task::spawn_blocking({
        let bank = bank.clone();
        move || audit(&bank, 1, 0)
    })
    .await
    .unwrap()
    .expect("sync audit");
    assert_eq!(keys, [bank.full(1), bank.full(0)]);
    assert!(bank.client.kv_get(&bank.full(0)).await.unwrap().is_none());
}

#[tokio::test]
async fn one_held_account_stops_the_transfer_without_taking_the_other() {
    let bank = Bank::new("held");
    let holder = Lock::new(format!("bank/{}/accounts/1", bank.run))
        .client(&bank.client)
        .acquire()
        .await
        .unwrap();
    assert_eq!(try_transfer(&bank, 0, 1).await.unwrap(), None);
    assert_eq!(bank.ran.load(Ordering::SeqCst), 0, "the body did not run");
    let err = tokio::task::spawn_blocking({
        let bank = bank.clone();
        move || audit(&bank, 0, 1)
    })
    .await
    .unwrap()
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&bank.full(0)) && message.contains(&bank.full(1)),
        "the error names both keys: {message}"
    );
    assert!(bank.client.kv_get(&bank.full(0)).await.unwrap().is_none());
    holder.release().await.unwrap();
    assert_eq!(try_transfer(&bank, 0, 1).await.unwrap(), Some(()));
}

#[tokio::test]
async fn a_transfer_to_the_same_account_locks_it_once() {
    let bank = Bank::new("self");
    let tokens = transfer(&bank, 1, 1, 10).await.expect("transfer to itself");
    assert_eq!(tokens.len(), 1, "the two keys render the same: locked once");
    assert_eq!(bank.balances[1].load(Ordering::SeqCst), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opposite_transfers_never_deadlock_and_never_lose_money() {
    const ROUNDS: usize = 20;
    let bank = Bank::new("opposite");
    let mut tasks = Vec::new();
    for (from, to) in [(0, 1), (1, 0), (0, 1), (1, 0)] {
        let bank = bank.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..ROUNDS {
                transfer(&bank, from, to, 1).await.expect("no deadlock");
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(bank.overlaps.load(Ordering::SeqCst), 0);
    // As many transfers each way: the balances are back where they started.
    assert_eq!(bank.balances[0].load(Ordering::SeqCst), 100);
    assert_eq!(bank.balances[1].load(Ordering::SeqCst), 100);
    assert_eq!(bank.ran.load(Ordering::SeqCst), 4 * ROUNDS as u32);
}
