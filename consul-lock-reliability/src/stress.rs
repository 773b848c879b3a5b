//! The mutual-exclusion stress run: several OS processes, each with many tasks, acquire a few
//! keys over and over for a while and record every hold; the history is then checked with
//! [`history::check`](crate::history::check).
//!
//! The orchestrator ([`run_processes`]) starts the worker processes (the `reliability-stress`
//! binary with the `worker` subcommand), reads their records from their stdout and waits for
//! them. Each worker ([`worker`]) mixes the ways a lock can be taken and released: `acquire`
//! + `release`, a one-try `try_acquire`, dropping the guard (background release), `hold`, and
//!   the blocking API from a plain thread.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use consul_lock::{Client, ClientBuilder, Error, Lock, LockHandle};
use serde::{Deserialize, Serialize};

use crate::clock::monotonic_ns;
use crate::history::Hold;

/// The shape of a stress run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StressConfig {
    /// How many worker processes.
    pub processes: u32,
    /// How many tasks in each process.
    pub tasks: u32,
    /// How many keys they compete for.
    pub keys: u32,
    /// How long the tasks keep starting new acquires.
    pub duration: Duration,
    /// The longest a holder keeps the lock (each hold is random in `0..=max_hold`).
    pub max_hold: Duration,
    /// The acquire timeout of the waiting acquires.
    pub acquire_timeout: Duration,
}

impl StressConfig {
    /// The short run for CI: 3 processes × 8 tasks × 3 keys for 3 s.
    #[must_use]
    pub fn ci() -> StressConfig {
        StressConfig {
            processes: 3,
            tasks: 8,
            keys: 3,
            duration: Duration::from_secs(3),
            max_hold: Duration::from_millis(2),
            acquire_timeout: Duration::from_secs(2),
        }
    }

    /// `base`, with the `RELIABILITY_STRESS_PROCS`, `RELIABILITY_STRESS_TASKS`,
    /// `RELIABILITY_STRESS_KEYS` and `RELIABILITY_STRESS_SECS` environment variables applied
    /// (the long run sets them).
    ///
    /// # Panics
    ///
    /// When a variable is set but not a positive number.
    #[must_use]
    pub fn from_env(base: StressConfig) -> StressConfig {
        let num = |name: &str| -> Option<u64> {
            let v = std::env::var(name).ok()?;
            let n: u64 = v
                .trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}={v:?} is not a number"));
            assert!(n > 0, "{name} must be positive");
            Some(n)
        };
        let mut c = base;
        if let Some(n) = num("RELIABILITY_STRESS_PROCS") {
            c.processes = n as u32;
        }
        if let Some(n) = num("RELIABILITY_STRESS_TASKS") {
            c.tasks = n as u32;
        }
        if let Some(n) = num("RELIABILITY_STRESS_KEYS") {
            c.keys = n as u32;
        }
        if let Some(n) = num("RELIABILITY_STRESS_SECS") {
            c.duration = Duration::from_secs(n);
        }
        c
    }
}

/// Everything one worker process needs, passed on its command line as JSON.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkerArgs {
    /// The Consul address.
    pub url: String,
    /// The agent's `session_ttl_min`.
    pub ttl_min: Duration,
    /// The lock timeout (session TTL) of every lock.
    pub lock_timeout: Duration,
    /// The key prefix (unique per run).
    pub prefix: String,
    /// The run's shape.
    pub config: StressConfig,
    /// Whether to read `CONSUL_*` (token, TLS) from the environment (real agents).
    pub from_env: bool,
}

/// What one worker reports at the end.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerSummary {
    /// The worker's process id.
    pub pid: u32,
    /// Acquire calls made.
    pub attempts: u64,
    /// Acquires that returned a guard.
    pub acquired: u64,
    /// Acquires that did not get the lock in time (`NotAcquired`, or `None` from a try).
    pub not_acquired: u64,
    /// Other acquire errors, with their messages (none expected without faults).
    pub acquire_errors: Vec<String>,
    /// Releases that returned an error (none expected without faults).
    pub release_errors: Vec<String>,
    /// HTTP requests the worker's client sent.
    pub requests: u64,
}

/// One line of a worker's stdout.
#[derive(Debug, Serialize, Deserialize)]
pub enum Line {
    /// A hold.
    Hold(Hold),
    /// The worker's summary, its last line.
    Summary(WorkerSummary),
}

