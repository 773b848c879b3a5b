// Generated code names everything by absolute path: local modules named like the crates it
// uses, and local items named like the runtime's types, change nothing.
#![allow(dead_code, non_camel_case_types)]

use consul_lock::consul_lock;

mod core {}
mod std {}
mod consul_lock_private {}
struct Result;
struct Option;
struct Lock;
struct Duration;
fn render() {}

#[consul_lock(key = "shadow/<id>", acquire_timeout_ms = 5, lock_timeout_seconds = 10, renew)]
fn sync(id: u32) -> ::std::result::Result<u32, consul_lock::Error> {
    Ok(id)
}

#[consul_lock(key = "shadow/<id>", fail_soft)]
async fn soft(id: u32) -> ::std::option::Option<u32> {
    Some(id)
}

#[consul_lock(key = "shadow/<id>")]
fn boxed(id: u32) -> ::std::pin::Pin<::std::boxed::Box<dyn ::std::future::Future<Output = ::std::result::Result<u32, consul_lock::Error>> + Send>> {
    ::std::boxed::Box::pin(async move { Ok(id) })
}

fn main() {
    let _ = sync(1);
    let _ = soft(1);
    let _ = boxed(1);
}
