//! One contention row spread over several processes: the bench starts copies of itself
//! (`--contention-child`), each running its share of the workers on the same key against the
//! same server, and merges their holdings. Times cross processes on `CLOCK_MONOTONIC`, which
//! all processes of the machine share.

use std::process::Command;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use consul_lock::Client;
use consul_lock_bench::peers::ContentionRun;

use crate::contention::{self, ContentionResult, Scenario};

/// What a worker process prints: its holdings with times from `base_ns`, on the shared clock.
#[derive(Serialize, Deserialize)]
struct ChildReport {
    base_ns: u64,
    connections_max: Option<usize>,
    run: ContentionRun,
}

/// `CLOCK_MONOTONIC` in ns: one clock for every process of the machine.
pub(crate) fn mono_ns() -> u64 {
    // SAFETY: `clock_gettime` only writes into the zeroed struct we own.
    let ts = unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
        ts
    };
    ts.tv_sec.max(0) as u64 * 1_000_000_000 + ts.tv_nsec.max(0) as u64
}

/// In a worker process: runs `s` on `key` and prints the report (JSON, one line) to stdout.
pub fn child(client: &Client, key: &str, s: Scenario) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build the tokio runtime: {e}"))?;
    let (base, base_ns) = (Instant::now(), mono_ns());
    let raw = rt.block_on(contention::run_raw(client, key, s))?;
    let report = ChildReport {
        base_ns,
        connections_max: raw.connections_max,
        run: raw.to_run(base),
    };
    let line = serde_json::to_string(&report).map_err(|e| e.to_string())?;
    println!("{line}");
    Ok(())
}

/// Runs `s` (one key, `s.workers_per_key` workers) split evenly over `processes` copies of
/// this binary talking to `address`, and analyses the merged holdings.
pub fn run(
    address: &str,
    key: &str,
    s: Scenario,
    processes: usize,
) -> Result<ContentionResult, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let per = s.workers_per_key.div_ceil(processes);
    let secs = s.duration.as_secs_f64().to_string();
    let children: Vec<_> = (0..processes)
        .map(|_| {
            Command::new(&exe)
                .args(["--contention-child", key, "--workers", &per.to_string()])
                .args(["--holds-ms", &s.hold.as_millis().to_string()])
                .args(["--duration-secs", &secs, "--no-peers"])
                .env("CONSUL_HTTP_ADDR", address)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .map_err(|e| format!("cannot start a worker process: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let mut reports = Vec::new();
    for child in children {
        let out = child
            .wait_with_output()
            .map_err(|e| format!("a worker process failed: {e}"))?;
        if !out.status.success() {
            return Err(format!("a worker process exited with {}", out.status));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text.lines().last().unwrap_or_default();
        let report: ChildReport = serde_json::from_str(line)
            .map_err(|e| format!("a worker process's report is unreadable ({e}): {line}"))?;
        reports.push(report);
    }
    let base = reports.iter().map(|r| r.base_ns).min().unwrap_or(0);
    let mut merged = ContentionRun {
        library: "consul-lock".into(),
        workers: per * processes,
        seconds: s.duration.as_secs_f64(),
        holds: Vec::new(),
        client_requests: 0,
    };
    let mut connections = Some(0);
    for (i, r) in reports.iter().enumerate() {
        let shift = r.base_ns - base;
        merged.client_requests += r.run.client_requests;
        connections = connections.zip(r.connections_max).map(|(a, b)| a + b);
        merged.holds.extend(r.run.holds.iter().map(|h| {
            let mut h = *h;
            h.worker += i * per;
            h.acquired_ns += shift;
            h.release_called_ns += shift;
            h.released_ns += shift;
            h
        }));
    }
    let mut r = contention::from_peer(&merged, s, "consul-lock");
    r.connections_max = connections;
    Ok(r)
}
