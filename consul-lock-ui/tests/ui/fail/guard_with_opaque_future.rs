use consul_lock::consul_lock;
use std::future::Future;

#[consul_lock(key = "jobs/<id>", guard = lock)]
fn f(id: u32) -> impl Future<Output = Result<u32, consul_lock::Error>> {
    std::future::ready(Ok(id))
}

fn main() {
    let _ = f(1);
}
