#![deny(dead_code)]

use consul_lock::consul_lock;

#[consul_lock(key = "jobs/<id>")]
fn never_called(id: u32) -> Result<u32, consul_lock::Error> {
    Ok(id)
}

fn main() {}
