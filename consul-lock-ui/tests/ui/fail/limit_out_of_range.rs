use consul_lock::consul_lock;

#[consul_lock(key = "jobs/<id>", limit = 0)]
fn f(id: u32) -> Result<u32, consul_lock::Error> {
    Ok(id)
}

#[consul_lock(key = "jobs/<id>", limit = 5000)]
fn g(id: u32) -> Result<u32, consul_lock::Error> {
    Ok(id)
}

fn main() {
    let _ = f(1);
    let _ = g(1);
}
