//! Takes one lock and holds it until killed: the process the crash test kills with SIGKILL.
//!
//! `crash-holder <url> <ttl_min_ms> <prefix> <key> <lock_timeout_ms> <renew: 0|1> <from_env: 0|1> [shared_ttl_ms]`
//!
//! With `shared_ttl_ms`, the client's shared session has that TTL (a lock timeout at least as
//! long takes the key with it).
//!
//! Prints `START <ns>` before the acquire and `ACQUIRED <fencing token> <ns>` once it holds
//! the key (`CLOCK_MONOTONIC` nanoseconds), then waits forever. With renewal on it prints
//! `LOST <reason>` if it ever loses the lock (it should not, until it is killed).

use std::io::Write;
use std::time::Duration;

use consul_lock::{Client, ClientBuilder, Lock};
use consul_lock_reliability::clock::monotonic_ns;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 7 && args.len() != 8 {
        eprintln!(
            "usage: crash-holder <url> <ttl_min_ms> <prefix> <key> <lock_timeout_ms> <renew 0|1> <from_env 0|1> [shared_ttl_ms]"
        );
        std::process::exit(2);
    }
    let ms = |i: usize| Duration::from_millis(args[i].parse().expect("milliseconds"));
    let builder = if args[6] == "1" {
        ClientBuilder::from_env().expect("CONSUL_* environment variables")
    } else {
        Client::builder()
    };
    let mut builder = builder
        .address(&args[0])
        .session_ttl_min(ms(1))
        .agent_is_server(false);
    if args.len() == 8 {
        builder = builder.shared_session_ttl(ms(7));
    }
    let client = builder.build().expect("build the client");
    let lock = Lock::new(args[3].clone())
        .client(&client)
        .key_prefix(args[2].clone())
        .lock_timeout(ms(4))
        .renew(args[5] == "1");
    let mut out = std::io::stdout();
    writeln!(out, "START {}", monotonic_ns()).expect("stdout");
    out.flush().expect("stdout");
    let guard = lock.acquire_blocking().expect("acquire the lock");
    writeln!(
        out,
        "ACQUIRED {} {} {}",
        guard.fencing_token(),
        monotonic_ns(),
        guard.session_id()
    )
    .expect("stdout");
    out.flush().expect("stdout");
    let lost = consul_lock_reliability::support::run(guard.lost());
    writeln!(out, "LOST {lost}").expect("stdout");
    out.flush().expect("stdout");
    loop {
        std::thread::park();
    }
}
