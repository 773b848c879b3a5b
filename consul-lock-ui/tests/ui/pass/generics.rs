use consul_lock::{consul_lock, Error};
use std::fmt::Display;

#[consul_lock(key = "items/<name>")]
fn generic<T, N>(name: N, value: T) -> Result<T, Error>
where
    N: Display,
    T: Clone,
{
    let _ = name;
    Ok(value.clone())
}

#[consul_lock(key = "items/<name>/lifetimes", crate = "consul_lock")]
async fn with_lifetime<'a, N: Display + Sync>(name: &'a N, items: &'a [u8]) -> Result<&'a [u8], Error> {
    let _ = name;
    Ok(items)
}

fn main() {
    let _ = generic("a", 1u8);
    let _ = with_lifetime(&"a", &[1, 2]);
}
