use consul_lock::consul_lock;

struct UserId(u64);

#[consul_lock(key = "users/<id>")]
fn f(id: UserId) -> Result<u64, consul_lock::Error> {
    Ok(id.0)
}

fn main() {
    let _ = f(UserId(1));
}
