//! Fenced writes: Consul itself refuses a holder that lost its lock. Worker A takes the lock
//! and pauses (think GC pause, a stopped VM) past its lock timeout; Consul frees the key and
//! worker B takes it and writes. Then A wakes up and, without checking anything, writes
//! through its lock's fence: one transaction that also checks that A's session still holds the
//! lock key. Consul finds it does not, applies nothing, and A gets `Error::LockLost`.
//!
//! ```sh
//! cargo run --example fenced_writes
//! ```

mod support;

use std::time::{Duration, Instant};

use consul_lock::{Error, KvOp, Lock};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let consul = support::connect()?;
    let ttl = consul.min_lock_timeout;
    let run = format!("{:06x}", fastrand::u32(..1 << 24));
    let state = format!("invoices/run-{run}/state");
    let log = format!("invoices/run-{run}/log");
    let lock = Lock::new(format!("invoices/run-{run}"))
        .client(&consul.client)
        .lock_timeout(ttl);
    let t0 = Instant::now();

    let a = lock.acquire().await?;
    let a_fence = a.fence();
    a_fence.put(&state, "A: batch started").await?;
    println!(
        "{:>6.1?}  worker A holds {} (token {}, lock timeout {ttl:?}, no renewal) and wrote {state:?}",
        t0.elapsed(),
        a.key(),
        a.fencing_token()
    );

    println!(
        "{:>6.1?}  worker A pauses; Consul frees the key between {ttl:?} and {:?} later",
        t0.elapsed(),
        ttl * 2
    );
    let b_lock = lock.clone().acquire_timeout(ttl * 4);
    let mut b_task = tokio::spawn(async move { b_lock.acquire().await });
    let mut ticker = tokio::time::interval((ttl / 4).max(Duration::from_millis(250)));
    ticker.tick().await;
    let b = loop {
        tokio::select! {
            joined = &mut b_task => break joined??,
            _ = ticker.tick() => println!("{:>6.1?}  ... A still paused; A's is_held() = {}", t0.elapsed(), a.is_held()),
        }
    };
    b.fence()
        .txn([
            KvOp::set(&state, "B: batch done"),
            KvOp::set(&log, "B finished the batch"),
        ])
        .await?;
    println!(
        "{:>6.1?}  worker B got the lock (token {}) and wrote {state:?} and {log:?} in one fenced transaction",
        t0.elapsed(),
        b.fencing_token()
    );

    println!(
        "{:>6.1?}  worker A wakes up and, not checking is_held(), writes through its fence:",
        t0.elapsed()
    );
    match a_fence.put(&state, "A: batch done").await {
        Ok(_) => return Err("Consul applied the stale holder's write".into()),
        Err(Error::LockLost { key, message }) => {
            println!("          Consul refused it: lock {key} is no longer A's ({message})")
        }
        Err(other) => return Err(other.into()),
    }
    let entry = consul.client.kv_get(&state).await?.ok_or("the state key")?;
    println!(
        "          {state:?} still holds {:?}",
        String::from_utf8_lossy(&entry.value)
    );

    // Clean up: B deletes what the run wrote, still through its fence, then releases.
    b.fence()
        .txn([KvOp::delete_tree(format!("invoices/run-{run}/"))])
        .await?;
    b.release().await?;
    drop(a);
    consul_lock::flush_releases().await;
    Ok(())
}
