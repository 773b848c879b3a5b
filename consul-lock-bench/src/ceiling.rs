//! The write ceiling: how many plain KV writes per second the server takes, from one client
//! and from many at once (Consul batches concurrent writes into one Raft round). A lock that
//! costs W Raft writes per cycle cannot cycle faster than this ceiling ÷ W, whatever the
//! client: the many-keys row is compared with it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::bare::Bare;
use crate::raft::RaftIndex;
use crate::stats::{Samples, Summary};

/// One row: `clients` concurrent writers for the measurement's duration.
#[derive(Clone, Debug, Serialize)]
pub struct CeilingResult {
    /// Concurrent writers, each with its own key, writing as fast as its answers come.
    pub clients: usize,
    pub writes: u64,
    pub seconds: f64,
    pub writes_per_s: f64,
    /// Latency of one write.
    pub latency: Summary,
    /// Raft writes per KV write, from the server's Raft index (1.0 expected: a check of the
    /// Raft column itself).
    pub raft_writes_per_write: Option<f64>,
}

/// Measures `clients` writers on keys under `key_base` (a full KV key) for `duration`, on a
/// multi-threaded runtime of its own with a fresh HTTP client (so that the client side is
/// not what limits the rate), then deletes the keys.
pub fn run(
    address: &str,
    raft: &RaftIndex,
    rt_main: &tokio::runtime::Runtime,
    key_base: &str,
    clients: usize,
    duration: Duration,
) -> Result<CeilingResult, String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build the tokio runtime: {e}"))?;
    let bare = Arc::new(Bare::new(address)?);
    let clients = clients.max(1);
    let base = format!("{key_base}/c{clients}");
    // One write each first: the connections are open before the clock starts.
    rt.block_on(async {
        for c in 0..clients {
            bare.write(&format!("{base}/{c}"), b"0").await?;
        }
        Ok::<_, String>(())
    })?;
    let raft0 = rt_main.block_on(raft.mark());
    let start = Instant::now();
    let end = start + duration;
    let results = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for c in 0..clients {
            let (bare, key) = (bare.clone(), format!("{base}/{c}"));
            set.spawn(async move {
                let mut samples = Samples::with_capacity(4096);
                // A new value each time: the server skips a write of the same value.
                for n in 1u64.. {
                    if Instant::now() >= end {
                        break;
                    }
                    let t = Instant::now();
                    bare.write(&key, n.to_string().as_bytes()).await?;
                    samples.push(t.elapsed());
                }
                Ok::<_, String>(samples)
            });
        }
        let mut all = Samples::default();
        while let Some(joined) = set.join_next().await {
            all.extend(joined.map_err(|e| format!("a writer panicked: {e}"))??);
        }
        Ok::<_, String>(all)
    });
    let seconds = start.elapsed().as_secs_f64();
    let raft_writes = raft.writes_between(raft0, rt_main.block_on(raft.mark()));
    let cleanup = rt.block_on(bare.delete_tree(&base));
    let samples = results?;
    cleanup?;
    let writes = samples.len() as u64;
    Ok(CeilingResult {
        clients,
        writes,
        seconds,
        writes_per_s: if seconds > 0.0 {
            writes as f64 / seconds
        } else {
            0.0
        },
        latency: samples.summary(),
        raft_writes_per_write: crate::raft::per(raft_writes, writes),
    })
}

/// The ceiling: the highest rate of the rows (normally the 64 writers'; on a machine whose
/// cores are busy with other work, more writers can be slower than one), with its row.
pub fn highest(rows: &[CeilingResult]) -> Option<&CeilingResult> {
    rows.iter()
        .filter(|c| c.writes_per_s > 0.0)
        .max_by(|a, b| a.writes_per_s.total_cmp(&b.writes_per_s))
}
