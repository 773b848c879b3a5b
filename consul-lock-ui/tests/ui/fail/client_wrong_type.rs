use consul_lock::consul_lock;

#[consul_lock(key = "jobs/<id>", client = "127.0.0.1:8500")]
fn f(id: u32) -> Result<u32, consul_lock::Error> {
    Ok(id)
}

fn main() {
    let _ = f(1);
}
