//! A lock taken, contended and released: the attribute and the runtime API side by side.
//!
//! ```sh
//! cargo run --example quickstart                                # embedded test server
//! CONSUL_HTTP_ADDR=127.0.0.1:8500 cargo run --example quickstart # a real agent
//! ```

mod support;

use std::time::{Duration, Instant};

use consul_lock::{consul_lock, defaults, Lock};

/// At most one caller in the whole cluster runs this for a given user at a time.
#[consul_lock(key = "send/user-<user_id>/welcome-email", acquire_timeout_ms = 500, guard = lock)]
async fn send_welcome_email(user_id: u64) -> Result<(), consul_lock::Error> {
    println!(
        "  sending the welcome e-mail to user {user_id} under {} (fencing token {})",
        lock.key(),
        lock.fencing_token()
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let consul = support::connect()?;
    // Every lock that names no client uses this one (Python's defaults.consul_client).
    defaults::set_client(consul.client.clone());

    println!("\n1. The attribute takes the lock, runs the body, releases the lock:");
    send_welcome_email(42).await?;

    println!("\n2. The runtime API: acquire, see the key, release.");
    let lock = Lock::new("reports/nightly");
    let guard = lock.acquire().await?;
    println!(
        "  acquired {} (session {}, fencing token {})",
        guard.key(),
        guard.session_id(),
        guard.fencing_token()
    );

    println!("\n3. While it is held, another worker does not get it:");
    // Another task is another holder (as another process would be)...
    let other = lock.clone();
    match tokio::spawn(async move { other.try_acquire().await }).await?? {
        None => println!("  try_acquire (one try) in another task: not acquired, as expected"),
        Some(_) => return Err("the lock was acquired twice".into()),
    }
    let started = Instant::now();
    let other = lock.clone().acquire_timeout(Duration::from_millis(300));
    match tokio::spawn(async move { other.acquire().await }).await? {
        Err(err) => println!(
            "  acquire with a 300 ms timeout in another task gave up after {:?}:\n    {err}",
            started.elapsed()
        ),
        Ok(_) => return Err("the lock was acquired twice".into()),
    }
    // ...while the task that holds it asking again is a mistake, reported at once.
    match lock.acquire().await {
        Err(err @ consul_lock::Error::Reentrant { .. }) => {
            println!("  the holder asking again: {err}")
        }
        other => return Err(format!("expected a re-entry error, got {other:?}").into()),
    }

    println!("\n4. A waiter wakes as soon as the holder releases:");
    let waiter = {
        let lock = lock.clone().acquire_timeout(Duration::from_secs(10));
        tokio::spawn(async move { lock.acquire().await })
    };
    // Let the waiter start waiting (this is an example, not a test; any moment works).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let released = Instant::now();
    guard.release().await?;
    let next = waiter.await??;
    println!(
        "  the waiter got the lock {:?} after the release, with a higher fencing token {}",
        released.elapsed(),
        next.fencing_token()
    );
    next.release().await?;

    println!("\nDone: every lock released.");
    Ok(())
}
