use consul_lock::consul_lock;

#[consul_lock(key = "jobs/<id>")]
async fn f(id: u32) -> u32 {
    id
}

fn main() {
    let _ = f(1);
}
