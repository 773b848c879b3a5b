use consul_lock::consul_lock;

#[derive(Debug)]
struct MyError;

#[consul_lock(key = "jobs/<id>")]
fn f(id: u32) -> Result<u32, MyError> {
    Ok(id)
}

fn main() {
    let _ = f(1);
}
