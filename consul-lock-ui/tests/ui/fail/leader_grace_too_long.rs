use consul_lock::Leadership;

#[consul_lock::leader(name = "scheduler", lock_timeout_seconds = 20, grace_ms = 9000)]
async fn f(leadership: Leadership) -> Result<(), consul_lock::Error> {
    drop(leadership);
    Ok(())
}

fn main() {
    drop(f());
}
