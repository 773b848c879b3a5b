//! Real Consul agents for tests: one `consul agent -dev`, or a 3-server cluster plus a client
//! agent, on free loopback ports, each with its own temporary directory, killed (and the
//! directory removed) on drop.
//!
//! The binary is found as users find theirs: `CONSUL_BIN`, else `consul` on `PATH`
//! ([`ConsulBinary::find`]). Tests that need it should say plainly that they skipped when it
//! is missing:
//!
//! ```no_run
//! use consul_lock_testkit::real::{ConsulBinary, RealAgent};
//! let Some(bin) = ConsulBinary::find() else {
//!     eprintln!("skipped: no Consul binary (set CONSUL_BIN or put consul on PATH)");
//!     return;
//! };
//! let agent = RealAgent::start_dev(&bin).unwrap();
//! println!("Consul {} at {}", bin.path().display(), agent.url());
//! ```
//!
//! The agents run as child processes of the test. Nothing here waits on a timer where an
//! event exists: the only things polled are `GET /v1/status/leader` and, for a dev agent,
//! `GET /v1/catalog/nodes` (its own node registered, without which Consul refuses sessions),
//! because an external process offers no event for either.

mod cluster;
mod partition;
pub(crate) mod process;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::Error;
pub use cluster::{ClusterConfig, RealCluster};
pub use partition::Partition;
use process::{free_ports, has_node, leader_of, write_file, AgentProc, TempDir};

/// How often `/v1/status/leader` is asked while waiting for a leader.
const POLL: Duration = Duration::from_millis(50);
/// How long a dev agent may take to elect itself.
const DEV_START: Duration = Duration::from_secs(30);

/// A Consul executable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsulBinary {
    path: PathBuf,
}

impl ConsulBinary {
    /// `CONSUL_BIN` when it names a file, else `consul` on `PATH`; `None` when neither is
    /// found (set `CONSUL_BIN` to the binary's path then).
    ///
    /// ```
    /// use consul_lock_testkit::real::ConsulBinary;
    /// match ConsulBinary::find() {
    ///     Some(bin) => assert!(bin.path().is_file()),
    ///     None => eprintln!("skipped: no Consul binary (set CONSUL_BIN)"),
    /// }
    /// ```
    pub fn find() -> Option<ConsulBinary> {
        if let Some(v) = std::env::var_os("CONSUL_BIN").filter(|v| !v.is_empty()) {
            let path = PathBuf::from(v);
            return path.is_file().then_some(ConsulBinary { path });
        }
        let paths = std::env::var_os("PATH")?;
        std::env::split_paths(&paths)
            .map(|dir| dir.join("consul"))
            .find(|p| p.is_file())
            .map(|path| ConsulBinary { path })
    }

    /// A binary at `path` (not checked until an agent is started).
    pub fn at(path: impl Into<PathBuf>) -> ConsulBinary {
        ConsulBinary { path: path.into() }
    }

    /// The executable's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// One `consul agent -dev` (in-memory, its own leader) on free loopback ports, with
/// `session_ttl_min = "1s"`. Dropping it kills the agent and removes its directory.
///
/// ```
/// use consul_lock_testkit::real::{ConsulBinary, RealAgent};
/// // Returns early (and says so) on machines without Consul.
/// let Some(bin) = ConsulBinary::find() else {
///     eprintln!("skipped: no Consul binary (set CONSUL_BIN)");
///     return Ok(());
/// };
/// let agent = RealAgent::start_dev(&bin)?;
/// assert!(agent.url().starts_with("http://127.0.0.1:"));
/// # Ok::<(), consul_lock_testkit::Error>(())
/// ```
#[derive(Debug)]
pub struct RealAgent {
    proc: AgentProc,
    /// Holds the configuration and log; removed on drop, after the process.
    _dir: TempDir,
}

impl RealAgent {
    /// Starts a dev agent: HTTP, serf and server RPC on free loopback ports, DNS and gRPC
    /// off, logs in a file in its own temporary directory. Returns once it has a leader
    /// and its own node is registered (so that it accepts sessions at once).
    ///
    /// # Errors
    ///
    /// [`Error::RealConsul`] when the binary cannot be run, exits, or elects no leader within
    /// 30 s (the agent's log is printed and its tail is in the message);
    /// or when the temporary directory or a port cannot be had.
    ///
    /// ```
    /// use consul_lock_testkit::real::{ConsulBinary, RealAgent};
    /// let Some(bin) = ConsulBinary::find() else {
    ///     eprintln!("skipped: no Consul binary (set CONSUL_BIN)");
    ///     return Ok(());
    /// };
    /// let agent = RealAgent::start_dev(&bin)?;
    /// println!("CONSUL_HTTP_ADDR={}", agent.addr()); // what a client or another process needs
    /// # Ok::<(), consul_lock_testkit::Error>(())
    /// ```
    pub fn start_dev(bin: &ConsulBinary) -> Result<RealAgent, Error> {
        // A start that loses a port to another process is tried again on fresh ports.
        let mut tries = 0;
        loop {
            match RealAgent::try_start_dev(bin) {
                Err(e) if e.1 && tries < 3 => tries += 1,
                result => return result.map_err(|e| e.0),
            }
        }
    }

