use consul_lock::{consul_lock, Error, LockGuard, LockHandle};

#[consul_lock(key = "guard/<id>", guard = lock)]
async fn token(id: u32) -> Result<(u64, String, bool, LockHandle), Error> {
    let _ = id;
    let guard: &LockGuard = lock;
    Ok((guard.fencing_token(), lock.key().to_owned(), lock.is_held(), lock.handle()))
}

#[consul_lock(key = "guard/sync/<id>", guard = held)]
fn token_sync(id: u32) -> Result<u64, Error> {
    let _ = id;
    Ok(held.fencing_token())
}

fn main() {
    let _ = token(1);
    let _ = token_sync(1);
}
