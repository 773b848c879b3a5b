//! What the peers print: their JSON records and the answer of `try`.

use serde::{Deserialize, Serialize};

/// What a peer's `cycle` mode measured: raw per-cycle latencies and counters.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct CycleRun {
    /// Which library it used, with its version.
    pub library: String,
    /// Cycles measured.
    pub cycles: u64,
    /// Unmeasured warm-up cycles run before them (0 from a peer that does not say).
    #[serde(default)]
    pub warmup_cycles: u64,
    /// Wall time of the measured cycles.
    pub seconds: f64,
    /// One latency per cycle, nanoseconds.
    pub latencies_ns: Vec<u64>,
    /// HTTP requests the peer's client sent during the measured cycles.
    pub client_requests: u64,
    /// The peer process's user + system CPU time during the measured cycles, nanoseconds.
    pub cpu_ns: u64,
    /// The peer process's context switches during the measured cycles.
    pub context_switches: u64,
    /// How the peer makes a cycle.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// One holding of the key in a peer's `contention` mode; times are nanoseconds since the
/// peer's start of the run, on its monotonic clock.
#[derive(Clone, Copy, Debug, Deserialize, Serialize)]
pub struct PeerHold {
    /// Which worker held it.
    pub worker: usize,
    /// When its lock call returned.
    pub acquired_ns: u64,
    /// When it called unlock.
    pub release_called_ns: u64,
    /// When its unlock returned.
    pub released_ns: u64,
}

/// What a peer's `contention` mode measured.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ContentionRun {
    /// Which library it used, with its version.
    pub library: String,
    /// Workers on the key.
    pub workers: usize,
    /// The run's length, seconds.
    pub seconds: f64,
    /// Every holding, in the order of acquisition.
    pub holds: Vec<PeerHold>,
    /// HTTP requests the peer's client sent during the run.
    pub client_requests: u64,
}

/// The answer of a peer's `try` mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TryOutcome {
    /// It acquired the key (and released it again).
    Locked,
    /// The key stayed held for the whole wait.
    Timeout,
    /// The peer's client refused or failed, with its message.
    Error(String),
}
