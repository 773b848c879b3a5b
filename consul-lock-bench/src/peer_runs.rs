//! The peer clients in the bench: which are present, their uncontended cycle and (Go) their
//! contention runs, against the same server, turned into rows like the library's own.

use std::time::Duration;

use consul_lock_bench::peers::{Absent, CycleRun, Peer, PeerKind};
use serde::Serialize;
use tokio::runtime::Runtime;

use crate::args::Args;
use crate::contention::{self, ContentionResult, Scenario};
use crate::cycle::CycleResult;
use crate::raft::RaftIndex;
use crate::server::Target;
use crate::stats::{Samples, Summary};

/// The peers of a run: those that ran, those skipped and why.
#[derive(Debug, Default, Serialize)]
pub struct Peers {
    /// Found and run: their descriptions.
    pub present: Vec<String>,
    /// Not run, with the reason (not installed, turned off, failed).
    pub skipped: Vec<Absent>,
    #[serde(skip)]
    found: Vec<Peer>,
}

impl Peers {
    /// Looks for the Go and Python peers as `args` says.
    pub fn find(args: &Args) -> Peers {
        let mut peers = Peers::default();
        for (kind, at) in [
            (PeerKind::Go, args.peer_go.as_deref()),
            (PeerKind::Python, args.peer_python.as_deref()),
        ] {
            if !args.peers {
                peers.skipped.push(Absent {
                    kind,
                    reason: "turned off (--no-peers)".into(),
                });
                continue;
            }
            match Peer::find_at(kind, at) {
                Ok(p) => {
                    peers.present.push(p.describe());
                    peers.found.push(p);
                }
                Err(a) => peers.skipped.push(a),
            }
        }
        peers
    }

    /// Present peers that offer contention runs.
    pub fn with_contention(&self) -> impl Iterator<Item = &Peer> {
        self.found.iter().filter(|p| p.kind() == PeerKind::Go)
    }

    /// Notes a failed peer run: it is reported as skipped (a peer is outside this project;
    /// its failure does not make the bench fail), with the error.
    pub fn failed(&mut self, kind: PeerKind, what: &str, e: impl std::fmt::Display) {
        progress!("  {}: {what} failed: {e}", kind.label());
        self.skipped.push(Absent {
            kind,
            reason: format!("{what} failed: {e}"),
        });
    }

    /// One line per skipped peer, for progress and the report.
    pub fn skipped_lines(&self) -> Vec<String> {
        self.skipped
            .iter()
            .map(|a| format!("{}: {}", a.kind.label(), a.reason))
            .collect()
    }
}

/// A peer's uncontended cycle.
#[derive(Clone, Debug, Serialize)]
pub struct PeerCycleResult {
    pub peer: PeerKind,
    pub label: &'static str,
    pub library: String,
    pub cycles: u64,
    pub seconds: f64,
    pub cycles_per_s: f64,
    pub latency: Summary,
    /// cycles/s ÷ the bare minimum's cycles/s over its whole measurement (peers run once,
    /// after the interleaved rounds; not a per-round median).
    pub ratio_to_bare: Option<f64>,
    /// cycles/s ÷ the runtime API async variant's cycles/s over its whole measurement.
    pub ratio_to_library: Option<f64>,
    /// bare p50 ÷ this p50.
    pub p50_ratio_to_bare: Option<f64>,
    /// runtime API async p50 ÷ this p50.
    pub p50_ratio_to_library: Option<f64>,
    pub client_requests_per_cycle: f64,
    pub server_requests_per_cycle: Option<f64>,
    /// Raft writes per cycle: the server's Raft index before and after the peer's run,
    /// divided by all its cycles, warm-up included (the peer reports how many it ran).
    pub raft_writes_per_cycle: Option<f64>,
    /// The peer process's CPU per cycle (its own getrusage over the measured cycles).
    pub cpu_us_per_cycle: f64,
    pub context_switches_per_cycle: f64,
    pub notes: Vec<String>,
}

fn ratio(a: f64, b: Option<f64>) -> Option<f64> {
    b.filter(|b| *b > 0.0 && a > 0.0).map(|b| a / b)
}

