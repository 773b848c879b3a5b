//! A sync function under the lock, called from several threads: the job never runs twice at
//! once, and each thread waits its turn (blocking queries, no polling).
//!
//! ```sh
//! cargo run --example sync_job
//! ```

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use consul_lock::{consul_lock, defaults, Client};

#[derive(Debug)]
enum JobError {
    Lock(consul_lock::Error),
    Overlap,
}

impl From<consul_lock::Error> for JobError {
    fn from(e: consul_lock::Error) -> Self {
        JobError::Lock(e)
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobError::Lock(e) => write!(f, "{e}"),
            JobError::Overlap => f.write_str("two runs of the job overlapped"),
        }
    }
}

impl std::error::Error for JobError {}

/// A blocking job: waits up to 10 s for the lock, then works for 50 ms.
#[consul_lock(key = "jobs/<name>", acquire_timeout_ms = 10_000, client = client, guard = lock)]
fn run_job(
    name: &str,
    thread_no: usize,
    client: &Client,
    running: &AtomicUsize,
    t0: Instant,
) -> Result<u64, JobError> {
    if running.fetch_add(1, Ordering::SeqCst) != 0 {
        return Err(JobError::Overlap);
    }
    println!(
        "  {:>6.0?}  thread {thread_no} runs {name} (fencing token {})",
        t0.elapsed(),
        lock.fencing_token()
    );
    thread::sleep(Duration::from_millis(50));
    running.fetch_sub(1, Ordering::SeqCst);
    Ok(lock.fencing_token())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let consul = support::connect()?;
    defaults::set_key_prefix(format!(
        "locks/examples/sync-{:06x}/",
        fastrand::u32(..1 << 24)
    ))?;
    let client = consul.client.clone();
    let running = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    println!("4 threads x 3 runs of the same job:");
    let handles: Vec<_> = (0..4)
        .map(|thread_no| {
            let client = client.clone();
            let running = running.clone();
            thread::spawn(move || -> Result<Vec<u64>, JobError> {
                (0..3)
                    .map(|_| run_job("nightly-report", thread_no, &client, &running, t0))
                    .collect()
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for handle in handles {
        let joined = handle.join().map_err(|_| "a worker thread panicked")?;
        tokens.extend(joined?);
    }
    tokens.sort_unstable();
    tokens.dedup();
    println!(
        "\n12 runs, never two at once, 12 distinct fencing tokens: {}, in {:?}",
        tokens.len() == 12,
        t0.elapsed()
    );
    Ok(())
}
