use consul_lock::{consul_lock, Error};

#[consul_lock(key = "impl-arg/<label>")]
async fn sum(label: impl std::fmt::Display, items: impl IntoIterator<Item = u8>) -> Result<u32, Error> {
    let _ = label;
    Ok(items.into_iter().map(u32::from).sum())
}

#[consul_lock(key = "impl-ret/<n>")]
fn display(n: u32) -> Result<impl std::fmt::Display, Error> {
    Ok(n)
}

fn main() {
    let _ = sum("x", vec![1, 2]);
    let _ = display(1);
}