/// Runs every present peer's cycle on `key_base/<peer>-cycle` for `duration`.
pub fn cycles(
    peers: &mut Peers,
    target: &Target,
    rt: &Runtime,
    raft: &RaftIndex,
    key_base: &str,
    duration: Duration,
    library: &[CycleResult],
) -> Vec<PeerCycleResult> {
    let find = |id: &str| library.iter().find(|c| c.variant == id);
    let bare = find("bare_reqwest");
    let lib = find("api_async");
    let warmup = (duration / 10).min(Duration::from_millis(300));
    let mut rows = Vec::new();
    let found = peers.found.clone();
    for peer in &found {
        let kind = peer.kind();
        let key = format!("{key_base}/peer-{kind:?}-cycle").to_lowercase();
        let raft0 = rt.block_on(raft.mark());
        let server0 = target.server_requests();
        let run = match peer.cycle(&target.url, &key, duration, warmup) {
            Ok(r) => r,
            Err(e) => {
                peers.failed(kind, "the cycle", e);
                continue;
            }
        };
        let server = match (server0, target.server_requests()) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        let raft_writes = raft.writes_between(raft0, rt.block_on(raft.mark()));
        if run.cycles == 0 {
            peers.failed(kind, "the cycle", "it made no cycle");
            continue;
        }
        let mut row = cycle_row(kind, &run, server, bare, lib);
        row.raft_writes_per_cycle = crate::raft::per(raft_writes, run.cycles + run.warmup_cycles);
        progress!(
            "  peer {:<44} {:>8.0} cycles/s",
            row.label,
            row.cycles_per_s
        );
        rows.push(row);
    }
    rows
}

fn cycle_row(
    kind: PeerKind,
    run: &CycleRun,
    server_requests: Option<u64>,
    bare: Option<&CycleResult>,
    lib: Option<&CycleResult>,
) -> PeerCycleResult {
    let mut samples = Samples::with_capacity(run.latencies_ns.len());
    for &ns in &run.latencies_ns {
        samples.push(Duration::from_nanos(ns));
    }
    let latency = samples.summary();
    let n = run.cycles.max(1) as f64;
    let rate = if run.seconds > 0.0 {
        run.cycles as f64 / run.seconds
    } else {
        0.0
    };
    // Server requests: the peer's warm-up is included in the server's count; the peer's own
    // count covers the measured cycles only. Both are shown.
    let warm_and_measured = server_requests.map(|r| r as f64 / n);
    PeerCycleResult {
        peer: kind,
        label: kind.label(),
        library: run.library.clone(),
        cycles: run.cycles,
        seconds: run.seconds,
        cycles_per_s: rate,
        latency,
        ratio_to_bare: ratio(rate, bare.map(|b| b.cycles_per_s)),
        ratio_to_library: ratio(rate, lib.map(|l| l.cycles_per_s)),
        p50_ratio_to_bare: ratio(
            1.0 / latency.p50_us.max(f64::MIN_POSITIVE),
            bare.map(|b| 1.0 / b.latency.p50_us),
        ),
        p50_ratio_to_library: ratio(
            1.0 / latency.p50_us.max(f64::MIN_POSITIVE),
            lib.map(|l| 1.0 / l.latency.p50_us),
        ),
        client_requests_per_cycle: run.client_requests as f64 / n,
        server_requests_per_cycle: warm_and_measured,
        raft_writes_per_cycle: None,
        cpu_us_per_cycle: run.cpu_ns as f64 / 1e3 / n,
        context_switches_per_cycle: run.context_switches as f64 / n,
        notes: run.notes.clone(),
    }
}

/// Runs `s` (one key) in every peer that offers contention runs; `library` is consul-lock's
/// result for the same scenario, for the ratio.
pub fn contention(
    peers: &mut Peers,
    target: &Target,
    key: &str,
    s: Scenario,
    library: Option<&ContentionResult>,
) -> Vec<ContentionResult> {
    let mut rows = Vec::new();
    let found: Vec<Peer> = peers.with_contention().cloned().collect();
    for peer in found {
        let kind = peer.kind();
        let what = format!(
            "contention N={} H={} ms",
            s.workers_per_key,
            s.hold.as_millis()
        );
        let run = match peer.contention(&target.url, key, s.workers_per_key, s.hold, s.duration) {
            Ok(r) => r,
            Err(e) => {
                peers.failed(kind, &what, e);
                continue;
            }
        };
        let mut r = contention::from_peer(&run, s, kind.label());
        r.acquisitions_ratio_to_library =
            ratio(r.acquisitions_per_s, library.map(|l| l.acquisitions_per_s));
        progress!(
            "  peer {} {what}: {:>7.0} acq/s, hand-off p50 {:.3} ms p99 {:.3} ms, fairness {}",
            kind.label(),
            r.acquisitions_per_s,
            r.handoff.p50_us / 1e3,
            r.handoff.p99_us / 1e3,
            r.fairness.map_or("–".into(), |f| format!("{f:.3}"))
        );
        rows.push(r);
    }
    rows
}
