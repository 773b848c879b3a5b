use consul_lock::consul_lock;

#[derive(Debug)]
enum AppError {
    Lock(consul_lock::Error),
    Parse(std::num::ParseIntError),
}

impl From<consul_lock::Error> for AppError {
    fn from(e: consul_lock::Error) -> Self {
        AppError::Lock(e)
    }
}

impl From<std::num::ParseIntError> for AppError {
    fn from(e: std::num::ParseIntError) -> Self {
        AppError::Parse(e)
    }
}

#[consul_lock(key = "jobs/<id>", acquire_timeout_ms = 0, lock_timeout_seconds = 86400, renew)]
fn run(id: u32, text: &str) -> Result<u32, AppError> {
    if id == 0 {
        return Ok(0);
    }
    let n: u32 = text.parse()?;
    Ok(id + n)
}

fn main() {
    let _ = run(1, "2");
}
