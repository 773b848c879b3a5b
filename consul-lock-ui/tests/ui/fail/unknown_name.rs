use consul_lock::consul_lock;

#[consul_lock(key = "send/user-<usr_id>/welcome-email")]
async fn send(user_id: u64) -> Result<(), consul_lock::Error> {
    let _ = user_id;
    Ok(())
}

fn main() {
    let _ = send(1);
}
