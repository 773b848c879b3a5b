use consul_lock::consul_lock;

// Each template is checked: the second names a parameter that does not exist.
#[consul_lock(key = "accounts/<from>", key = "accounts/<too>")]
fn f(from: u32, to: u32) -> Result<u32, consul_lock::Error> {
    Ok(from + to)
}

fn main() {
    let _ = f(1, 2);
}
