// `#[leader]`: free functions, methods, options, other parameters; no warning with every
// lint denied.
#![deny(warnings, unused, unused_qualifications, unused_results, rust_2018_idioms, missing_docs)]
//! Crate docs.

use consul_lock::{Client, Leadership};

/// Docs.
#[consul_lock::leader(name = "scheduler")]
pub async fn scheduler(leadership: Leadership) -> Result<u64, consul_lock::Error> {
    let _ = leadership.stopping().await;
    Ok(leadership.fencing_token())
}

/// Docs: a one-line body.
#[consul_lock::leader(name = "one-line")]
pub async fn one_line(leadership: Leadership) -> Result<u64, consul_lock::Error> {
    Ok(leadership.fencing_token())
}

/// Docs.
#[derive(Clone)]
pub struct Jobs(u32);

/// Docs.
pub struct Service {
    client: Client,
    address: String,
}

impl Service {
    /// Docs.
    #[consul_lock::leader(
        name = "billing/compactor",
        key = "jobs/compactor/.lock",
        lock_timeout_seconds = 30,
        grace_ms = 5000,
        value = &self.address,
        client = &self.client
    )]
    pub async fn compact(&self, jobs: Jobs, mut rounds: u32, _leadership: Leadership) -> Result<u32, consul_lock::Error> {
        rounds += jobs.0;
        if rounds > 10 {
            return Ok(rounds);
        }
        Ok(self.address.len() as u32)
    }
}

fn main() {
    drop(scheduler());
    drop(one_line());
    let service = Service { client: Client::builder().build().unwrap(), address: "a".into() };
    drop(service.compact(Jobs(1), 2));
}
