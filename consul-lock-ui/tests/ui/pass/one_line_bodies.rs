// Bodies on one line (`{ Ok(id) }`), for every shape and option, add no warning with every
// lint denied: rustc's `unused_braces` looks at one-line blocks only, so the multi-line
// bodies of `deny_warnings.rs` did not show it (issue 19: "unnecessary braces around block
// return value", whose "help: remove these braces" breaks the code).
#![deny(warnings, unused, unused_qualifications, unused_results, rust_2018_idioms, missing_docs)]
//! Crate docs.

use consul_lock::{consul_lock, Client, Error};
use std::future::Future;

/// The issue's function, as written there (without importing `Error`).
pub mod issue {
    use consul_lock::consul_lock;

    /// Sync, one line.
    #[consul_lock(key = "one/sync/<id>")]
    pub fn sync_job(id: u64) -> Result<u64, consul_lock::Error> { Ok(id) }
}

/// Async.
#[consul_lock(key = "one/async/<id>", acquire_timeout_ms = 500)]
pub async fn async_job(id: u64) -> Result<u64, Error> { Ok(id) }

/// Unit.
#[consul_lock(key = "one/unit")]
pub async fn unit() -> Result<(), Error> { Ok(()) }

/// Fail-soft, `Result<Option<T>, E>`, with the guard.
#[consul_lock(key = "one/soft/<id>", acquire_timeout_ms = 500, fail_soft, guard = lock)]
pub async fn soft(id: u64) -> Result<Option<u64>, Error> { Ok(Some(id + lock.fencing_token())) }

/// Fail-soft, `Option<T>`, sync.
#[consul_lock(key = "one/soft-sync/<id>", fail_soft = true)]
pub fn soft_sync(id: u64) -> Option<u64> { Some(id) }

/// A client.
pub fn consul() -> Client { Client::builder().address("127.0.0.1:1").build().unwrap() }

/// Every lock option at once.
#[consul_lock(
    key = "one/all/<id>",
    acquire_timeout_ms = 0,
    lock_timeout_seconds = 30,
    renew,
    fail_soft,
    guard = lock,
    client = consul(),
    crate = "consul_lock"
)]
pub async fn all(id: u64) -> Result<Option<bool>, Error> { Ok(Some(id > 0 && lock.is_held())) }

/// The Consul CLI's layout.
#[consul_lock(key = "one/cli", consul_cli, renew = false)]
pub fn cli() -> Result<u8, Error> { Ok(1) }

/// A semaphore.
#[consul_lock(key = "one/pool", limit = 2, guard = slot)]
pub async fn pool() -> Result<u32, Error> { Ok(slot.limit()) }

/// Several keys.
#[consul_lock(key = "one/a/<a>", key = "one/b/<b>", guard = both)]
pub fn two(a: u32, b: u32) -> Result<usize, Error> { Ok(both.keys().len() + (a + b) as usize) }

/// `?` and `return` on one line.
#[consul_lock(key = "one/early/<n>")]
pub fn early(n: u32) -> Result<u32, Error> { if n == 0 { return Ok(0); } let m = n.checked_sub(1).ok_or(Error::Reentrant { key: String::new() })?; Ok(m) }

/// A future built on one line, and an `async move` block.
#[consul_lock(key = "one/future/<n>")]
pub fn future(n: u32) -> impl Future<Output = Result<u32, Error>> { std::future::ready(Ok(n)) }

/// An `async move` block on one line.
#[consul_lock(key = "one/block/<n>", guard = lock)]
pub fn block(n: u32) -> impl Future<Output = Result<u64, Error>> + Send { async move { Ok(u64::from(n) + lock.fencing_token()) } }

/// A generic function.
#[consul_lock(key = "one/generic/<value>")]
pub fn generic<T: std::fmt::Display>(value: T) -> Result<String, Error> { Ok(value.to_string()) }

/// Methods.
pub struct Service {
    consul: Client,
    tenant: String,
    count: u32,
}

impl Service {
    /// `&self`, async.
    #[consul_lock(key = "one/svc/<self.tenant>", client = self.consul)]
    pub async fn by_ref(&self) -> Result<&str, Error> { Ok(&self.tenant) }

    /// `&mut self`, sync.
    #[consul_lock(key = "one/svc/<self.tenant>/count", client = &self.consul)]
    pub fn by_mut(&mut self) -> Result<u32, Error> { self.count += 1; Ok(self.count) }

    /// `self`, async, fail-soft.
    #[consul_lock(key = "one/svc/<self.tenant>/take", client = self.consul.clone(), fail_soft)]
    pub async fn by_value(self) -> Option<String> { Some(self.tenant) }
}

/// A trait with locked methods.
pub trait Worker {
    /// Async in a trait.
    #[consul_lock(key = "one/worker/<id>")]
    fn work(&self, id: u32) -> impl Future<Output = Result<u32, Error>> + Send { async move { Ok(id) } }

    /// Sync in a trait.
    #[consul_lock(key = "one/worker/sync/<id>")]
    fn work_sync(&self, id: u32) -> Result<u32, Error> { Ok(id) }
}

/// A worker.
pub struct W;

impl Worker for W {}

/// An async fn in an impl of a trait.
pub trait Job {
    /// Runs.
    fn run(&self, id: u32) -> impl Future<Output = Result<u32, Error>>;
}

impl Job for W {
    #[consul_lock(key = "one/job/<id>")]
    async fn run(&self, id: u32) -> Result<u32, Error> { Ok(id + 1) }
}

fn main() {
    // Futures are dropped, values ignored: the point is that all of it compiles cleanly.
    let _ = issue::sync_job(1);
    drop(async_job(1));
    drop(unit());
    drop(soft(1));
    let _ = soft_sync(1);
    drop(all(1));
    let _ = cli();
    drop(pool());
    let _ = two(1, 2);
    let _ = early(1);
    drop(future(1));
    drop(block(1));
    let _ = generic(1);
    let mut s = Service {
        consul: consul(),
        tenant: "t".into(),
        count: 0,
    };
    drop(s.by_ref());
    let _ = s.by_mut();
    drop(s.by_value());
    drop(W.work(1));
    let _ = W.work_sync(1);
    drop(W.run(1));
}
