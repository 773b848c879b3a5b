use consul_lock::consul_lock;

#[consul_lock(key = "jobs/<id>")]
fn f(id: u32) {
    let _ = id;
}

fn main() {
    f(1);
}
