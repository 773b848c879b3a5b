use consul_lock::consul_lock;

#[consul_lock(key = "jobs/<id>")]
async fn f(id: u32) -> Result<u32, consul_lock::Error> {
    let name: String = id;
    Ok(name.len() as u32)
}

fn main() {
    let _ = f(1);
}
