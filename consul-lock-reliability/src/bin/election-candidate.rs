//! One process of the election workload (see `consul_lock_reliability::election_candidate`):
//! a candidate that leads when elected, or (with `--observe`) an observer; one JSON line per
//! event on stdout, until its stdin is closed (a leader then resigns).
//!
//! `election-candidate --url URL --name c1 --key KEY --data-key KEY --ttl-ms 2000
//! --grace-ms 400 --wind-down-ms 100 [--observe] [--ttl-min-ms 1000]`

use std::io::Read;
use std::time::Duration;

use clap::Parser;
use consul_lock::Client;
use consul_lock_reliability::election_candidate::{
    print, run_candidate, run_observer, CandidateConfig,
};
use consul_lock_reliability::election_history::ElectionRecord;

#[derive(Parser)]
#[command(about = "A candidate (or observer) of the consul-lock election workload")]
struct Args {
    /// The agent's base URL.
    #[arg(long)]
    url: String,
    /// The process's name, in its records.
    #[arg(long)]
    name: String,
    /// The election's whole key.
    #[arg(long)]
    key: String,
    /// Where a leader's fenced writes go.
    #[arg(long, default_value = "")]
    data_key: String,
    /// The election's TTL, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    ttl_ms: u64,
    /// The grace, in milliseconds.
    #[arg(long, default_value_t = 400)]
    grace_ms: u64,
    /// How long the work winds down once told to stop, in milliseconds.
    #[arg(long, default_value_t = 100)]
    wind_down_ms: u64,
    /// Observe instead of campaigning.
    #[arg(long)]
    observe: bool,
    /// The agent's session_ttl_min, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    ttl_min_ms: u64,
}

fn main() {
    let args = Args::parse();
    let client = match Client::builder()
        .address(&args.url)
        .session_ttl_min(Duration::from_millis(args.ttl_min_ms))
        .build()
    {
        Ok(client) => client,
        Err(e) => {
            eprintln!("election-candidate {}: {e}", args.name);
            std::process::exit(2);
        }
    };
    // Told to stop when stdin closes.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        let _ = tx.send(());
    });
    let stop = async move {
        let _ = rx.await;
    };
    let name = args.name.clone();
    consul_lock_reliability::support::run(async move {
        if args.observe {
            run_observer(client, args.name, args.key, stop).await;
            return;
        }
        let config = CandidateConfig {
            name: args.name,
            key: args.key,
            data_key: args.data_key,
            ttl: Duration::from_millis(args.ttl_ms),
            grace: Duration::from_millis(args.grace_ms),
            wind_down: Duration::from_millis(args.wind_down_ms),
        };
        if let Err(e) = run_candidate(client, config, stop).await {
            print(&ElectionRecord::Failed {
                name,
                error: e.to_string(),
            });
        }
    });
}
