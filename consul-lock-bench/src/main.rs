//! The consul-lock benchmark harness. See README.md for what it measures and how to read it.

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

/// Progress lines go to stderr, the tables to stdout.
macro_rules! progress {
    ($($t:tt)*) => { eprintln!($($t)*) };
}

mod args;
mod bare;
mod ceiling;
mod contention;
mod cycle;
mod election;
mod memory;
mod peer_runs;
mod raft;
mod report;
mod semaphore;
mod server;
mod spread;
mod stats;
mod sys;
mod targets;

use args::Args;
use contention::Scenario;
use report::Report;
use server::Target;

fn main() -> ExitCode {
    let args = args::parse_env();
    if args.serve {
        return match server::serve() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(key) = &args.election_candidate {
        let run = Target::from_env().and_then(|t| election::child(&t, key, args.election_ttl));
        return match run {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(key) = &args.contention_child {
        return match child(&args, key) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let started = Instant::now();
    match run(&args) {
        Ok(report) => {
            println!("{}", report.markdown());
            let written = report.write_json(&args.json);
            match &written {
                Ok(()) => println!("JSON written to {}", args.json.display()),
                Err(e) => eprintln!("error: {e}"),
            }
            println!("total time: {:.1} s", started.elapsed().as_secs_f64());
            let misses = report.targets.iter().filter(|t| !t.pass).count();
            if misses > 0 {
                println!("{misses} target(s) missed (reported above; not a failure)");
            }
            if !report.broken.is_empty() {
                eprintln!("error: the bench is broken: {}", report.broken.join("; "));
                return ExitCode::FAILURE;
            }
            if written.is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A worker process of a spread contention row: its share of the workers, on `key`.
fn child(args: &Args, key: &str) -> Result<(), String> {
    let target = Target::from_env()?;
    let client = target
        .client_builder()?
        .build()
        .map_err(|e| format!("cannot build the client: {e}"))?;
    let s = Scenario {
        keys: 1,
        workers_per_key: args
            .workers
            .as_ref()
            .and_then(|w| w.first().copied())
            .unwrap_or(1),
        hold: args
            .holds
            .as_ref()
            .and_then(|h| h.first().copied())
            .unwrap_or_default(),
        duration: args.duration,
    };
    spread::child(&client, key, s)
}

/// The scenarios of one run.
struct Plan {
    rounds: u32,
    workers: Vec<usize>,
    holds: Vec<Duration>,
    many_keys: (usize, usize),
}

fn run(args: &Args) -> Result<Report, String> {
    let plan = Plan {
        rounds: if args.smoke { 1 } else { 15 },
        workers: args.workers.clone().unwrap_or_else(|| {
            if args.smoke {
                vec![2, 4]
            } else {
                vec![2, 4, 8, 32, 128]
            }
        }),
        holds: args
            .holds
            .clone()
            .unwrap_or_else(|| vec![Duration::ZERO, Duration::from_millis(10)]),
        many_keys: (64, 4),
    };
    let d = args.duration;
    let want = |section: &str| args.sections.contains(&section);
    let mut step = 0;
    let mut next_step = || {
        step += 1;
        format!("[{step}/{}]", args.sections.len())
    };
    let started_at = now_rfc3339();
    let mut machine = sys::Machine::detect();
    let target = Target::from_env()?;
    println!("server: {}", target.describe());
    let client = target
        .client_builder()?
        .build()
        .map_err(|e| format!("cannot build the client: {e}"))?;
    let bare = bare::Bare::new(client.address())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build the tokio runtime: {e}"))?;
    let run_id = run_id();
    let base = format!("consul-lock-bench/{run_id}");
    // Peers get full keys: the library's prefix plus the same base.
    let peer_base = format!("{}{base}", consul_lock::defaults::key_prefix());
    let raft = rt.block_on(raft::RaftIndex::new(
        &target,
        format!("{peer_base}/raft-index-probe"),
    ));
    println!("Raft writes: {}", raft.describe());
    let mut broken = Vec::new();
    let mut peers = peer_runs::Peers::find(args);
    for p in &peers.present {
        println!("peer: {p}");
    }
    for line in peers.skipped_lines() {
        println!("peer skipped: {line}");
    }

    let mut cycles = Vec::new();
    let mut peer_cycles = Vec::new();
    if want("cycle") {
        progress!(
            "{} uncontended cycle: {} variants, {} round(s), {:.2} s per variant in all",
            next_step(),
            cycle::Variant::ALL.len(),
            plan.rounds,
            d.as_secs_f64()
        );
        let ctx = cycle::Ctx {
            rt: &rt,
            client: &client,
            bare: &bare,
            target: &target,
            raft: &raft,
            run_id: &run_id,
        };
        cycles = cycle::run(&ctx, d, plan.rounds)?;
        rt.block_on(bare.end_session())
            .map_err(|e| format!("the 2-call bare minimum's session: {e}"))?;
        for c in &cycles {
            if c.cycles == 0 {
                broken.push(format!("uncontended cycle: {} made no cycle", c.label));
            }
        }
        peer_cycles = peer_runs::cycles(&mut peers, &target, &rt, &raft, &peer_base, d, &cycles);
    }

    let mut contention = Vec::new();
    let mut peer_contention = Vec::new();
    if want("contention") {
        let total = plan.workers.len() * plan.holds.len();
        progress!(
            "{} contention: {total} runs of {:.2} s, one more of that per 32 workers (workers {:?} × holds {:?})",
            next_step(),
            d.as_secs_f64(),
            plan.workers,
            plan.holds
        );
        for &hold in &plan.holds {
            for &n in &plan.workers {
                let s = Scenario {
                    keys: 1,
                    workers_per_key: n,
                    hold,
                    duration: contention::row_duration(d, n),
                };
                let key = format!("{base}/contention-n{n}-h{}", hold.as_millis());
                let spread = args.spread_from > 0 && n >= args.spread_from;
                let r = if spread {
                    spread::run(client.address(), &key, s, 4)
                } else {
                    rt.block_on(contention::run(&client, &key, s, &raft))
                }
                .map_err(|e| format!("contention N={n} H={hold:?}: {e}"))?;
                progress!(
                    "  N={n:<3} H={:>2} ms: {:>7.0} acq/s, util {}, hand-off p50 {:.3} ms p99 {:.3} ms, fairness {}, {:.1} req/acq, {} conns",
                    hold.as_millis(),
                    r.acquisitions_per_s,
                    r.utilisation.map_or("–".into(), |u| format!("{u:.3}")),
                    r.handoff.p50_us / 1e3,
                    r.handoff.p99_us / 1e3,
                    r.fairness.map_or("–".into(), |f| format!("{f:.3}")),
                    r.client_requests_per_acquisition,
                    r.connections_max.map_or("–".into(), |n| n.to_string())
                );
                if r.acquisitions == 0 {
                    broken.push(format!("contention N={n} H={hold:?}: no acquisition"));
                }
                let peer_key = format!("{peer_base}/peer-contention-n{n}-h{}", hold.as_millis());
                peer_contention.extend(peer_runs::contention(
                    &mut peers,
                    &target,
                    &peer_key,
                    s,
                    Some(&r),
                ));
                contention.push(r);
            }
        }
    }

    let mut ceiling = Vec::new();
    if want("ceiling") {
        progress!(
            "{} write ceiling: plain KV writes from 1 and from 64 concurrent clients, {:.2} s each",
            next_step(),
            d.as_secs_f64()
        );
        for clients in [1, 64] {
            let r = ceiling::run(
                client.address(),
                &raft,
                &rt,
                &format!("{peer_base}/ceiling"),
                clients,
                d,
            )
            .map_err(|e| format!("write ceiling, {clients} client(s): {e}"))?;
            progress!(
                "  {clients:>2} client(s): {:.0} writes/s, p50 {:.3} ms",
                r.writes_per_s,
                r.latency.p50_us / 1e3
            );
            if r.writes == 0 {
                broken.push(format!("write ceiling, {clients} client(s): no write"));
            }
            ceiling.push(r);
        }
    }

    let mut many_keys = Vec::new();
    if want("many") {
        let (keys, per_key) = plan.many_keys;
        // 256 tasks start at once: in a debug build on a busy machine their first
        // acquisitions took longer than the smoke run's 0.25 s (0 acquisitions, "broken").
        let many_d = if args.smoke {
            d.max(Duration::from_secs(1))
        } else {
            d
        };
        progress!(
            "{} many keys: {keys} keys × {per_key} workers, {:.2} s",
            next_step(),
            many_d.as_secs_f64()
        );
        let s = Scenario {
            keys,
            workers_per_key: per_key,
            hold: Duration::ZERO,
            duration: many_d,
        };
        let mut many = rt
            .block_on(contention::run(&client, &format!("{base}/many"), s, &raft))
            .map_err(|e| format!("many keys: {e}"))?;
        many.share_of_half_ceiling =
            ceiling::highest(&ceiling).map(|c| many.acquisitions_per_s / (c.writes_per_s / 2.0));
        progress!("  {:.0} acquisitions/s in total", many.acquisitions_per_s);
        if many.acquisitions == 0 {
            broken.push("many keys: no acquisition".into());
        }
        many_keys.push(many);
    }

    let mut memory = None;
    if want("memory") {
        progress!(
            "{} client memory: holding {} locks at once",
            next_step(),
            args.locks
        );
        let m = rt
            .block_on(memory::run(&client, &format!("{base}/hold"), args.locks))
            .map_err(|e| format!("memory: {e}"))?;
        progress!(
            "  peak RSS {} KiB while holding {} locks",
            m.peak_rss_kib.unwrap_or(0),
            m.locks
        );
        if m.locks == 0 {
            broken.push("memory: no lock held".into());
        }
        memory = Some(m);
    }
    let mut semaphore = Vec::new();
    if want("semaphore") {
        // N slots, M contenders: M > N so that every release has a waiter.
        let (limit, contenders) = (4, 16);
        let hold = Duration::from_millis(10);
        progress!(
            "{} semaphore: {contenders} contenders on {limit} slots, hold {} ms, {:.2} s",
            next_step(),
            hold.as_millis(),
            d.as_secs_f64()
        );
        let s = semaphore::Scenario {
            limit,
            contenders,
            hold,
            duration: d,
        };
        let r = rt
            .block_on(semaphore::run(&client, &format!("{base}/semaphore"), s))
            .map_err(|e| format!("semaphore: {e}"))?;
        progress!(
            "  {:.0} acquisitions/s, utilisation {:.3}, hand-off p50 {:.3} ms, at most {} holders",
            r.acquisitions_per_s,
            r.utilisation,
            r.handoff.p50_us / 1e3,
            r.most_holders
        );
        if r.acquisitions == 0 {
            broken.push("semaphore: no acquisition".into());
        }
        if r.most_holders > limit as usize {
            broken.push(format!(
                "semaphore: {} holders at once, limit {limit}",
                r.most_holders
            ));
        }
        semaphore.push(r);
    }
    let mut election = None;
    if want("election") {
        // The Raft windows need seconds of quiet; the smoke run leaves them out.
        let window = if args.smoke {
            Duration::ZERO
        } else {
            Duration::from_secs(30)
        };
        progress!(
            "{} election: 3 candidate processes, TTL {:?}, {} kill(s) and {} resignation(s) of the leader{}",
            next_step(),
            args.election_ttl,
            args.election_rounds,
            args.election_rounds,
            if window.is_zero() { String::new() } else { format!(", Raft writes over {window:?} idle") }
        );
        let key = format!("{peer_base}/election/leader");
        let r = election::run(
            &target,
            &rt,
            &raft,
            &key,
            args.election_ttl,
            args.election_rounds,
            window,
        )
        .map_err(|e| format!("election: {e}"))?;
        if r.after_kill.count == 0 || r.after_resign.count == 0 {
            broken.push("election: no hand-over measured".into());
        }
        election = Some(r);
    }
    consul_lock::flush_releases_blocking().map_err(|e| e.to_string())?;
    for kind in &args.require_peers {
        for a in peers.skipped.iter().filter(|a| a.kind == *kind) {
            broken.push(format!(
                "{}: required (--require-peer) but skipped: {}",
                kind.label(),
                a.reason
            ));
        }
    }

    machine.load_average_end = sys::load_average();
    let targets = targets::evaluate(&cycles, &contention, &many_keys, &ceiling);
    let command = std::iter::once("cargo run --release -p consul-lock-bench --".to_owned())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    Ok(Report {
        command,
        mode: if args.smoke { "smoke" } else { "full" },
        started_at,
        duration_per_measurement_s: d.as_secs_f64(),
        server_kind: target.kind,
        server: target.describe(),
        raft_writes_source: raft.describe(),
        machine,
        cycle: cycles,
        peer_cycle: peer_cycles,
        contention,
        peer_contention,
        peers,
        ceiling,
        many_keys,
        semaphore,
        election,
        memory,
        cpu_note: report::CPU_NOTE,
        targets,
        broken,
    })
}

/// A short id that keeps this run's keys apart from other runs' on a shared agent.
fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    format!(
        "r{:x}",
        (nanos ^ u64::from(std::process::id()) << 32) & 0xffff_ffff_ffff
    )
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}
