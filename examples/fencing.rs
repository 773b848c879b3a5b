//! Why fencing tokens matter: a holder pauses (think GC pause, a stopped VM) past its lock
//! timeout, Consul frees the key, a second worker takes it and writes; then the first wakes
//! up and writes too. The store remembers the highest fencing token it has seen and rejects
//! the stale write.
//!
//! ```sh
//! cargo run --example fencing
//! ```

mod support;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use consul_lock::Lock;

/// A store that accepts a write only with a fencing token at least as high as any seen.
#[derive(Default)]
struct FencedStore {
    state: Mutex<(u64, Vec<String>)>,
}

impl FencedStore {
    fn write(&self, token: u64, text: &str) -> Result<(), String> {
        let mut state = self.state.lock().map_err(|_| "store poisoned".to_owned())?;
        if token < state.0 {
            return Err(format!(
                "rejected {text:?}: fencing token {token} < {} already seen",
                state.0
            ));
        }
        state.0 = token;
        state.1.push(text.to_owned());
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let consul = support::connect()?;
    let ttl = consul.min_lock_timeout;
    let key = format!("invoices/run-{:06x}", fastrand::u32(..1 << 24));
    let lock = Lock::new(key).client(&consul.client).lock_timeout(ttl);
    let store = FencedStore::default();
    let t0 = Instant::now();

    let a = lock.acquire().await?;
    println!(
        "{:>6.1?}  worker A holds {} with token {} (lock timeout {ttl:?}, no renewal)",
        t0.elapsed(),
        a.key(),
        a.fencing_token()
    );
    store.write(a.fencing_token(), "A: invoice batch started")?;

    println!(
        "{:>6.1?}  worker A pauses; Consul frees the key between {ttl:?} and {:?} later",
        t0.elapsed(),
        ttl * 2
    );
    let b_lock = lock.clone().acquire_timeout(ttl * 4);
    let mut b_task = tokio::spawn(async move { b_lock.acquire().await });
    let mut ticker = tokio::time::interval(Duration::from_millis(500));
    ticker.tick().await;
    let b = loop {
        tokio::select! {
            joined = &mut b_task => break joined??,
            _ = ticker.tick() => println!("{:>6.1?}  ... A still paused; A's is_held() = {}", t0.elapsed(), a.is_held()),
        }
    };
    println!(
        "{:>6.1?}  worker B got the lock with token {}",
        t0.elapsed(),
        b.fencing_token()
    );
    store.write(b.fencing_token(), "B: invoice batch done")?;

    println!(
        "{:>6.1?}  worker A wakes up and, not checking is_held(), writes:",
        t0.elapsed()
    );
    match store.write(a.fencing_token(), "A: invoice batch done") {
        Ok(()) => return Err("the stale write was accepted".into()),
        Err(rejected) => println!("          the store {rejected}"),
    }
    println!(
        "          A's lock: held = {}, reason = {:?}",
        a.is_held(),
        a.lost_reason()
    );
    b.release().await?;
    drop(a);
    consul_lock::flush_releases().await;
    let (_, log) = &*store.state.lock().map_err(|_| "store poisoned")?;
    println!("\nthe store's log: {log:?}");
    Ok(())
}
