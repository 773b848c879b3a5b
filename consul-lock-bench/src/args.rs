//! Command-line arguments (clap derive).

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use consul_lock_bench::peers::PeerKind;

/// The sections of a run, in order.
pub const SECTIONS: [&str; 7] = [
    "cycle",
    "contention",
    "ceiling",
    "many",
    "memory",
    "semaphore",
    "election",
];

/// What clap parses; [`Args`] resolves the defaults that depend on `--smoke`.
#[derive(Parser, Debug)]
#[command(
    name = "consul-lock-bench",
    about = "Measures consul-lock against the bare minimum (plain HTTP calls per lock cycle: three \
             with a session per lock, two with a reused one) and against peer clients (Consul's Go \
             api.Lock, the Python consul-lock 0.1.6)",
    long_about = "Measures consul-lock against the bare minimum (plain HTTP calls per lock cycle: \
three with a session per lock, two with one session reused): uncontended cycle, contention \
(hand-off, utilisation, fairness), the server's write ceiling, many keys, Raft writes per cycle, \
client CPU and memory. Peer clients found on this machine (peers/install.sh installs them: Consul's Go client \
api.Lock, the Python library consul-lock 0.1.6) run in the same run against the same server, and \
get their own rows.\n\nTalks to the Consul agent at CONSUL_HTTP_ADDR, or, when it is unset, to the \
embedded test server, which it starts in a child process. Progress goes to stderr, results to \
stdout. Bad arguments exit 2.",
    after_help = "Peers are looked for at --peer-go / --peer-python, else CONSUL_LOCK_PEER_GO / \
CONSUL_LOCK_PEER_PYTHON, else peers/go/bin/go-peer and peers/python/peer.py in the workspace \
(the Python script runs with CONSUL_LOCK_PEER_PYTHON_BIN, default python3). A missing peer is \
skipped and the run says why."
)]
struct Cli {
    /// A few seconds in total: every section, tiny durations, up to 4 workers, each present peer
    /// briefly; exits non-zero only if something is broken, not on target misses
    #[arg(long)]
    smoke: bool,

    /// Seconds per measurement (default 5; 0.25 with --smoke); decimals allowed, e.g. 0.5
    #[arg(long, value_name = "N", value_parser = parse_seconds, allow_negative_numbers = true)]
    duration_secs: Option<Duration>,

    /// Where to write the JSON results, relative to the current directory
    #[arg(long, value_name = "PATH", default_value = "bench-results/latest.json", value_parser = parse_path)]
    json: PathBuf,

    /// How many locks to hold at once for the memory measurement (default 10000; 200 with --smoke)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    locks: Option<u64>,

    /// Run only these sections, comma-separated, of: cycle, contention, ceiling, many, memory,
    /// semaphore, election (default all; targets are checked on what ran; many keys is compared
    /// with the write ceiling when both run)
    #[arg(long, value_name = "LIST", value_parser = parse_sections)]
    sections: Option<Sections>,

    /// Contention: the worker counts on one key, comma-separated (default 2,4,8,32,128; 2,4
    /// with --smoke)
    #[arg(long, value_name = "LIST", value_parser = parse_counts)]
    workers: Option<Counts>,

    /// Contention: the hold times in ms, comma-separated (default 0,10)
    #[arg(long, value_name = "LIST", value_parser = parse_counts)]
    holds_ms: Option<Counts>,

    /// Do not run the peer clients (Go, Python) even when they are installed
    #[arg(long)]
    no_peers: bool,

    /// The Go peer binary (built by peers/install.sh into peers/go/bin/go-peer)
    #[arg(long, value_name = "PATH", conflicts_with = "no_peers")]
    peer_go: Option<PathBuf>,

    /// The Python peer script (peers/python/peer.py; needs consul-lock 0.1.6, see peers/install.sh)
    #[arg(long, value_name = "PATH", conflicts_with = "no_peers")]
    peer_python: Option<PathBuf>,

    /// Fail the run (exit 1) when this peer (go or python) is not found or one of its runs
    /// fails; repeatable (CI requires the Go peer when peers/install.sh built it)
    #[arg(long = "require-peer", value_name = "PEER", value_parser = ["go", "python"], conflicts_with = "no_peers")]
    require_peer: Vec<String>,

