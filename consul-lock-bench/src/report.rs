//! The results: markdown tables on stdout and a JSON file.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::contention::ContentionResult;
use crate::cycle::CycleResult;
use crate::memory::MemoryResult;
use crate::peer_runs::{PeerCycleResult, Peers};
use crate::server::Kind;
use crate::sys::Machine;
use crate::targets::Check;

/// What the client-side CPU numbers include.
pub const CPU_NOTE: &str = "CPU = user + system time of the bench process (getrusage RUSAGE_SELF) \
over the measured cycles, divided by the cycles: the calling thread, the library's worker thread \
and the HTTP client, plus the harness's own timing loop; the embedded server runs in a child \
process and is not included (against an agent, the agent is another process too).";

#[derive(Debug, Serialize)]
pub struct Report {
    pub command: String,
    pub mode: &'static str,
    pub started_at: String,
    pub duration_per_measurement_s: f64,
    pub server_kind: Kind,
    pub server: String,
    /// Where the Raft write counts come from (or why there are none).
    pub raft_writes_source: String,
    pub machine: Machine,
    pub cycle: Vec<CycleResult>,
    /// The peer clients' cycles (Go api.Lock, Python consul-lock 0.1.6), same server.
    pub peer_cycle: Vec<PeerCycleResult>,
    pub contention: Vec<ContentionResult>,
    /// The peer clients' contention runs (Go), same scenarios.
    pub peer_contention: Vec<ContentionResult>,
    /// Which peers ran and which were skipped, and why.
    pub peers: Peers,
    /// Plain KV writes/s from 1 and from 64 concurrent clients: the server's write ceiling.
    pub ceiling: Vec<crate::ceiling::CeilingResult>,
    pub many_keys: Vec<ContentionResult>,
    /// Semaphore contention (N slots, M contenders).
    pub semaphore: Vec<crate::semaphore::SemaphoreResult>,
    /// Leader hand-overs and an idle election's Raft writes.
    pub election: Option<crate::election::ElectionResult>,
    pub memory: Option<MemoryResult>,
    pub cpu_note: &'static str,
    pub targets: Vec<Check>,
    /// What made the run fail (errors, zero acquisitions); empty when it worked.
    pub broken: Vec<String>,
}

