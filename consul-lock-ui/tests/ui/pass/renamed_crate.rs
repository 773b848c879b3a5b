// A renamed dependency (`locks = { package = "consul-lock" }`) is named with `crate = "..."`.
extern crate consul_lock as locks;

use locks::consul_lock;

#[consul_lock(key = "renamed/<id>", crate = "locks")]
fn run(id: u32) -> Result<u32, locks::Error> {
    Ok(id)
}

#[consul_lock(key = "renamed/<id>", crate = "::locks")]
async fn run_async(id: u32) -> Result<u32, locks::Error> {
    Ok(id)
}

fn main() {
    let _ = run(1);
    let _ = run_async(1);
}