    /// Contention rows with at least this many workers run spread over 4 processes of this
    /// binary, a quarter of the workers each (default 128; 0: never)
    #[arg(long, value_name = "N")]
    spread_from: Option<usize>,

    /// Internal: run one contention row's workers on this key and print the holdings (a
    /// worker process of a spread row)
    #[arg(long, hide = true, value_name = "KEY")]
    contention_child: Option<String>,

    /// Election: the leader's lease (TTL) in seconds, 1..=86400 (default 10, Consul's shortest by
    /// default; 1 with --smoke, which needs an agent with session_ttl_min 1s or the embedded server)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    election_ttl_secs: Option<u64>,

    /// Election: how many leader kills, and as many resignations, to measure (default 20; 1 with
    /// --smoke)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000))]
    election_rounds: Option<u64>,

    /// Internal: run as one candidate of the election section, on this key
    #[arg(long, hide = true, value_name = "KEY")]
    election_candidate: Option<String>,

    /// Internal: run as the embedded server (the bench starts itself with this in a child process)
    #[arg(long, hide = true)]
    serve: bool,
}

/// A parsed list of numbers (a newtype so that clap takes the whole list as one value).
#[derive(Clone, Debug)]
struct Counts(Vec<usize>);

fn parse_counts(v: &str) -> Result<Counts, String> {
    let mut out = Vec::new();
    for n in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let n: usize = n
            .parse()
            .map_err(|_| format!("{n:?} is not a whole number"))?;
        if n > 100_000 {
            return Err(format!("{n} is too large; give at most 100000"));
        }
        out.push(n);
    }
    if out.is_empty() {
        return Err("the list is empty".into());
    }
    Ok(Counts(out))
}

