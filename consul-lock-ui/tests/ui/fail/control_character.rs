use consul_lock::consul_lock;

#[consul_lock(key = "jobs/\t<id>")]
fn f(id: u32) -> Result<u32, consul_lock::Error> {
    Ok(id)
}

fn main() {
    let _ = f(1);
}
