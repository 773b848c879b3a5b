//! `consul-lock-devserver`: the test server as a program, for trying clients by hand.
//!
//! ```text
//! cargo run -p consul-lock-testkit --bin consul-lock-devserver -- --listen 127.0.0.1:8500
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use consul_lock_testkit::{parse_duration, ServerConfig, TestServer};

/// A Consul-compatible server (sessions, KV, txn) for trying clients.
///
/// Every request is logged to stderr (method, path, status, elapsed) unless --quiet is
/// given. Stop it with Ctrl-C.
#[derive(Debug, Parser)]
#[command(name = "consul-lock-devserver", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8500")]
    listen: SocketAddr,

    /// Smallest session TTL accepted, a Go duration like `1s` (Consul's `session_ttl_min`).
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = duration)]
    session_ttl_min: Duration,

    /// How long requests wait without a leader before `500 No cluster leader`.
    #[arg(long, value_name = "DUR", default_value = "7s", value_parser = duration)]
    leaderless_hold: Duration,

    /// Datacenter name.
    #[arg(long, value_name = "NAME", default_value = "dc1")]
    datacenter: String,

    /// Node name sessions are bound to (a real agent's, to compare answers with it).
    #[arg(long, value_name = "NAME", default_value = "consul-lock-testkit")]
    node_name: String,

    /// Most operations in one `/v1/txn` (64 as Consul 1.10; 1.14 and later allow 128).
    #[arg(long, value_name = "N", default_value_t = 64)]
    txn_max_ops: usize,

    /// Most concurrent connections from one client IP (Consul's
    /// `http_max_conns_per_client`); 0 turns the limit off.
    #[arg(long, value_name = "N", default_value_t = 200)]
    http_max_conns_per_client: usize,

    /// Serve HTTPS; the generated CA is written to `consul-lock-devserver-ca.pem` in the
    /// working directory and printed.
    #[arg(long)]
    tls: bool,

    /// Do not log requests.
    #[arg(long)]
    quiet: bool,
}

/// Parses a Go duration for clap (the error names the accepted form).
fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).ok_or_else(|| format!("{s:?} is not a duration like 1s, 500ms or 1m"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = ServerConfig::default()
        .listen(args.listen)
        .session_ttl_min(args.session_ttl_min)
        .leaderless_hold(args.leaderless_hold)
        .datacenter(&args.datacenter)
        .node_name(&args.node_name)
        .txn_max_ops(args.txn_max_ops)
        .http_max_conns_per_client(args.http_max_conns_per_client)
        .log_requests(!args.quiet)
        .tls(args.tls);
    let server = match TestServer::start_with(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("consul-lock-devserver: {e}");
            return ExitCode::from(1);
        }
    };
    eprintln!("consul-lock-devserver: serving {}", server.url());
    if let Some(pem) = server.ca_cert_pem() {
        let path = "consul-lock-devserver-ca.pem";
        match std::fs::write(path, &pem) {
            Ok(()) => eprintln!("consul-lock-devserver: CA certificate written to {path}"),
            Err(e) => eprintln!("consul-lock-devserver: cannot write {path}: {e}"),
        }
        println!("{pem}");
    }
    // Serve until the process is interrupted (Ctrl-C ends it).
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn flags_parse_and_errors_name_the_bad_argument() {
        let a = Args::try_parse_from([
            "d",
            "--listen",
            "127.0.0.1:9",
            "--session-ttl-min=1s",
            "--txn-max-ops",
            "128",
            "--http-max-conns-per-client",
            "0",
        ])
        .unwrap();
        assert_eq!(a.session_ttl_min, Duration::from_secs(1));
        assert_eq!((a.txn_max_ops, a.http_max_conns_per_client), (128, 0));
        let e = Args::try_parse_from(["d", "--session-ttl-min", "soon"]).unwrap_err();
        assert!(e.to_string().contains("--session-ttl-min"), "{e}");
        let e = Args::try_parse_from(["d", "--listen", "nowhere"]).unwrap_err();
        assert!(e.to_string().contains("--listen"), "{e}");
        let e = Args::try_parse_from(["d", "--bogus"]).unwrap_err();
        assert!(e.to_string().contains("--bogus"), "{e}");
    }
}
