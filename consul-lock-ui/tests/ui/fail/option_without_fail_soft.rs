use consul_lock::consul_lock;

#[consul_lock(key = "jobs/<id>")]
fn f(id: u32) -> Option<u32> {
    Some(id)
}

fn main() {
    let _ = f(1);
}
