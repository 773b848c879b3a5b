//! The mutual-exclusion stress run.
//!
//! - `reliability-stress run [--procs N] [--tasks N] [--keys N] [--secs N]`: the long run. It
//!   uses the agent at `CONSUL_HTTP_ADDR`, or starts the embedded test server when that is
//!   unset, starts the worker processes (this binary again), checks the history and what is
//!   left in Consul, prints the report and exits with 1 on any violation, lost hold, leftover,
//!   release error or acquire error other than the deadline cutting the last request. The
//!   `RELIABILITY_STRESS_*` variables set the same values as the flags.
//! - `reliability-stress worker '<json>'`: one worker process (started by `run` and by the
//!   tests); prints its holds and summary as JSON lines.

use std::time::Duration;

use consul_lock_reliability::stress::{self, StressConfig, WorkerArgs};
use consul_lock_reliability::support;

fn usage() -> ! {
    eprintln!(
        "usage: reliability-stress run [--procs N] [--tasks N] [--keys N] [--secs N]\n       \
         reliability-stress worker '<json>'"
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("worker") => {
            let Some(json) = args.get(1) else { usage() };
            let worker: WorkerArgs = serde_json::from_str(json).unwrap_or_else(|e| {
                eprintln!("reliability-stress worker: bad arguments: {e}");
                std::process::exit(2)
            });
            let (holds, summary) = support::run(stress::worker(worker));
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            if let Err(e) = stress::write_lines(&mut out, holds, summary) {
                eprintln!("reliability-stress worker: cannot write results: {e}");
                std::process::exit(1);
            }
        }
        Some("run") => {
            let mut config = StressConfig::from_env(StressConfig::ci());
            let mut rest = args[1..].iter();
            while let Some(flag) = rest.next() {
                let value: u64 = rest
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage());
                match flag.as_str() {
                    "--procs" => config.processes = value as u32,
                    "--tasks" => config.tasks = value as u32,
                    "--keys" => config.keys = value as u32,
                    "--secs" => config.duration = Duration::from_secs(value),
                    _ => usage(),
                }
            }
            let exe = std::env::current_exe().expect("the path of this program");
            let consul = support::consul();
            let prefix = support::unique_prefix("stress-long");
            eprintln!(
                "stress run against {} ({}), prefix {prefix}",
                consul.url(),
                if consul.server().is_some() {
                    "embedded test server"
                } else {
                    "CONSUL_HTTP_ADDR"
                }
            );
            let report = support::run(stress::run_scenario(
                &exe,
                &consul,
                config,
                &prefix,
                std::future::ready(()),
            ));
            println!("{}", report.describe());
            for v in report.verdict.violations.iter().take(20) {
                println!("violation: {v}");
            }
            for e in report.output.acquire_errors().iter().take(20) {
                println!("acquire error: {e}");
            }
            for e in report.output.release_errors().iter().take(20) {
                println!("release error: {e}");
            }
            let failed = !report.verdict.ok()
                || report.verdict.lost > 0
                || !report.leftovers.is_empty()
                || !report.output.other_acquire_errors().is_empty()
                || !report.output.release_errors().is_empty();
            if failed {
                println!("leftovers: {:?}", report.leftovers);
                std::process::exit(1);
            }
        }
        _ => usage(),
    }
}
