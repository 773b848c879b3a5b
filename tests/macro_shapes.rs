//! Every supported function shape compiles, with no warning even under
//! `#![deny(warnings, clippy::pedantic)]` (run `cargo clippy --tests` to check the latter).
//! The behaviour of each shape is tested in `macro_behaviour.rs`.

#![deny(warnings, clippy::pedantic)]
#![allow(clippy::unused_async, clippy::missing_errors_doc, dead_code)]

use std::future::Future;
use std::pin::Pin;

use consul_lock::{consul_lock, Client, Error};

#[derive(Debug)]
pub enum AppError {
    Lock(Error),
    Other(String),
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError::Lock(e)
    }
}

pub struct Job {
    pub id: u64,
    pub pair: (u32, String),
}

pub struct Service {
    pub consul: Client,
    pub tenant: String,
    pub count: u32,
}

#[consul_lock(key = "send/user-<user_id>/welcome-email", acquire_timeout_ms = 500)]
pub async fn async_free(user_id: u64, note: &str) -> Result<usize, AppError> {
    if note.is_empty() {
        return Err(AppError::Other("empty".into()));
    }
    let n: usize = note.parse().map_err(|_| AppError::Other("nan".into()))?;
    Ok(n + usize::try_from(user_id).unwrap_or_default())
}

#[consul_lock(key = "jobs/<job.id>/<job.pair.0>", lock_timeout_seconds = 30, renew)]
pub fn sync_free(job: &Job) -> Result<String, AppError> {
    Ok(job.pair.1.clone())
}

#[must_use]
#[consul_lock(key = "soft/<id>", fail_soft)]
pub fn sync_soft(id: u32) -> Option<u32> {
    Some(id)
}

#[consul_lock(key = "soft/<id>", fail_soft, guard = lock)]
pub async fn async_soft(id: u32) -> Result<Option<u64>, AppError> {
    Ok(Some(lock.fencing_token() + u64::from(id)))
}

impl Service {
    #[consul_lock(key = "svc/<self.tenant>", client = self.consul)]
    pub async fn by_ref(&self) -> Result<&str, AppError> {
        Ok(&self.tenant)
    }

    #[consul_lock(key = "svc/<self.tenant>/count", client = &self.consul, guard = lock)]
    pub fn by_mut(&mut self) -> Result<u32, AppError> {
        self.count += 1;
        let _ = lock.is_held();
        Ok(self.count)
    }

    #[consul_lock(key = "svc/<self.tenant>/take", client = self.consul.clone())]
    pub async fn by_value(self) -> Result<String, AppError> {
        Ok(self.tenant)
    }

    #[consul_lock(key = "svc/<name>")]
    pub fn generic<T, N>(&self, name: N, value: T) -> Result<T, Error>
    where
        N: std::fmt::Display,
        T: Clone,
    {
        let _ = name;
        Ok(value)
    }
}

#[consul_lock(key = "impl-arg/<label>")]
pub async fn impl_trait_arg(
    label: impl std::fmt::Display + Send,
    items: impl IntoIterator<Item = u8>,
) -> Result<u32, Error> {
    let _ = label;
    Ok(items.into_iter().map(u32::from).sum())
}

#[consul_lock(key = "pattern/<a>/<b>/<x>")]
pub fn pattern_args((a, b): (u32, u32), Job { id: x, .. }: Job) -> Result<u64, Error> {
    Ok(u64::from(a + b) + x)
}

#[consul_lock(key = "impl-ret/<n>")]
pub async fn returns_impl(n: u32) -> Result<impl std::fmt::Display, Error> {
    Ok(n)
}

#[consul_lock(key = "future/<n>", guard = lock)]
pub fn returns_future(n: u32) -> impl Future<Output = Result<u64, AppError>> + Send {
    async move { Ok(u64::from(n) + lock.fencing_token()) }
}

#[consul_lock(key = "future/opaque/<n>")]
pub fn returns_future_opaque(n: u32) -> impl Future<Output = Result<u32, Error>> {
    let doubled = n * 2;
    std::future::ready(Ok(doubled))
}

#[must_use]
#[consul_lock(key = "future/boxed/<n>", fail_soft)]
pub fn returns_boxed(n: u32) -> Pin<Box<dyn Future<Output = Option<u32>> + Send>> {
    Box::pin(async move { Some(n) })
}

trait Worker {
    fn name(&self) -> String;

    #[consul_lock(key = "worker/<id>")]
    async fn work(&self, id: u32) -> Result<u32, Error> {
        Ok(id)
    }

    #[consul_lock(key = "worker/sync/<id>")]
    fn work_sync(&self, id: u32) -> Result<u32, Error> {
        Ok(id)
    }
}

pub struct W;

impl Worker for W {
    fn name(&self) -> String {
        "w".into()
    }

    #[consul_lock(key = "worker/w/<id>")]
    async fn work(&self, id: u32) -> Result<u32, Error> {
        Ok(id + 1)
    }
}

// What `#[async_trait]` leaves for the attribute: a sync fn returning a boxed future.
pub trait Boxed {
    fn run<'a>(&'a self, id: u32) -> Pin<Box<dyn Future<Output = Result<u32, Error>> + Send + 'a>>;
}

impl Boxed for Service {
    #[consul_lock(key = "boxed/<self.tenant>/<id>", guard = lock)]
    fn run<'a>(&'a self, id: u32) -> Pin<Box<dyn Future<Output = Result<u32, Error>> + Send + 'a>> {
        Box::pin(async move {
            let _ = lock.key();
            Ok(id + self.count)
        })
    }
}

pub struct Order {
    customer: String,
}

impl Order {
    #[must_use]
    pub fn customer_id(&self) -> &str {
        &self.customer
    }

    /// A getter whose value is not `Send`.
    #[must_use]
    pub fn label(&self) -> std::rc::Rc<str> {
        self.customer.as_str().into()
    }
}

// The getters' values (a borrow, a non-`Send` `Rc`) end where the key is rendered: the
// future stays `Send` and the owned order can be moved into the body.
#[consul_lock(key = "orders/<order.customer_id()>/<order.label()>")]
pub async fn getters(order: Order) -> Result<String, Error> {
    Ok(order.customer)
}

fn assert_send<T: Send>(_: &T) {}

#[test]
fn futures_are_send() {
    let svc = Service {
        consul: Client::builder().address("127.0.0.1:1").build().unwrap(),
        tenant: "t".into(),
        count: 0,
    };
    assert_send(&async_free(1, "2"));
    assert_send(&async_soft(1));
    assert_send(&svc.by_ref());
    assert_send(&returns_future(1));
    assert_send(&svc.run(1));
    assert_send(&W.work(1));
    assert_send(&getters(Order {
        customer: "c".into(),
    }));
}
