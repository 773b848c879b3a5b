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

pub(crate) mod process;

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::Error;
use process::{free_ports, has_node, io_error, leader_of, write_file, AgentProc, TempDir};

/// How often `/v1/status/leader` is asked while waiting for a leader.
const POLL: Duration = Duration::from_millis(50);
/// How long a dev agent may take to elect itself.
const DEV_START: Duration = Duration::from_secs(30);
/// How long a cluster may take to bootstrap (Consul's own figure is about 10 s).
const CLUSTER_START: Duration = Duration::from_secs(60);

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
        let dir = TempDir::new("dev")?;
        let ports = free_ports(4)?;
        let http = ports[0];
        let hcl = format!(
            "session_ttl_min = \"1s\"\ndisable_update_check = true\nbind_addr = \"127.0.0.1\"\n\
             client_addr = \"127.0.0.1\"\n\
             ports {{ http = {http}, dns = -1, grpc = -1, serf_lan = {}, serf_wan = {}, server = {} }}\n",
            ports[1], ports[2], ports[3]
        );
        let config = dir.path().join("dev.hcl");
        write_file(&config, &hcl)?;
        let mut proc = AgentProc {
            name: "dev".into(),
            http: SocketAddr::from((Ipv4Addr::LOCALHOST, http)),
            server_port: ports[3],
            config,
            log: dir.path().join("dev.log"),
            extra: vec!["-dev".into()],
            child: None,
        };
        proc.spawn(bin)?;
        let deadline = Instant::now() + DEV_START;
        loop {
            // A leader, and the agent's own node registered: before that Consul refuses to
            // create a session (`Missing node registration`).
            if !leader_of(proc.http).is_empty() && has_node(proc.http) {
                break;
            }
            proc.check_running()?;
            if Instant::now() >= deadline {
                return Err(proc.failed(&format!(
                    "no leader with its node registered after {DEV_START:?}"
                )));
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

/// Three Consul servers and one client agent on loopback (what production looks like: the
/// application talks to a local client agent, which forwards writes to the Raft leader),
/// each with its own HCL file and data directory, for failover tests. Dropping it kills all
/// four and removes their directories.
///
/// ```
/// use std::time::Duration;
/// use consul_lock_testkit::real::{ConsulBinary, RealCluster};
/// let Some(bin) = ConsulBinary::find() else {
///     eprintln!("skipped: no Consul binary (set CONSUL_BIN)");
///     return Ok(());
/// };
/// let mut cluster = RealCluster::start(&bin)?;
/// let url = cluster.client_url(); // give this to the client under test
/// let old = cluster.kill_leader()?; // SIGKILL
/// let new = cluster.wait_for_leader(Duration::from_secs(30))?;
/// assert_ne!(old, new);
/// cluster.restart_server(old)?;
/// # let _ = url;
/// # Ok::<(), consul_lock_testkit::Error>(())
/// ```
#[derive(Debug)]
pub struct RealCluster {
    bin: ConsulBinary,
    servers: Vec<AgentProc>,
    client: AgentProc,
    dir: TempDir,
}

impl RealCluster {
    /// Starts 3 servers (`bootstrap_expect = 3`, `raft_multiplier = 1`, `session_ttl_min =
    /// "1s"`) and a client agent on free loopback ports; returns once the client agent sees
    /// a leader.
    ///
    /// # Errors
    ///
    /// [`Error::RealConsul`] when an agent cannot be run, exits, or no leader is seen through
    /// the client agent within 60 s (the agents' logs are printed), or a directory, file or
    /// port cannot be had.
    ///
    /// ```no_run
    /// use consul_lock_testkit::real::{ConsulBinary, RealCluster};
    /// let Some(bin) = ConsulBinary::find() else {
    ///     eprintln!("skipped: no Consul binary (set CONSUL_BIN)");
    ///     return Ok(());
    /// };
    /// let cluster = RealCluster::start(&bin)?;
    /// assert!(cluster.leader().is_some());
    /// # Ok::<(), consul_lock_testkit::Error>(())
    /// ```
    pub fn start(bin: &ConsulBinary) -> Result<RealCluster, Error> {
        let dir = TempDir::new("cluster")?;
        // Per server: http, server RPC, serf LAN, serf WAN. Client: http, serf LAN.
        let ports = free_ports(3 * 4 + 2)?;
        let lan: Vec<u16> = (0..3).map(|i| ports[i * 4 + 2]).collect();
        let join = lan
            .iter()
            .map(|p| format!("\"127.0.0.1:{p}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let common = "bind_addr = \"127.0.0.1\"\nclient_addr = \"127.0.0.1\"\n\
                      disable_update_check = true\nsession_ttl_min = \"1s\"\n\
                      performance { raft_multiplier = 1 }\n";
        let mut servers = Vec::new();
        for i in 0..3 {
            let name = format!("s{}", i + 1);
            let [http, server, serf_lan, serf_wan] = [0, 1, 2, 3].map(|k| ports[i * 4 + k]);
            let data = dir.path().join(&name);
            fs::create_dir_all(&data).map_err(io_error)?;
            let hcl = format!(
                "server = true\nbootstrap_expect = 3\nnode_name = \"{name}\"\ndata_dir = \"{}\"\n\
                 {common}retry_join = [{join}]\nretry_interval = \"1s\"\n\
                 ports {{ http = {http}, dns = -1, grpc = -1, server = {server}, serf_lan = {serf_lan}, serf_wan = {serf_wan} }}\n",
                data.display()
            );
            servers.push(AgentProc::new(&dir, &name, http, server, &hcl)?);
        }
        let (http, serf_lan) = (ports[12], ports[13]);
        let data = dir.path().join("c1");
        fs::create_dir_all(&data).map_err(io_error)?;
        let hcl = format!(
            "server = false\nnode_name = \"c1\"\ndata_dir = \"{}\"\n{common}\
             retry_join = [{join}]\nretry_interval = \"1s\"\n\
             ports {{ http = {http}, dns = -1, grpc = -1, serf_lan = {serf_lan}, serf_wan = -1 }}\n",
            data.display()
        );
        let client = AgentProc::new(&dir, "c1", http, 0, &hcl)?;
        let mut cluster = RealCluster {
            bin: bin.clone(),
            servers,
            client,
            dir,
        };
        for s in &mut cluster.servers {
            s.spawn(bin)?;
        }
        cluster.client.spawn(bin)?;
        if let Err(e) = cluster.wait_for_leader(CLUSTER_START) {
            for s in &cluster.servers {
                s.print_log();
            }
            cluster.client.print_log();
            return Err(e);
        }
        Ok(cluster)
    }

    /// The client agent's base URL (`http://127.0.0.1:port`): what tests talk to.
    pub fn client_url(&self) -> String {
        format!("http://{}", self.client.http)
    }

    /// The client agent's HTTP address.
    pub fn client_addr(&self) -> SocketAddr {
        self.client.http
    }

    /// Server `i`'s (0, 1 or 2) HTTP address.
    ///
    /// # Panics
    ///
    /// When `i` is not 0, 1 or 2 (a bug in the calling test).
    pub fn server_addr(&self, i: usize) -> SocketAddr {
        self.servers[i].http
    }

    /// The index (0, 1 or 2) of the server that a running server names as leader
    /// (`/v1/status/leader`), if that server is running; `None` during an election.
    ///
    /// ```no_run
    /// use consul_lock_testkit::real::{ConsulBinary, RealCluster};
    /// let Some(bin) = ConsulBinary::find() else {
    ///     eprintln!("skipped: no Consul binary (set CONSUL_BIN)");
    ///     return Ok(());
    /// };
    /// let cluster = RealCluster::start(&bin)?;
    /// let i = cluster.leader().expect("a leader right after start");
    /// println!("leader: server {i} at {}", cluster.server_addr(i));
    /// # Ok::<(), consul_lock_testkit::Error>(())
    /// ```
    pub fn leader(&self) -> Option<usize> {
        self.servers
            .iter()
            .filter(|s| s.child.is_some())
            .find_map(|s| {
                let named = leader_of(s.http);
                self.servers.iter().position(|t| {
                    t.child.is_some() && named == format!("127.0.0.1:{}", t.server_port)
                })
            })
    }

    /// Polls every 50 ms until a running server is leader and the client agent sees a
    /// leader too; returns the leader's index.
    ///
    /// # Errors
    ///
    /// [`Error::RealConsul`] when there is none after `timeout`, or an agent exited.
    pub fn wait_for_leader(&mut self, timeout: Duration) -> Result<usize, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.leader() {
                if !leader_of(self.client.http).is_empty() {
                    return Ok(i);
                }
            }
            for s in self.servers.iter_mut().chain([&mut self.client]) {
                if s.child.is_some() {
                    s.check_running()?;
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::RealConsul(format!(
                    "no Consul leader seen through the client agent after {timeout:?}; \
                     the agents' logs are in {} (printed above when the cluster failed to start)",
                    self.dir.path().display()
                )));
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGKILLs the current leader and returns its index (restart it with
    /// [`restart_server`](Self::restart_server)).
    ///
    /// # Errors
    ///
    /// [`Error::RealConsul`] when no running server is leader (wait with
    /// [`wait_for_leader`](Self::wait_for_leader) first).
    pub fn kill_leader(&mut self) -> Result<usize, Error> {
        let i = self.leader().ok_or_else(|| {
            Error::RealConsul(
                "kill_leader: the cluster has no leader now; call wait_for_leader first".into(),
            )
        })?;
        self.servers[i].kill();
        Ok(i)
    }

    /// SIGKILLs server `i` if it runs and starts it again with the same configuration and
    /// data directory; returns once its HTTP port answers (it rejoins the cluster by itself).
    ///
    /// # Errors
    ///
    /// [`Error::RealConsul`] when `i` is not 0, 1 or 2, or the agent does not come up within
    /// 30 s (its log is printed).
    pub fn restart_server(&mut self, i: usize) -> Result<(), Error> {
        let bin = self.bin.clone();
        let s = self.servers.get_mut(i).ok_or_else(|| {
            Error::RealConsul(format!("restart_server({i}): servers are numbered 0, 1, 2"))
        })?;
        s.kill();
        s.spawn(&bin)?;
        s.wait_http(DEV_START)
    }

    /// SIGKILLs the client agent (tests see their connections refused until it is back).
    pub fn kill_client_agent(&mut self) {
        self.client.kill();
    }

    /// Starts the client agent again (killing it first if it runs) and waits until it sees
    /// a leader.
    ///
    /// # Errors
    ///
    /// [`Error::RealConsul`] when it does not come up or sees no leader within 30 s.
    pub fn restart_client_agent(&mut self) -> Result<(), Error> {
        let bin = self.bin.clone();
        self.client.kill();
        self.client.spawn(&bin)?;
        self.client.wait_http(DEV_START)?;
        self.wait_for_leader(DEV_START).map(|_| ())
    }
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        self.client.kill();
        for s in &mut self.servers {
            s.kill();
        }
    }
}
