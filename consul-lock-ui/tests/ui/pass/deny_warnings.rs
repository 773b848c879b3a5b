// Generated code adds no warning, also with every lint denied.
#![deny(warnings, unused, unused_qualifications, unused_results, rust_2018_idioms, missing_docs)]
//! Crate docs.

use consul_lock::consul_lock;

/// Docs.
#[consul_lock(key = "lint/<id>", acquire_timeout_ms = 5, guard = lock)]
pub async fn run(id: u32) -> Result<u64, consul_lock::Error> {
    Ok(u64::from(id) + lock.fencing_token())
}

/// Docs.
#[consul_lock(key = "lint/sync/<id>", fail_soft)]
pub fn run_sync(id: u32) -> Option<u32> {
    Some(id)
}

fn main() {
    drop(run(1));
    let _ = run_sync(1);
}
