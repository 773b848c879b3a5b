//! One lease holder process of the history checker (see
//! `consul_lock_reliability::holder`): takes, holds, writes through the fence and releases
//! one of a few keys over and over, printing one JSON line per acquisition, until its stdin
//! is closed; then it finishes the acquisition it is in, waits for its releases and exits.
//!
//! `history-holder --url URL --name h1 --agent c1 --prefix P --data-prefix D --keys 2
//! --lock-timeout-ms 5000 --acquire-timeout-ms 20000 --hold-ms 300 [--renew]`

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use consul_lock::Client;
use consul_lock_reliability::holder::{run, HolderConfig};

#[derive(Parser)]
#[command(about = "A lease holder of the consul-lock history checker")]
struct Args {
    /// The agent's base URL.
    #[arg(long)]
    url: String,
    /// The holder's name, in its records.
    #[arg(long)]
    name: String,
    /// The agent's name, in its records.
    #[arg(long)]
    agent: String,
    /// The prefix of the lock keys.
    #[arg(long)]
    prefix: String,
    /// The prefix of the fenced writes.
    #[arg(long)]
    data_prefix: String,
    /// How many keys.
    #[arg(long, default_value_t = 2)]
    keys: usize,
    /// The lock timeout (session TTL), in milliseconds.
    #[arg(long, default_value_t = 5000)]
    lock_timeout_ms: u64,
    /// Each acquire's timeout, in milliseconds.
    #[arg(long, default_value_t = 20_000)]
    acquire_timeout_ms: u64,
    /// How long each acquisition is held, in milliseconds.
    #[arg(long, default_value_t = 300)]
    hold_ms: u64,
    /// Renew the sessions while held.
    #[arg(long)]
    renew: bool,
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
            eprintln!("history-holder {}: {e}", args.name);
            std::process::exit(2);
        }
    };
    let config = HolderConfig {
        name: args.name,
        agent: args.agent,
        prefix: args.prefix,
        data_prefix: args.data_prefix,
        keys: args.keys.max(1),
        lock_timeout: Duration::from_millis(args.lock_timeout_ms),
        acquire_timeout: Duration::from_millis(args.acquire_timeout_ms),
        hold: Duration::from_millis(args.hold_ms),
        renew: args.renew,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let on_eof = stop.clone();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        on_eof.store(true, Ordering::SeqCst);
    });
    consul_lock_reliability::support::run(run(client, config, stop));
}
