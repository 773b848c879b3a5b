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

use clap::{Parser, Subcommand};
use consul_lock_reliability::stress::{self, StressConfig, WorkerArgs};
use consul_lock_reliability::support;

/// The mutual-exclusion stress run of consul-lock: worker processes compete for a few keys
/// and the history of their holds is checked for overlaps.
#[derive(Debug, Parser)]
#[command(name = "reliability-stress")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The long run: against the agent at `CONSUL_HTTP_ADDR`, or the embedded test server
    /// when that is unset. Exits with 1 on any violation, lost hold, leftover, release error
    /// or acquire error other than the deadline cutting the last request.
    Run(RunArgs),
    /// One worker process (started by `run` and by the tests); prints its holds and
    /// summary as JSON lines.
    Worker {
        /// The worker's settings, as JSON (written by `run`).
        #[arg(value_name = "JSON")]
        json: String,
    },
}

/// The sizes of the long run. A flag left out takes its `RELIABILITY_STRESS_*` variable,
/// else the CI default.
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Worker processes [default: $RELIABILITY_STRESS_PROCS, else 3].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    procs: Option<u32>,

    /// Tasks in each process [default: $RELIABILITY_STRESS_TASKS, else 8].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    tasks: Option<u32>,

    /// Keys the tasks compete for [default: $RELIABILITY_STRESS_KEYS, else 3].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    keys: Option<u32>,

    /// Seconds during which the tasks keep starting new acquires
    /// [default: $RELIABILITY_STRESS_SECS, else 3].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    secs: Option<u64>,
}

impl RunArgs {
    /// The configuration: the CI run, then the environment, then these flags.
    fn config(&self) -> StressConfig {
        let mut config = StressConfig::from_env(StressConfig::ci());
        if let Some(n) = self.procs {
            config.processes = n;
        }
        if let Some(n) = self.tasks {
            config.tasks = n;
        }
        if let Some(n) = self.keys {
            config.keys = n;
        }
        if let Some(n) = self.secs {
            config.duration = Duration::from_secs(n);
        }
        config
    }
}

fn main() {
    match Cli::parse().command {
        Command::Worker { json } => {
            let worker: WorkerArgs = serde_json::from_str(&json).unwrap_or_else(|e| {
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
        Command::Run(args) => {
            let config = args.config();
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
                || !report.output.acquire_errors().is_empty()
                || !report.output.release_errors().is_empty();
            if failed {
                println!("leftovers: {:?}", report.leftovers);
                std::process::exit(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_override_and_errors_name_the_argument() {
        let cli =
            Cli::try_parse_from(["reliability-stress", "run", "--procs", "6", "--secs", "60"])
                .expect("valid flags");
        let Command::Run(args) = cli.command else {
            panic!("run parsed as another command")
        };
        assert_eq!(
            (args.procs, args.tasks, args.keys, args.secs),
            (Some(6), None, None, Some(60))
        );
        let err = Cli::try_parse_from(["reliability-stress", "run", "--tasks", "many"])
            .expect_err("not a number");
        assert!(err.to_string().contains("--tasks"), "{err}");
        let err = Cli::try_parse_from(["reliability-stress", "run", "--keys", "0"])
            .expect_err("zero keys");
        assert!(err.to_string().contains("--keys"), "{err}");
    }
}
