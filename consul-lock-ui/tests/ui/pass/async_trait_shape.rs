// What `#[async_trait]` leaves for `#[consul_lock]` (the outer attribute expands first):
// a sync method returning `Pin<Box<dyn Future + Send>>` whose body is `Box::pin(async move {..})`.
use consul_lock::{consul_lock, Error};
use std::future::Future;
use std::pin::Pin;

trait Jobs {
    fn run<'a>(&'a self, id: u32) -> Pin<Box<dyn Future<Output = Result<u32, Error>> + Send + 'a>>;
}

struct Service {
    tenant: String,
}

impl Jobs for Service {
    #[consul_lock(key = "boxed/<self.tenant>/<id>", guard = lock)]
    fn run<'a>(&'a self, id: u32) -> Pin<Box<dyn Future<Output = Result<u32, Error>> + Send + 'a>> {
        Box::pin(async move {
            let __self = self;
            let _ = lock.key();
            Ok(id + u32::try_from(__self.tenant.len()).unwrap_or(0))
        })
    }
}

fn main() {
    let s = Service { tenant: "t".into() };
    let _ = s.run(1);
}
