use consul_lock::Leadership;

// Not async: the body could not be cancelled when the leadership ends.
#[consul_lock::leader(name = "a")]
fn not_async(leadership: Leadership) -> Result<(), consul_lock::Error> {
    drop(leadership);
    Ok(())
}

// No `Leadership` parameter.
#[consul_lock::leader(name = "b")]
async fn no_leadership(id: u32) -> Result<u32, consul_lock::Error> {
    Ok(id)
}

// A return type with no room for an election error.
#[consul_lock::leader(name = "c")]
async fn wrong_return(leadership: Leadership) -> u64 {
    leadership.fencing_token()
}

fn main() {}
