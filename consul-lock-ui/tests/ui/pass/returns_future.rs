use consul_lock::{consul_lock, Error};
use std::future::Future;

// The body is one `async move` block: the lock wraps it, and `guard` works.
#[consul_lock(key = "future/<n>", guard = lock)]
fn inline(n: u32) -> impl Future<Output = Result<u64, Error>> + Send {
    async move { Ok(u64::from(n) + lock.fencing_token()) }
}

// Any other body builds the future first; it is awaited under the lock.
#[consul_lock(key = "future/opaque/<n>")]
fn opaque(n: u32) -> impl Future<Output = Result<u32, Error>> {
    let doubled = n * 2;
    std::future::ready(Ok(doubled))
}

#[consul_lock(key = "future/boxed/<n>", fail_soft)]
fn boxed(n: u32) -> futures::future::BoxFuture<'static, Option<u32>> {
    Box::pin(std::future::ready(Some(n)))
}

fn main() {
    let _ = inline(1);
    let _ = opaque(1);
    let _ = boxed(1);
}
