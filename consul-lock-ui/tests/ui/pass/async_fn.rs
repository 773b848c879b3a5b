use consul_lock::consul_lock;

#[derive(Debug)]
enum AppError {
    Lock(consul_lock::Error),
    Empty,
}

impl From<consul_lock::Error> for AppError {
    fn from(e: consul_lock::Error) -> Self {
        AppError::Lock(e)
    }
}

struct Mailer;

#[consul_lock(key = "send/user-<user_id>/welcome-email", acquire_timeout_ms = 500)]
async fn send_welcome_email(user_id: u64, mailer: &Mailer) -> Result<(), AppError> {
    let _ = (user_id, mailer);
    Ok(())
}

// `return` and `?` in the body; the error type is inferred from the signature.
#[consul_lock(key = "parse/<text>", lock_timeout_seconds = 10, renew = false)]
async fn parse(text: &str) -> Result<u32, AppError> {
    if text.is_empty() {
        return Err(AppError::Empty);
    }
    let n = text.parse::<u32>().map_err(|_| AppError::Empty)?;
    Ok(n)
}

fn main() {
    let _ = send_welcome_email(1, &Mailer);
    let _ = parse("1");
}