    fn try_start_dev(bin: &ConsulBinary) -> Result<RealAgent, (Error, bool)> {
        RealAgent::dev_once(bin).map_err(|(e, proc)| {
            let lost = proc.as_ref().is_some_and(|p| p.lost_a_port());
            if let (false, Some(p)) = (lost, &proc) {
                p.print_log();
            }
            (e, lost)
        })
    }

    /// One start; a failure comes with the agent process, if it was made.
    #[allow(clippy::result_large_err)] // private, and an error once per test at most
    fn dev_once(bin: &ConsulBinary) -> Result<RealAgent, (Error, Option<Box<AgentProc>>)> {
        let dir = TempDir::new("dev").map_err(|e| (e, None))?;
        let ports = free_ports(4).map_err(|e| (e, None))?;
        let http = ports[0];
        let hcl = format!(
            "session_ttl_min = \"1s\"\ndisable_update_check = true\nbind_addr = \"127.0.0.1\"\n\
             client_addr = \"127.0.0.1\"\n\
             ports {{ http = {http}, dns = -1, grpc = -1, serf_lan = {}, serf_wan = {}, server = {} }}\n",
            ports[1], ports[2], ports[3]
        );
        let config = dir.path().join("dev.hcl");
        write_file(&config, &hcl).map_err(|e| (e, None))?;
        let mut proc = AgentProc {
            name: "dev".into(),
            ip: Ipv4Addr::LOCALHOST,
            http: SocketAddr::from((Ipv4Addr::LOCALHOST, http)),
            server_port: ports[3],
            config,
            log: dir.path().join("dev.log"),
            extra: vec!["-dev".into()],
            child: None,
            frozen: false,
        };
        if let Err(e) = proc.spawn(bin) {
            return Err((e, Some(Box::new(proc))));
        }
        let deadline = Instant::now() + DEV_START;
        loop {
            // A leader, and the agent's own node registered: before that Consul refuses to
            // create a session (`Missing node registration`).
            if !leader_of(proc.http).is_empty() && has_node(proc.http) {
                break;
            }
            if let Err(e) = proc.check_running() {
                return Err((e, Some(Box::new(proc))));
            }
            if Instant::now() >= deadline {
                let e = proc.error(&format!(
                    "no leader with its node registered after {DEV_START:?}"
                ));
                return Err((e, Some(Box::new(proc))));
            }
            std::thread::sleep(POLL);
        }
        Ok(RealAgent { proc, _dir: dir })
    }

    /// The HTTP address (`127.0.0.1:port`), for `CONSUL_HTTP_ADDR`.
    pub fn addr(&self) -> SocketAddr {
        self.proc.http
    }

    /// The base URL (`http://127.0.0.1:port`), for a client.
    pub fn url(&self) -> String {
        format!("http://{}", self.proc.http)
    }

    /// The agent's log file (inside its temporary directory, removed on drop).
    pub fn log_path(&self) -> &Path {
        &self.proc.log
    }
}

impl Drop for RealAgent {
    fn drop(&mut self) {
        // The directory (a later field) is removed after the process is gone.
        self.proc.kill();
    }
}
