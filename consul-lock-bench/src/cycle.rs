//! The uncontended lock cycle (acquire + release, one key, sequential) through each way of
//! using the library, and through the two bare minimums (3 calls; 2 calls with a reused
//! session). Each measurement also counts the Raft writes it cost (see `raft.rs`).

use std::time::{Duration, Instant};

use consul_lock::{consul_lock, Client, Lock};
use serde::Serialize;
use tokio::runtime::Runtime;

use crate::bare::Bare;
use crate::raft::RaftIndex;
use crate::server::Target;
use crate::stats::{median, Samples, Summary};
use crate::sys::{context_switches, process_cpu};

/// How a cycle is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Bare,
    Bare2,
    MacroAsync,
    MacroSync,
    ApiAsync,
    ApiBlocking,
}

impl Variant {
    pub const ALL: [Variant; 6] = [
        Variant::Bare,
        Variant::Bare2,
        Variant::MacroAsync,
        Variant::MacroSync,
        Variant::ApiAsync,
        Variant::ApiBlocking,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Variant::Bare => "bare_reqwest",
            Variant::Bare2 => "bare_reqwest_2call",
            Variant::MacroAsync => "macro_async",
            Variant::MacroSync => "macro_sync",
            Variant::ApiAsync => "api_async",
            Variant::ApiBlocking => "api_blocking",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Variant::Bare => "bare minimum (plain reqwest, 3 calls)",
            Variant::Bare2 => "bare minimum (plain reqwest, 2 calls, reused session)",
            Variant::MacroAsync => "`#[consul_lock]` async fn",
            Variant::MacroSync => "`#[consul_lock]` sync fn",
            Variant::ApiAsync => "runtime API async (`acquire().await`)",
            Variant::ApiBlocking => "runtime API blocking (`acquire_blocking()`)",
        }
    }
}

/// The measured cycle of one variant.
#[derive(Clone, Debug, Serialize)]
pub struct CycleResult {
    pub variant: &'static str,
    pub label: &'static str,
    pub cycles: u64,
    pub seconds: f64,
    pub cycles_per_s: f64,
    pub latency: Summary,
    /// Throughput ÷ the bare minimum's, in the same round, median over the rounds (1.0 for
    /// the bare minimum itself). Pairing by round cancels most of a busy machine's drift.
    pub ratio_to_bare: Option<f64>,
    /// The ratio of each round.
    pub ratio_by_round: Vec<f64>,
    /// Throughput ÷ the 2-call bare minimum's, in the same round, median over the rounds.
    pub ratio_to_bare2: Option<f64>,
    /// The ratio to the 2-call bare minimum of each round.
    pub ratio_to_bare2_by_round: Vec<f64>,
    /// Raft writes per cycle, from the server's Raft index before and after each measurement
    /// (`None` where it cannot be read: see the report's note).
    pub raft_writes_per_cycle: Option<f64>,
    /// Requests counted by the client (`Client::requests_sent`, or the bare client's own count).
    pub client_requests_per_cycle: f64,
    /// Requests counted by the embedded server (`TestServer::request_count`); none for an agent.
    pub server_requests_per_cycle: Option<f64>,
    /// CPU time of the bench process (client side only) per cycle.
    pub cpu_us_per_cycle: f64,
    /// Context switches of the bench process per cycle (thread hops show here).
    pub context_switches_per_cycle: f64,
    /// bare p50 latency ÷ this p50 latency: the ratio least moved by other load.
    pub p50_ratio_to_bare: Option<f64>,
    /// 2-call bare p50 latency ÷ this p50 latency.
    pub p50_ratio_to_bare2: Option<f64>,
}

/// An error type for the functions under `#[consul_lock]`.
#[derive(Debug)]
pub struct BenchError(pub consul_lock::Error);

impl From<consul_lock::Error> for BenchError {
    fn from(e: consul_lock::Error) -> Self {
        BenchError(e)
    }
}

#[consul_lock(
    key = "consul-lock-bench/<run>/macro-async",
    acquire_timeout_ms = 5000,
    client = client,
    guard = lock
)]
async fn macro_async(run: &str, client: &Client) -> Result<u64, BenchError> {
    Ok(lock.fencing_token())
}

#[consul_lock(
    key = "consul-lock-bench/<run>/macro-sync",
    acquire_timeout_ms = 5000,
    client = client,
    guard = lock
)]
fn macro_sync(run: &str, client: &Client) -> Result<u64, BenchError> {
    Ok(lock.fencing_token())
}

