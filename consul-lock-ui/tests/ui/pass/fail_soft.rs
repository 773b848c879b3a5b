use consul_lock::{consul_lock, Error};

type AppResult<T> = Result<T, Error>;

#[consul_lock(key = "soft/<id>", fail_soft)]
fn option(id: u32) -> Option<u32> {
    Some(id)
}

#[consul_lock(key = "soft/<id>", fail_soft = true)]
async fn result_option(id: u32) -> Result<Option<u32>, Error> {
    Ok(Some(id))
}

// Type aliases work: the check is on the type, not its spelling.
#[consul_lock(key = "soft/alias/<id>", fail_soft)]
fn alias(id: u32) -> AppResult<Option<u32>> {
    Ok(Some(id))
}

#[consul_lock(key = "hard/<id>", fail_soft = false)]
fn hard(id: u32) -> AppResult<u32> {
    Ok(id)
}

fn main() {
    let _ = option(1);
    let _ = result_option(1);
    let _ = alias(1);
    let _ = hard(1);
}
