use consul_lock::consul_lock;

#[consul_lock(key = "jobs/<id>")]
fn f(id: u32) -> Result<u64, consul_lock::Error> {
    let _ = id;
    Ok(consul_lock_guard.fencing_token())
}

fn main() {
    let _ = f(1);
}
