use consul_lock::consul_lock;

#[consul_lock(key = "jobs/<id>", guard = id)]
fn f(id: u32) -> Result<u64, consul_lock::Error> {
    Ok(u64::from(id))
}

fn main() {
    let _ = f(1);
}