fn ms(us: f64) -> String {
    format!("{:.3}", us / 1e3)
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let _ = writeln!(s, "## consul-lock benchmark ({} run)\n", self.mode);
        let _ = writeln!(s, "- command: `{}`", self.command);
        let _ = writeln!(s, "- started: {}", self.started_at);
        let _ = writeln!(s, "- server: {}", self.server);
        let _ = writeln!(s, "- Raft writes: {}", self.raft_writes_source);
        let _ = writeln!(
            s,
            "- machine: {} cores ({}), target `{}`, {}, {}, {} build",
            m.cores, m.cpu_model, m.target, m.os, m.rustc, m.profile
        );
        let load = |l: Option<f64>| l.map_or("?".into(), |l| format!("{l:.2}"));
        let _ = writeln!(
            s,
            "- load average (1 min) at start / end: {} / {} (other work on the machine skews the numbers)",
            load(m.load_average_start),
            load(m.load_average_end)
        );
        let _ = writeln!(
            s,
            "- {} s per measurement; cycle variants interleaved in rounds, × bare = median of per-round ratios\n",
            self.duration_per_measurement_s
        );

        let _ = writeln!(
            s,
            "### Uncontended cycle (acquire + release, one key, sequential)\n"
        );
        let _ = writeln!(
            s,
            "| variant | cycles/s | p50 ms | p99 ms | × bare 3-call (throughput; p50) | × bare 2-call (throughput; p50) | × this library (throughput; p50) | HTTP req/cycle (client; server) | Raft writes/cycle | client CPU µs/cycle | context switches/cycle |"
        );
        let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let raft = |v: Option<f64>| opt(v, 2).replace('–', "n/a");
        for c in &self.cycle {
            let _ = writeln!(
                s,
                "| {} | {:.0} | {} | {} | {}; {} | {}; {} | – | {:.2}; {} | {} | {:.1} | {:.1} |",
                c.label,
                c.cycles_per_s,
                ms(c.latency.p50_us),
                ms(c.latency.p99_us),
                opt(c.ratio_to_bare, 3),
                opt(c.p50_ratio_to_bare, 3),
                opt(c.ratio_to_bare2, 3),
                opt(c.p50_ratio_to_bare2, 3),
                c.client_requests_per_cycle,
                opt(c.server_requests_per_cycle, 2),
                raft(c.raft_writes_per_cycle),
                c.cpu_us_per_cycle,
                c.context_switches_per_cycle
            );
        }
        let bare2 = self
            .cycle
            .iter()
            .find(|c| c.variant == "bare_reqwest_2call");
        for c in &self.peer_cycle {
            let to_bare2 = bare2
                .filter(|b| b.cycles_per_s > 0.0)
                .map(|b| c.cycles_per_s / b.cycles_per_s);
            let p50_to_bare2 = bare2
                .filter(|_| c.latency.p50_us > 0.0)
                .map(|b| b.latency.p50_us / c.latency.p50_us);
            let _ = writeln!(
                s,
                "| peer: {} | {:.0} | {} | {} | {}; {}* | {}; {}* | {}; {} | {:.2}; {}** | {}**** | {:.1}*** | {:.1}*** |",
                c.label,
                c.cycles_per_s,
                ms(c.latency.p50_us),
                ms(c.latency.p99_us),
                opt(c.ratio_to_bare, 3),
                opt(c.p50_ratio_to_bare, 3),
                opt(to_bare2, 3),
                opt(p50_to_bare2, 3),
                opt(c.ratio_to_library, 3),
                opt(c.p50_ratio_to_library, 3),
                c.client_requests_per_cycle,
                opt(c.server_requests_per_cycle, 2),
                raft(c.raft_writes_per_cycle),
                c.cpu_us_per_cycle,
                c.context_switches_per_cycle
            );
        }
        if !self.peer_cycle.is_empty() {
            let _ = writeln!(
                s,
                "\n\\* peers run once after the rounds: × bare and × this library (runtime API async) are ratios of whole-measurement rates and p50s, not per-round medians. \\*\\* server count includes the peer's warm-up cycles. \\*\\*\\* the peer process's own CPU and context switches (getrusage in the peer), measured cycles only. \\*\\*\\*\\* Raft writes over the peer's whole run ÷ all its cycles, warm-up included."
            );
        }
        let _ = writeln!(
            s,
            "\nRaft writes/cycle: {}{}.",
            self.raft_writes_source,
            if self.raft_writes_source.starts_with("n/a") {
                ""
            } else {
                ", ÷ the measurement's cycles; the server's own writes in the window (an agent makes a few a minute) are included"
            }
        );
        peers_section(&mut s, &self.peers, &self.peer_cycle);

        let _ = writeln!(
            s,
            "\n### Contention (N workers on one key, hold H, fixed duration)\n"
        );
        let mut rows: Vec<&ContentionResult> = self.contention.iter().collect();
        rows.extend(&self.peer_contention);
        rows.sort_by_key(|r| {
            (
                r.hold_ms.to_bits(),
                r.workers_per_key,
                r.client != "consul-lock",
            )
        });
        contention_table(&mut s, &rows);
        if !self.ceiling.is_empty() {
            let _ = writeln!(
                s,
                "\n### Write ceiling (plain KV writes, each client its own key, as fast as answers come)\n"
            );
            let _ = writeln!(
                s,
                "| concurrent clients | writes/s | p50 ms | p99 ms | Raft writes/write |\n|---:|---:|---:|---:|---:|"
            );
            for c in &self.ceiling {
                let _ = writeln!(
                    s,
                    "| {} | {:.0} | {} | {} | {} |",
                    c.clients,
                    c.writes_per_s,
                    ms(c.latency.p50_us),
                    ms(c.latency.p99_us),
                    raft(c.raft_writes_per_write)
                );
            }
            let _ = writeln!(
                s,
                "\nA lock cycle of W Raft writes cannot run faster, in all, than this ceiling ÷ W. Consul batches concurrent writes, so 64 clients normally reach the higher rate; the higher of the two rows is the ceiling the many-keys row is compared with."
            );
        }
        let _ = writeln!(
            s,
            "\n### Many keys (each key with its own workers, H = 0)\n"
        );
        contention_table(&mut s, &self.many_keys.iter().collect::<Vec<_>>());
        for m in &self.many_keys {
            match (
                m.share_of_half_ceiling,
                crate::ceiling::highest(&self.ceiling),
            ) {
                (Some(share), Some(c)) => {
                    let _ = writeln!(
                        s,
                        "\n{} × {}: {:.0} acquisitions/s = {share:.3} × (the write ceiling, {:.0}/s from {} client(s), ÷ 2 writes per cycle = {:.0}/s); Raft writes per acquisition {}.",
                        m.keys,
                        m.workers_per_key,
                        m.acquisitions_per_s,
                        c.writes_per_s,
                        c.clients,
                        c.writes_per_s / 2.0,
                        raft(m.raft_writes_per_acquisition)
                    );
                }
                _ => {
                    let _ = writeln!(
                        s,
                        "\n{} × {}: no share of the write ceiling (the ceiling section did not run).",
                        m.keys, m.workers_per_key
                    );
                }
            }
        }
        if !self.semaphore.is_empty() {
            let _ = writeln!(s, "\n### Semaphore (N slots, M contenders, hold H)\n");
            let _ = writeln!(s, "| N slots | M contenders | H ms | acquisitions/s | utilisation of the N slots | hand-off p50 ms | hand-off p99 ms | most holders at once | HTTP req/acq |");
            let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            for r in &self.semaphore {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.0} | {:.3} | {} | {} | {} | {:.1} |",
                    r.limit,
                    r.contenders,
                    r.hold_ms,
                    r.acquisitions_per_s,
                    r.utilisation,
                    ms(r.handoff.p50_us),
                    ms(r.handoff.p99_us),
                    r.most_holders,
                    r.client_requests_per_acquisition
                );
            }
        }

        if let Some(e) = &self.election {
            election_section(&mut s, e);
        }

        let _ = writeln!(s, "\n### Client cost\n");
        let _ = writeln!(s, "| what | value |\n|---|---:|");
        for c in &self.cycle {
            let _ = writeln!(
                s,
                "| CPU per cycle: {} | {:.1} µs |",
                c.label, c.cpu_us_per_cycle
            );
        }
        if let Some(mem) = &self.memory {
            let kib = |v: Option<u64>| {
                v.map_or("–".into(), |v| format!("{:.1} MiB", v as f64 / 1024.0))
            };
            let _ = writeln!(
                s,
                "| RSS before taking the locks | {} |",
                kib(mem.rss_before_kib)
            );
            let _ = writeln!(
                s,
                "| peak RSS (VmHWM{}) holding {} locks | {} |",
                if mem.peak_was_reset {
                    ", reset before"
                } else {
                    " of the whole run"
                },
                mem.locks,
                kib(mem.peak_rss_kib)
            );
            let _ = writeln!(
                s,
                "| memory per held lock ((peak − before) ÷ locks) | {} |",
                mem.bytes_per_lock
                    .map_or("–".into(), |b| format!("{:.0} B", b))
            );
            let _ = writeln!(
                s,
                "| time to take / release them (64 at a time) | {:.2} s / {:.2} s |",
                mem.acquire_seconds, mem.release_seconds
            );
        }
        let _ = writeln!(s, "\n{}", self.cpu_note);

        let _ = writeln!(s, "\n### Targets\n");
        let _ = writeln!(
            s,
            "| target | goal | measured | result |\n|---|---|---|---|"
        );
        for t in &self.targets {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} |",
                t.target,
                t.goal,
                t.measured,
                if t.pass { "PASS" } else { "MISS" }
            );
        }
        if !self.broken.is_empty() {
            let _ = writeln!(s, "\n### Broken\n");
            for b in &self.broken {
                let _ = writeln!(s, "- {b}");
            }
        }
        s
    }

    pub fn write_json(&self, path: &Path) -> Result<(), String> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let json = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(path, json + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// The peers found and skipped; for each found peer that ran its cycle, the client library it
/// says it was built against (the Go peer names its `api` revision: module or GOPATH build).
fn peers_section(s: &mut String, peers: &Peers, cycles: &[PeerCycleResult]) {
    if peers.present.is_empty() && peers.skipped.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n#### Peers\n");
    for p in &peers.present {
        let _ = writeln!(s, "- found: {p}");
    }
    for c in cycles {
        let _ = writeln!(s, "- {} was built against: {}", c.label, c.library);
    }
    for a in &peers.skipped {
        let _ = writeln!(s, "- skipped: {}: {}", a.kind.label(), a.reason);
    }
}

fn contention_table(s: &mut String, rows: &[&ContentionResult]) {
    let _ = writeln!(
        s,
        "| client | keys × workers | H ms | acquisitions/s | × this library (acq/s) | utilisation | hand-off p50 ms | hand-off p99 ms | fairness (min ÷ max) | measured hold ms | HTTP req/acq | Raft writes/acq | connections |"
    );
    let _ = writeln!(
        s,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for c in rows {
        let _ = writeln!(
            s,
            "| {} | {} × {} | {} | {:.0} | {} | {} | {} | {} | {} ({} ÷ {}) | {} | {:.1} | {} | {} |",
            c.client,
            c.keys,
            c.workers_per_key,
            c.hold_ms,
            c.acquisitions_per_s,
            opt(c.acquisitions_ratio_to_library, 3),
            opt(c.utilisation, 3),
            ms(c.handoff.p50_us),
            ms(c.handoff.p99_us),
            opt(c.fairness, 3),
            c.per_worker_min,
            c.per_worker_max,
            ms(c.measured_hold_us),
            c.client_requests_per_acquisition,
            opt(c.raft_writes_per_acquisition, 2),
            c.connections_max.map_or("–".into(), |n| n.to_string())
        );
    }
}

/// The election section: hand-overs measured here, next to client-go's defaults (modelled).
fn election_section(s: &mut String, e: &crate::election::ElectionResult) {
    let secs = |us: f64| format!("{:.2}", us / 1e6);
    let _ = writeln!(
        s,
        "\n### Leader election ({} candidate processes, TTL {} s)\n",
        e.candidates, e.ttl_s
    );
    let _ = writeln!(
        s,
        "| hand-over | samples | p50 s | p99 s | max s |\n|---|---:|---:|---:|---:|"
    );
    let rows = [
        (
            "this library: leader SIGKILLed → next leader started (measured)",
            &e.after_kill,
        ),
        (
            "this library: `resign()` → next leader started (measured)",
            &e.after_resign,
        ),
        (
            "client-go defaults (lease 15 s, retry 2 s): leader dies → standby leads (modelled)",
            &e.client_go_after_kill,
        ),
        (
            "client-go with ReleaseOnCancel: release → standby leads (modelled)",
            &e.client_go_after_release,
        ),
    ];
    for (what, sum) in rows {
        let _ = writeln!(
            s,
            "| {what} | {} | {} | {} | {} |",
            sum.count,
            secs(sum.p50_us),
            secs(sum.p99_us),
            secs(sum.max_us)
        );
    }
    let rate = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.2}"));
    let _ = writeln!(
        s,
        "\nRaft writes per second (the server's Raft index, see Raft writes above; {} s windows): {} with nobody campaigning, \
         {} with a leader and 2 candidates waiting, idle{}",
        e.raft_window_s,
        rate(e.baseline_raft_writes_per_s),
        rate(e.idle_raft_writes_per_s),
        e.raft_note.as_deref().map_or(String::new(), |n| format!(" ({n})"))
    );
}
