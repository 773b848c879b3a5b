use consul_lock::{consul_lock, Error};

#[consul_lock(key = "inner/<id>")]
fn run(id: u32) -> Result<u32, Error> {
    #![allow(unused_variables)]
    let unused = 1;
    Ok(id)
}

fn main() {
    let _ = run(1);
}