/// A parsed list of sections (a newtype so that clap takes the whole list as one value).
#[derive(Clone, Debug)]
struct Sections(Vec<&'static str>);

#[derive(Clone, Debug, PartialEq)]
pub struct Args {
    pub smoke: bool,
    /// Per measurement.
    pub duration: Duration,
    pub json: PathBuf,
    pub locks: usize,
    /// Which of [`SECTIONS`] to run.
    pub sections: Vec<&'static str>,
    /// Run the peers that are present.
    pub peers: bool,
    /// Rows with at least this many workers run over 4 processes (0: never).
    pub spread_from: usize,
    /// Internal: run as a worker process of a spread row, on this key.
    pub contention_child: Option<String>,
    /// Contention worker counts, when given.
    pub workers: Option<Vec<usize>>,
    /// Contention hold times, when given.
    pub holds: Option<Vec<Duration>>,
    pub peer_go: Option<PathBuf>,
    pub peer_python: Option<PathBuf>,
    /// Peers whose absence or failure makes the run fail.
    pub require_peers: Vec<PeerKind>,
    /// Internal: run as the embedded server (see `server.rs`).
    pub serve: bool,
    /// Election: the lease.
    pub election_ttl: Duration,
    /// Election: kills (and resignations) to measure.
    pub election_rounds: usize,
    /// Internal: run as an election candidate, on this key.
    pub election_candidate: Option<String>,
}

fn parse_seconds(v: &str) -> Result<Duration, String> {
    let secs: f64 = v
        .parse()
        .map_err(|_| format!("{v:?} is not a number of seconds"))?;
    if !(secs.is_finite() && secs > 0.0 && secs <= 3600.0) {
        return Err(format!(
            "{v} is out of range; give more than 0 and at most 3600"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_path(v: &str) -> Result<PathBuf, String> {
    if v.is_empty() {
        return Err("the path is empty".into());
    }
    Ok(PathBuf::from(v))
}

fn parse_sections(v: &str) -> Result<Sections, String> {
    let mut sections = Vec::new();
    for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let known = SECTIONS
            .iter()
            .find(|s| **s == name)
            .ok_or_else(|| format!("unknown section {name:?}; use {}", SECTIONS.join(", ")))?;
        sections.push(*known);
    }
    if sections.is_empty() {
        return Err("the list is empty".into());
    }
    Ok(Sections(sections))
}

impl From<Cli> for Args {
    fn from(c: Cli) -> Args {
        Args {
            smoke: c.smoke,
            duration: c.duration_secs.unwrap_or(if c.smoke {
                Duration::from_millis(250)
            } else {
                Duration::from_secs(5)
            }),
            json: c.json,
            locks: c
                .locks
                .map_or(if c.smoke { 200 } else { 10_000 }, |n| n as usize),
            sections: c.sections.map_or_else(|| SECTIONS.to_vec(), |s| s.0),
            peers: !c.no_peers,
            spread_from: c.spread_from.unwrap_or(128),
            contention_child: c.contention_child,
            workers: c
                .workers
                .map(|w| w.0.into_iter().filter(|n| *n > 0).collect()),
            holds: c.holds_ms.map(|h| {
                h.0.into_iter()
                    .map(|ms| Duration::from_millis(ms as u64))
                    .collect()
            }),
            peer_go: c.peer_go,
            peer_python: c.peer_python,
            require_peers: c
                .require_peer
                .iter()
                .map(|p| {
                    if p == "go" {
                        PeerKind::Go
                    } else {
                        PeerKind::Python
                    }
                })
                .collect(),
            serve: c.serve,
            election_ttl: Duration::from_secs(c.election_ttl_secs.unwrap_or(if c.smoke {
                1
            } else {
                10
            })),
            election_rounds: c
                .election_rounds
                .map_or(if c.smoke { 1 } else { 20 }, |n| n as usize),
            election_candidate: c.election_candidate,
        }
    }
}

/// Parses the process's arguments; on a bad argument or `--help`, prints and exits (2 for an
/// error, 0 for help) as clap does.
pub fn parse_env() -> Args {
    Cli::parse().into()
}

/// Parses the arguments after the program name.
#[cfg(test)]
fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Args, String> {
    Cli::try_parse_from(std::iter::once("consul-lock-bench".to_owned()).chain(args))
        .map(Args::from)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Args, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn clap_definition_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let a = p(&[]).unwrap();
        assert!(!a.smoke);
        assert_eq!(a.duration, Duration::from_secs(5));
        assert_eq!(a.json, PathBuf::from("bench-results/latest.json"));
        assert_eq!(a.locks, 10_000);
        assert!(a.peers);
        assert_eq!(a.peer_go, None);
        let s = p(&["--smoke"]).unwrap();
        assert_eq!(s.duration, Duration::from_millis(250));
        assert_eq!(s.locks, 200);
    }

    #[test]
    fn values() {
        let a = p(&[
            "--duration-secs",
            "0.5",
            "--json=out/x.json",
            "--locks",
            "50",
            "--peer-go",
            "bin/go-peer",
        ])
        .unwrap();
        assert_eq!(a.duration, Duration::from_millis(500));
        assert_eq!(a.json, PathBuf::from("out/x.json"));
        assert_eq!(a.locks, 50);
        assert_eq!(a.peer_go, Some(PathBuf::from("bin/go-peer")));
        assert_eq!(
            p(&["--sections", "many, cycle"]).unwrap().sections,
            ["many", "cycle"]
        );
        assert_eq!(p(&[]).unwrap().sections, SECTIONS);
        assert!(!p(&["--no-peers"]).unwrap().peers);
        assert!(p(&[]).unwrap().require_peers.is_empty());
        assert_eq!(
            p(&["--require-peer", "go", "--require-peer=python"])
                .unwrap()
                .require_peers,
            [PeerKind::Go, PeerKind::Python]
        );
    }

    #[test]
    fn bad_arguments_are_errors_that_name_the_argument() {
        let names = |args: &[&str], what: &str| {
            let e = p(args).unwrap_err();
            assert!(e.contains(what), "{args:?}: {e}");
        };
        names(&["--duration-secs"], "--duration-secs");
        names(&["--duration-secs", "abc"], "--duration-secs");
        names(&["--duration-secs", "0"], "out of range");
        names(&["--duration-secs", "-1"], "--duration-secs");
        names(&["--duration-secs", "NaN"], "--duration-secs");
        names(&["--locks", "0"], "--locks");
        names(&["--json", ""], "--json");
        names(&["--sections", "cpu"], "unknown section");
        names(&["--sections", ","], "--sections");
        names(&["--fast"], "--fast");
        names(&["--no-peers", "--peer-go", "x"], "--peer-go");
        names(&["--require-peer", "rust"], "--require-peer");
        names(&["--no-peers", "--require-peer", "go"], "--require-peer");
    }
}