/// Everything a cycle needs.
pub struct Ctx<'a> {
    pub rt: &'a Runtime,
    pub client: &'a Client,
    pub bare: &'a Bare,
    pub target: &'a Target,
    pub raft: &'a RaftIndex,
    pub run_id: &'a str,
}

#[derive(Default)]
struct Acc {
    cycles: u64,
    wall: Duration,
    cpu: Duration,
    switches: u64,
    samples: Samples,
    client_requests: u64,
    server_requests: Option<u64>,
    raft_writes: Option<u64>,
}

impl Acc {
    fn merge(&mut self, other: Acc) {
        let first = self.wall.is_zero();
        self.server_requests = match (self.server_requests, other.server_requests) {
            (_, b) if first => b,
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        self.raft_writes = match (self.raft_writes, other.raft_writes) {
            (_, b) if first => b,
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        self.cycles += other.cycles;
        self.wall += other.wall;
        self.cpu += other.cpu;
        self.switches += other.switches;
        self.samples.extend(other.samples);
        self.client_requests += other.client_requests;
    }
}

fn check_token(token: u64) -> Result<(), String> {
    if token == 0 {
        return Err("acquired with fencing token 0".into());
    }
    Ok(())
}

/// Runs cycles of `variant` for `duration` and measures them.
fn run_for(ctx: &Ctx<'_>, variant: Variant, duration: Duration) -> Result<Acc, String> {
    let client_count = || match variant {
        Variant::Bare | Variant::Bare2 => ctx.bare.requests_sent(),
        _ => ctx.client.requests_sent(),
    };
    let run = ctx.run_id;
    let prefix = consul_lock::defaults::key_prefix();
    let bare_key = format!("{prefix}consul-lock-bench/{run}/bare");
    let bare2_key = format!("{prefix}consul-lock-bench/{run}/bare-2call");
    let value = consul_lock::default_value(&bare_key).into_bytes();
    let lock = |name: &str| {
        Lock::new(format!("consul-lock-bench/{run}/{name}"))
            .client(ctx.client)
            .acquire_timeout(Duration::from_secs(5))
    };
    // Outside the counted window: the reading is no cycle's work (a probe write on the
    // embedded server, not counted in its request count either).
    let raft0 = ctx.rt.block_on(ctx.raft.mark());
    let server0 = ctx.target.server_requests();
    let client0 = client_count();
    let cpu0 = process_cpu();
    let switches0 = context_switches();
    let start = Instant::now();
    let mut samples = Samples::with_capacity(16 * 1024);
    match variant {
        Variant::Bare => ctx.rt.block_on(async {
            while start.elapsed() < duration {
                let t = Instant::now();
                ctx.bare.cycle(&bare_key, &value).await?;
                samples.push(t.elapsed());
            }
            Ok::<_, String>(())
        })?,
        Variant::Bare2 => ctx.rt.block_on(async {
            while start.elapsed() < duration {
                let t = Instant::now();
                ctx.bare.cycle_reused(&bare2_key, &value).await?;
                samples.push(t.elapsed());
            }
            Ok::<_, String>(())
        })?,
        Variant::MacroAsync => ctx.rt.block_on(async {
            while start.elapsed() < duration {
                let t = Instant::now();
                let token = macro_async(run, ctx.client)
                    .await
                    .map_err(|e| e.0.to_string())?;
                samples.push(t.elapsed());
                check_token(token)?;
            }
            Ok::<_, String>(())
        })?,
        Variant::MacroSync => {
            while start.elapsed() < duration {
                let t = Instant::now();
                let token = macro_sync(run, ctx.client).map_err(|e| e.0.to_string())?;
                samples.push(t.elapsed());
                check_token(token)?;
            }
        }
        Variant::ApiAsync => {
            let lock = lock("api-async");
            ctx.rt.block_on(async {
                while start.elapsed() < duration {
                    let t = Instant::now();
                    let guard = lock.acquire().await.map_err(|e| e.to_string())?;
                    let token = guard.fencing_token();
                    guard.release().await.map_err(|e| e.to_string())?;
                    samples.push(t.elapsed());
                    check_token(token)?;
                }
                Ok::<_, String>(())
            })?
        }
        Variant::ApiBlocking => {
            let lock = lock("api-blocking");
            while start.elapsed() < duration {
                let t = Instant::now();
                let guard = lock.acquire_blocking().map_err(|e| e.to_string())?;
                let token = guard.fencing_token();
                guard.release_blocking().map_err(|e| e.to_string())?;
                samples.push(t.elapsed());
                check_token(token)?;
            }
        }
    }
    let wall = start.elapsed();
    let cpu = process_cpu().saturating_sub(cpu0);
    let switches = context_switches().saturating_sub(switches0);
    let client_requests = client_count() - client0;
    let server_requests = match (server0, ctx.target.server_requests()) {
        // The count is asked over the child's stdin, not HTTP: it adds no request.
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    let raft_writes = ctx
        .raft
        .writes_between(raft0, ctx.rt.block_on(ctx.raft.mark()));
    Ok(Acc {
        cycles: samples.len() as u64,
        wall,
        cpu,
        switches,
        samples,
        client_requests,
        server_requests,
        raft_writes,
    })
}

/// Measures every variant: a short warm-up each, then `rounds` rounds in which every variant
/// runs `duration / rounds`, interleaved so that drift in the machine's speed affects all
/// variants alike.
pub fn run(ctx: &Ctx<'_>, duration: Duration, rounds: u32) -> Result<Vec<CycleResult>, String> {
    let warmup = (duration / 10).min(Duration::from_millis(300));
    for v in Variant::ALL {
        run_for(ctx, v, warmup).map_err(|e| format!("{} (warm-up): {e}", v.label()))?;
    }
    let slice = duration / rounds.max(1);
    let mut accs: Vec<Acc> = Variant::ALL.iter().map(|_| Acc::default()).collect();
    let mut ratios: Vec<Vec<f64>> = Variant::ALL.iter().map(|_| Vec::new()).collect();
    let mut ratios2: Vec<Vec<f64>> = Variant::ALL.iter().map(|_| Vec::new()).collect();
    for round in 1..=rounds.max(1) {
        let (mut bare_rate, mut bare2_rate) = (0.0, 0.0);
        for (i, v) in Variant::ALL.iter().enumerate() {
            let acc = run_for(ctx, *v, slice).map_err(|e| format!("{}: {e}", v.label()))?;
            let r = rate(&acc);
            match v {
                Variant::Bare => bare_rate = r,
                Variant::Bare2 => bare2_rate = r,
                _ => {}
            }
            if bare_rate > 0.0 {
                ratios[i].push(r / bare_rate);
            }
            if bare2_rate > 0.0 {
                ratios2[i].push(r / bare2_rate);
            }
            progress!(
                "  round {round}/{rounds} {:<44} {:>8.0} cycles/s",
                v.label(),
                r
            );
            accs[i].merge(acc);
        }
    }
    let bare_p50 = accs[0].samples.summary().p50_us;
    let bare2_p50 = accs[1].samples.summary().p50_us;
    Ok(Variant::ALL
        .iter()
        .zip(accs)
        .zip(ratios.into_iter().zip(ratios2))
        .map(|((v, acc), (ratio_by_round, ratio_to_bare2_by_round))| {
            let per_cycle = |n: u64| n as f64 / acc.cycles.max(1) as f64;
            let r = rate(&acc);
            let latency = acc.samples.summary();
            CycleResult {
                variant: v.id(),
                label: v.label(),
                cycles: acc.cycles,
                seconds: acc.wall.as_secs_f64(),
                cycles_per_s: r,
                latency,
                p50_ratio_to_bare: (latency.p50_us > 0.0).then(|| bare_p50 / latency.p50_us),
                p50_ratio_to_bare2: (latency.p50_us > 0.0).then(|| bare2_p50 / latency.p50_us),
                ratio_to_bare: median(&ratio_by_round),
                ratio_by_round,
                ratio_to_bare2: median(&ratio_to_bare2_by_round),
                ratio_to_bare2_by_round,
                raft_writes_per_cycle: crate::raft::per(acc.raft_writes, acc.cycles),
                client_requests_per_cycle: per_cycle(acc.client_requests),
                server_requests_per_cycle: acc.server_requests.map(per_cycle),
                cpu_us_per_cycle: acc.cpu.as_secs_f64() * 1e6 / acc.cycles.max(1) as f64,
                context_switches_per_cycle: per_cycle(acc.switches),
            }
        })
        .collect())
}

fn rate(acc: &Acc) -> f64 {
    if acc.wall.is_zero() {
        0.0
    } else {
        acc.cycles as f64 / acc.wall.as_secs_f64()
    }
}