#[derive(Default)]
struct Tally {
    summary: WorkerSummary,
    holds: Vec<Hold>,
}

type Shared = Arc<Mutex<Tally>>;

fn tally(shared: &Shared, f: impl FnOnce(&mut Tally)) {
    f(&mut shared.lock().unwrap_or_else(PoisonError::into_inner));
}

/// How one acquire call ended.
enum Outcome {
    Got,
    Missed,
    Failed(String),
}

fn outcome_of<T>(result: &Result<T, Error>, got: impl Fn(&T) -> bool) -> Outcome {
    match result {
        Ok(v) if got(v) => Outcome::Got,
        Ok(_) | Err(Error::NotAcquired { .. }) => Outcome::Missed,
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

fn outcome(shared: &Shared, outcome: Outcome) {
    tally(shared, |t| {
        t.summary.attempts += 1;
        match outcome {
            Outcome::Got => t.summary.acquired += 1,
            Outcome::Missed => t.summary.not_acquired += 1,
            Outcome::Failed(e) => t.summary.acquire_errors.push(e),
        }
    });
}

async fn hold_async(handle: &LockHandle, task: u32, mode: &str, max_hold: Duration) -> Hold {
    let start_ns = monotonic_ns();
    let pause = fastrand::u64(0..=max_hold.as_micros() as u64);
    tokio::time::sleep(Duration::from_micros(pause)).await;
    let held_at_end = handle.is_held();
    let end_ns = monotonic_ns();
    record(handle, task, mode, start_ns, end_ns, held_at_end)
}

fn hold_blocking(handle: &LockHandle, task: u32, max_hold: Duration) -> Hold {
    let start_ns = monotonic_ns();
    let pause = fastrand::u64(0..=max_hold.as_micros() as u64);
    std::thread::sleep(Duration::from_micros(pause));
    let held_at_end = handle.is_held();
    let end_ns = monotonic_ns();
    record(handle, task, "blocking", start_ns, end_ns, held_at_end)
}

fn record(
    handle: &LockHandle,
    task: u32,
    mode: &str,
    start_ns: u64,
    end_ns: u64,
    held_at_end: bool,
) -> Hold {
    Hold {
        key: handle.key().to_owned(),
        token: handle.fencing_token(),
        start_ns,
        end_ns,
        held_at_end,
        pid: std::process::id(),
        task,
        mode: mode.to_owned(),
    }
}

/// Runs one worker process's tasks until the configured duration has passed, then waits for
/// background releases and returns every hold and the summary.
///
/// # Panics
///
/// When the client cannot be built.
pub async fn worker(args: WorkerArgs) -> (Vec<Hold>, WorkerSummary) {
    let builder = if args.from_env {
        ClientBuilder::from_env().expect("CONSUL_* environment variables")
    } else {
        Client::builder()
    };
    let client = builder
        .address(&args.url)
        .session_ttl_min(args.ttl_min)
        .build()
        .expect("build the client");
    let shared: Shared = Arc::default();
    let end = tokio::time::Instant::now() + args.config.duration;
    let mut tasks = Vec::new();
    for task in 0..args.config.tasks {
        let client = client.clone();
        let shared = shared.clone();
        let args = args.clone();
        tasks.push(tokio::spawn(async move {
            while tokio::time::Instant::now() < end {
                let key = format!("k{}", fastrand::u32(0..args.config.keys));
                let lock = Lock::new(key)
                    .client(&client)
                    .key_prefix(&args.prefix)
                    .lock_timeout(args.lock_timeout)
                    .acquire_timeout(args.config.acquire_timeout);
                one_round(&shared, lock, task, args.config.max_hold).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("stress task panicked");
    }
    consul_lock::flush_releases().await;
    let mut tally = std::mem::take(&mut *shared.lock().unwrap_or_else(PoisonError::into_inner));
    tally.summary.pid = std::process::id();
    tally.summary.requests = client.requests_sent();
    (tally.holds, tally.summary)
}

async fn one_round(shared: &Shared, lock: Lock, task: u32, max_hold: Duration) {
    match fastrand::u8(0..5) {
        0 => {
            let result = lock.acquire().await;
            outcome(shared, outcome_of(&result, |_| true));
            if let Ok(guard) = result {
                let h = hold_async(&guard.handle(), task, "acquire+release", max_hold).await;
                tally(shared, |t| t.holds.push(h));
                if let Err(e) = guard.release().await {
                    tally(shared, |t| t.summary.release_errors.push(e.to_string()));
                }
            }
        }
        1 => {
            let result = lock.acquire_timeout(Duration::ZERO).try_acquire().await;
            outcome(shared, outcome_of(&result, Option::is_some));
            if let Ok(Some(guard)) = result {
                let h = hold_async(&guard.handle(), task, "try", max_hold).await;
                tally(shared, |t| t.holds.push(h));
                if let Err(e) = guard.release().await {
                    tally(shared, |t| t.summary.release_errors.push(e.to_string()));
                }
            }
        }
        2 => {
            let result = lock.acquire().await;
            outcome(shared, outcome_of(&result, |_| true));
            if let Ok(guard) = result {
                let h = hold_async(&guard.handle(), task, "drop", max_hold).await;
                tally(shared, |t| t.holds.push(h));
                drop(guard);
            }
        }
        3 => {
            let result = lock
                .hold(|handle| async move { hold_async(&handle, task, "hold", max_hold).await })
                .await;
            outcome(shared, outcome_of(&result, |_| true));
            if let Ok(h) = result {
                tally(shared, |t| t.holds.push(h));
            }
        }
        _ => {
            let shared2 = shared.clone();
            tokio::task::spawn_blocking(move || {
                let result = lock.acquire_blocking();
                outcome(&shared2, outcome_of(&result, |_| true));
                if let Ok(guard) = result {
                    let h = hold_blocking(&guard.handle(), task, max_hold);
                    tally(&shared2, |t| t.holds.push(h));
                    if let Err(e) = guard.release_blocking() {
                        tally(&shared2, |t| t.summary.release_errors.push(e.to_string()));
                    }
                }
            })
            .await
            .expect("blocking stress round panicked");
        }
    }
}

/// Writes a worker's result as JSON lines (holds, then the summary).
///
/// # Errors
///
/// When the output cannot be written.
pub fn write_lines(
    out: &mut impl Write,
    holds: Vec<Hold>,
    summary: WorkerSummary,
) -> std::io::Result<()> {
    for h in holds {
        serde_json::to_writer(&mut *out, &Line::Hold(h))?;
        out.write_all(b"\n")?;
    }
    serde_json::to_writer(&mut *out, &Line::Summary(summary))?;
    out.write_all(b"\n")?;
    out.flush()
}

/// What all worker processes of one run reported.
#[derive(Debug, Default)]
pub struct RunOutput {
    /// Every hold of every process.
    pub holds: Vec<Hold>,
    /// One summary per process.
    pub summaries: Vec<WorkerSummary>,
}

impl RunOutput {
    /// Total acquire calls.
    #[must_use]
    pub fn attempts(&self) -> u64 {
        self.summaries.iter().map(|s| s.attempts).sum()
    }
    /// Total acquires that got the lock.
    #[must_use]
    pub fn acquired(&self) -> u64 {
        self.summaries.iter().map(|s| s.acquired).sum()
    }
    /// Total acquires that did not get it in time.
    #[must_use]
    pub fn not_acquired(&self) -> u64 {
        self.summaries.iter().map(|s| s.not_acquired).sum()
    }
    /// Every acquire error other than "not acquired".
    #[must_use]
    pub fn acquire_errors(&self) -> Vec<String> {
        self.summaries
            .iter()
            .flat_map(|s| s.acquire_errors.clone())
            .collect()
    }
    /// Every release error.
    #[must_use]
    pub fn release_errors(&self) -> Vec<String> {
        self.summaries
            .iter()
            .flat_map(|s| s.release_errors.clone())
            .collect()
    }
    /// Total HTTP requests sent by the workers.
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.summaries.iter().map(|s| s.requests).sum()
    }
}

/// Starts `args.config.processes` worker processes (`exe worker '<json>'`), collects their
/// output and waits for them.
///
/// # Errors
///
/// A description when a process cannot start, exits with a failure, or prints something
/// that is not a record.
pub fn run_processes(exe: &Path, args: &WorkerArgs) -> Result<RunOutput, String> {
    let json = serde_json::to_string(args).map_err(|e| e.to_string())?;
    let mut children = Vec::new();
    for _ in 0..args.config.processes {
        let child = Command::new(exe)
            .arg("worker")
            .arg(&json)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
        children.push(child);
    }
    let mut out = RunOutput::default();
    let mut problems = Vec::new();
    let readers: Vec<_> = children
        .iter_mut()
        .map(|c| {
            let stdout = c.stdout.take().expect("piped stdout");
            std::thread::spawn(move || -> Result<Vec<Line>, String> {
                let mut lines = Vec::new();
                for line in BufReader::new(stdout).lines() {
                    let line = line.map_err(|e| e.to_string())?;
                    lines.push(
                        serde_json::from_str(&line)
                            .map_err(|e| format!("bad worker line {line:?}: {e}"))?,
                    );
                }
                Ok(lines)
            })
        })
        .collect();
    for (mut child, reader) in children.into_iter().zip(readers) {
        let status = child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            problems.push(format!("worker {} exited with {status}", child.id()));
        }
        match reader.join() {
            Ok(Ok(lines)) => {
                let mut summary = None;
                for line in lines {
                    match line {
                        Line::Hold(h) => out.holds.push(h),
                        Line::Summary(s) => summary = Some(s),
                    }
                }
                match summary {
                    Some(s) => out.summaries.push(s),
                    None => problems.push(format!("worker {} printed no summary", child.id())),
                }
            }
            Ok(Err(e)) => problems.push(e),
            Err(_) => problems.push("a reader thread panicked".into()),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems.join("; "))
    }
}

/// The result of a whole stress run: what the workers did, what the checker found, and what
/// was left in Consul afterwards.
#[derive(Debug)]
pub struct StressReport {
    /// The run's shape.
    pub config: StressConfig,
    /// The workers' output.
    pub output: RunOutput,
    /// The checker's verdict on the history.
    pub verdict: crate::history::Verdict,
    /// What was left under the run's prefix after the workers exited (nothing expected).
    pub leftovers: crate::support::Leftovers,
    /// How long the run took, processes started to leftovers checked.
    pub elapsed: Duration,
}

impl StressReport {
    /// One line for people: counts, outcome, time.
    #[must_use]
    pub fn describe(&self) -> String {
        format!(
            "{} processes x {} tasks x {} keys for {:?}: {} acquire calls, {} holds checked ({} handovers), \
             {} not acquired in time, {} acquire errors, {} release errors, {} HTTP requests, \
             {} holds reported lost by their guard, {} violations, {} sessions and {} keys left, {:.1} s",
            self.config.processes,
            self.config.tasks,
            self.config.keys,
            self.config.duration,
            self.output.attempts(),
            self.verdict.holds,
            self.verdict.handovers,
            self.output.not_acquired(),
            self.output.acquire_errors().len(),
            self.output.release_errors().len(),
            self.output.requests(),
            self.verdict.lost,
            self.verdict.violations.len(),
            self.leftovers.sessions.len(),
            self.leftovers.keys.len(),
            self.elapsed.as_secs_f64(),
        )
    }
}

/// Runs the whole stress scenario against `consul`: worker processes from `exe` (the
/// `reliability-stress` binary), the history check, and the leftover check.
///
/// The workers run on a blocking thread; `during` runs meanwhile on the caller's runtime (a
/// fault schedule, or nothing) and is dropped when the workers are done.
///
/// # Panics
///
/// When the worker processes fail (see [`run_processes`]).
pub async fn run_scenario<F>(
    exe: &Path,
    consul: &consul_lock_testkit::TestConsul,
    config: StressConfig,
    prefix: &str,
    during: F,
) -> StressReport
where
    F: std::future::Future<Output = ()>,
{
    let started = std::time::Instant::now();
    let args = WorkerArgs {
        url: consul.url().to_string(),
        ttl_min: consul.session_ttl_min(),
        lock_timeout: consul.session_ttl_min(),
        prefix: prefix.to_owned(),
        config: config.clone(),
        from_env: consul.server().is_none(),
    };
    let exe = exe.to_owned();
    let workers = tokio::task::spawn_blocking(move || run_processes(&exe, &args));
    tokio::pin!(workers);
    let during = during;
    tokio::pin!(during);
    let mut during_done = false;
    let output = loop {
        tokio::select! {
            out = &mut workers => break out.expect("worker thread").unwrap_or_else(|e| panic!("stress workers failed: {e}")),
            () = &mut during, if !during_done => during_done = true,
        }
    };
    let verdict = crate::history::check(&output.holds);
    let client = crate::support::client(consul);
    let leftovers = crate::support::leftovers(&client, prefix).await;
    StressReport {
        config,
        output,
        verdict,
        leftovers,
        elapsed: started.elapsed(),
    }
}
