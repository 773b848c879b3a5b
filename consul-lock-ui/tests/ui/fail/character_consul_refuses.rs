use consul_lock::consul_lock;

// U+202E RIGHT-TO-LEFT OVERRIDE: Consul answers 400 to any URL path that holds it.
#[consul_lock(key = "jobs/report\u{202E}/<id>")]
fn f(id: u32) -> Result<u32, consul_lock::Error> {
    Ok(id)
}

fn main() {
    let _ = f(1);
}
