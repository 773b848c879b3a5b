use consul_lock::consul_lock;

#[consul_lock(key = "accounts/<from>", key = "accounts/<from>")]
fn f(from: u32) -> Result<u32, consul_lock::Error> {
    Ok(from)
}

fn main() {
    let _ = f(1);
}
