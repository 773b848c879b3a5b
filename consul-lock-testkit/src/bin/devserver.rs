//! `consul-lock-devserver`: the test server as a program, for trying clients by hand.
//!
//! ```text
//! cargo run -p consul-lock-testkit --bin consul-lock-devserver -- --listen 127.0.0.1:8500
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;

use consul_lock_testkit::{parse_duration, ServerConfig, TestServer};

const USAGE: &str = "\
consul-lock-devserver: a Consul-compatible server (sessions, KV, txn) for trying clients

USAGE:
    consul-lock-devserver [OPTIONS]

OPTIONS:
    --listen ADDR            address to listen on (default 127.0.0.1:8500)
    --session-ttl-min DUR    smallest session TTL accepted, like 1s (default 10s)
    --leaderless-hold DUR    how long requests wait without a leader (default 7s)
    --datacenter NAME        datacenter name (default dc1)
    --node-name NAME         node name (default consul-lock-testkit)
    --tls                    serve HTTPS; the generated CA is written next to the working
                             directory as consul-lock-devserver-ca.pem and printed
    --quiet                  do not log requests
    -h, --help               print this help

Every request is logged to stderr (method, path, status, elapsed). Stop with Ctrl-C.
";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("consul-lock-devserver: {msg}\n\nRun with --help for usage.");
            ExitCode::from(2)
        }
    }
}

fn run(args: Vec<String>) -> Result<(), String> {
    let mut config = ServerConfig::default()
        .listen(SocketAddr::from(([127, 0, 0, 1], 8500)))
        .log_requests(true);
    let mut tls = false;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => {
                print!("{USAGE}");
                return Ok(());
            }
            "--listen" => {
                let v = value("--listen")?;
                let addr: SocketAddr = v
                    .parse()
                    .map_err(|_| format!("--listen {v:?} is not an address like 127.0.0.1:8500"))?;
                config = config.listen(addr);
            }
            "--session-ttl-min" => {
                let v = value("--session-ttl-min")?;
                let d = parse_duration(&v)
                    .ok_or_else(|| format!("--session-ttl-min {v:?} is not a duration like 1s"))?;
                config = config.session_ttl_min(d);
            }
            "--leaderless-hold" => {
                let v = value("--leaderless-hold")?;
                let d = parse_duration(&v)
                    .ok_or_else(|| format!("--leaderless-hold {v:?} is not a duration like 7s"))?;
                config = config.leaderless_hold(d);
            }
            "--datacenter" => config = config.datacenter(&value("--datacenter")?),
            "--node-name" => config = config.node_name(&value("--node-name")?),
            "--tls" => tls = true,
            "--quiet" => config = config.log_requests(false),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    let server = TestServer::start_with(config.tls(tls)).map_err(|e| e.to_string())?;
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
