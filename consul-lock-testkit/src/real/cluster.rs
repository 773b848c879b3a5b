//! A real Consul cluster on loopback: 3 servers and one or more client agents, each on a
//! loopback address of its own (`127.X.Y.1`…`3` for the servers, `127.X.Y.11`… for the
//! clients), so that a test can cut one agent off from others by address
//! ([`Partition`](super::Partition)) without touching anything else on the machine.

use std::fs;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::process::{free_ports_on, io_error, leader_of, node_count, AgentProc, TempDir};
use super::{ConsulBinary, Partition, DEV_START, POLL};
use crate::error::Error;

/// How long a cluster may take to bootstrap (Consul's own figure is about 10 s; with
/// `raft_multiplier` 5 elections take five times longer).
const CLUSTER_START: Duration = Duration::from_secs(90);
/// How often a start that lost a port to another process is tried again on fresh ports.
const START_TRIES: usize = 4;

/// How a [`RealCluster`] is set up.
///
/// ```
/// use consul_lock_testkit::real::ClusterConfig;
/// let config = ClusterConfig::default().clients(2).raft_multiplier(5);
/// assert_eq!((config.client_count(), config.multiplier()), (2, 5));
/// ```
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    clients: usize,
    raft_multiplier: u8,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            clients: 1,
            raft_multiplier: 1,
        }
    }
}

impl ClusterConfig {
    /// How many client agents (default 1, at least 1).
    #[must_use]
    pub fn clients(mut self, n: usize) -> Self {
        self.clients = n.max(1);
        self
    }

    /// Consul's `performance { raft_multiplier }` (default 1 here: elections of 1–3 s;
    /// Consul's own default is 5).
    #[must_use]
    pub fn raft_multiplier(mut self, m: u8) -> Self {
        self.raft_multiplier = m.clamp(1, 10);
        self
    }

    /// The number of client agents.
    #[must_use]
    pub fn client_count(&self) -> usize {
        self.clients
    }

    /// The raft multiplier.
    #[must_use]
    pub fn multiplier(&self) -> u8 {
        self.raft_multiplier
    }
}

/// Three Consul servers and one or more client agents on loopback (what production looks
/// like: applications talk to a local client agent, which forwards writes to the Raft
/// leader), each with its own loopback address, HCL file and data directory, for failover
/// tests. Dropping it kills every agent and removes their directories.
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
    clients: Vec<AgentProc>,
    config: ClusterConfig,
    dir: TempDir,
}

impl RealCluster {
    /// Starts 3 servers (`bootstrap_expect = 3`, `raft_multiplier = 1`, `session_ttl_min =
    /// "1s"`) and one client agent; returns once the client agent sees a leader.
    ///
    /// # Errors
    ///
    /// As [`start_with`](Self::start_with).
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
        RealCluster::start_with(bin, ClusterConfig::default())
    }

    /// Starts 3 servers and `config`'s client agents, each on its own loopback address and
    /// free ports; returns once every client agent sees a leader. A start that loses a port to
    /// another process (the agent's log says `address already in use`) is tried again on other
    /// addresses and fresh ports, up to 4 times.
    ///
    /// # Errors
    ///
    /// [`Error::RealConsul`] when an agent cannot be run, exits, or no leader is seen through
    /// the client agents within 90 s (the agents' logs are printed), or a directory, file or
    /// port cannot be had.
    ///
    /// ```no_run
    /// use consul_lock_testkit::real::{ClusterConfig, ConsulBinary, RealCluster};
    /// let Some(bin) = ConsulBinary::find() else {
    ///     eprintln!("skipped: no Consul binary (set CONSUL_BIN)");
    ///     return Ok(());
    /// };
    /// let cluster = RealCluster::start_with(&bin, ClusterConfig::default().clients(2))?;
    /// assert_eq!(cluster.client_count(), 2);
    /// # Ok::<(), consul_lock_testkit::Error>(())
    /// ```
    pub fn start_with(bin: &ConsulBinary, config: ClusterConfig) -> Result<RealCluster, Error> {
        let mut last = None;
        for _ in 0..START_TRIES {
            match RealCluster::try_start(bin, &config) {
                Ok(cluster) => return Ok(cluster),
                Err((e, lost_a_port)) if lost_a_port => {
                    eprintln!("consul-lock-testkit: a cluster start lost a port to another process; trying again on fresh ports ({e})");
                    last = Some(e);
                }
                Err((e, _)) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::RealConsul("no cluster start was tried".into())))
    }

    /// One start on fresh addresses and ports; `Err((e, true))` when an agent lost a port.
    fn try_start(bin: &ConsulBinary, config: &ClusterConfig) -> Result<RealCluster, (Error, bool)> {
        let dir = TempDir::new("cluster").map_err(|e| (e, false))?;
        let net = loopback_net();
        let ip = |host: u8| Ipv4Addr::new(127, net.0, net.1, host);
        // Per server: http, server RPC, serf LAN, serf WAN. Per client: http, serf LAN.
        let server_ports: Vec<Vec<u16>> = (0..3)
            .map(|i| free_ports_on(ip(i + 1), 4))
            .collect::<Result<_, _>>()
            .map_err(|e| (e, true))?;
        let join = (0..3)
            .map(|i| format!("\"{}:{}\"", ip(i + 1), server_ports[usize::from(i)][2]))
            .collect::<Vec<_>>()
            .join(", ");
        let common = format!(
            "disable_update_check = true\nsession_ttl_min = \"1s\"\n\
             performance {{ raft_multiplier = {} }}\nretry_join = [{join}]\nretry_interval = \"1s\"\n",
            config.raft_multiplier
        );
        let mut servers = Vec::new();
        for i in 0..3u8 {
            let name = format!("s{}", i + 1);
            let [http, server, serf_lan, serf_wan] =
                [0, 1, 2, 3].map(|k| server_ports[usize::from(i)][k]);
            let data = dir.path().join(&name);
            fs::create_dir_all(&data).map_err(|e| (io_error(e), false))?;
            let hcl = format!(
                "server = true\nbootstrap_expect = 3\nnode_name = \"{name}\"\ndata_dir = \"{}\"\n\
                 bind_addr = \"{a}\"\nclient_addr = \"{a}\"\n{common}\
                 ports {{ http = {http}, dns = -1, grpc = -1, server = {server}, serf_lan = {serf_lan}, serf_wan = {serf_wan} }}\n",
                data.display(),
                a = ip(i + 1)
            );
            servers.push(
                AgentProc::new(&dir, &name, ip(i + 1), http, server, &hcl)
                    .map_err(|e| (e, false))?,
            );
        }
        let mut clients = Vec::new();
        for j in 0..config.clients {
            let name = format!("c{}", j + 1);
            let host = u8::try_from(11 + j).unwrap_or(u8::MAX);
            let ports = free_ports_on(ip(host), 2).map_err(|e| (e, true))?;
            let data = dir.path().join(&name);
            fs::create_dir_all(&data).map_err(|e| (io_error(e), false))?;
            let hcl = format!(
                "server = false\nnode_name = \"{name}\"\ndata_dir = \"{}\"\n\
                 bind_addr = \"{a}\"\nclient_addr = \"{a}\"\n{common}\
                 ports {{ http = {}, dns = -1, grpc = -1, serf_lan = {}, serf_wan = -1 }}\n",
                data.display(),
                ports[0],
                ports[1],
                a = ip(host)
            );
            clients.push(
                AgentProc::new(&dir, &name, ip(host), ports[0], 0, &hcl).map_err(|e| (e, false))?,
            );
        }
        let mut cluster = RealCluster {
            bin: bin.clone(),
            servers,
            clients,
            config: config.clone(),
            dir,
        };
        let spawned: Result<(), Error> = (|| {
            for s in cluster.servers.iter_mut().chain(cluster.clients.iter_mut()) {
                s.spawn(bin)?;
            }
            Ok(())
        })();
        let ready = spawned
            .and_then(|()| cluster.wait_for_leader(CLUSTER_START).map(drop))
            .and_then(|()| cluster.wait_for_nodes(CLUSTER_START));
        if let Err(e) = ready {
            let lost_a_port = cluster.agents().any(AgentProc::lost_a_port);
            if !lost_a_port {
                for s in cluster.agents() {
                    s.print_log();
                }
            }
            return Err((e, lost_a_port));
        }
        Ok(cluster)
    }

    /// Waits until the catalog lists every agent's node (before that, Consul refuses to
    /// create a session through an agent whose node it does not know).
    fn wait_for_nodes(&mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        let want = self.servers.len() + self.clients.len();
        while node_count(self.servers[0].http) < want {
            if Instant::now() >= deadline {
                return Err(Error::RealConsul(format!(
                    "the catalog did not list all {want} agents' nodes after {timeout:?}; the \
                     agents' logs are in {}",
                    self.dir.path().display()
                )));
            }
            std::thread::sleep(POLL);
        }
        Ok(())
    }

    fn agents(&self) -> impl Iterator<Item = &AgentProc> {
        self.servers.iter().chain(self.clients.iter())
    }

    /// How the cluster was set up.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The first client agent's base URL (`http://127.X.Y.11:port`): what tests talk to.
    pub fn client_url(&self) -> String {
        self.client_url_of(0)
    }

    /// The first client agent's HTTP address.
    pub fn client_addr(&self) -> std::net::SocketAddr {
        self.clients[0].http
    }

    /// How many client agents the cluster has.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    /// Client agent `j`'s base URL.
    ///
    /// # Panics
    ///
    /// When there is no client agent `j` (a bug in the calling test).
    pub fn client_url_of(&self, j: usize) -> String {
        format!("http://{}", self.clients[j].http)
    }

    /// Client agent `j`'s loopback address (for a [`Partition`]).
    ///
    /// # Panics
    ///
    /// When there is no client agent `j`.
    pub fn client_ip(&self, j: usize) -> Ipv4Addr {
        self.clients[j].ip
    }

    /// Server `i`'s (0, 1 or 2) HTTP address.
    ///
    /// # Panics
    ///
    /// When `i` is not 0, 1 or 2 (a bug in the calling test).
    pub fn server_addr(&self, i: usize) -> std::net::SocketAddr {
        self.servers[i].http
    }

    /// Server `i`'s base URL: what a process that talks to a server agent directly uses.
    ///
    /// # Panics
    ///
    /// When `i` is not 0, 1 or 2.
    pub fn server_url(&self, i: usize) -> String {
        format!("http://{}", self.servers[i].http)
    }

    /// Server `i`'s loopback address (for a [`Partition`]).
    ///
    /// # Panics
    ///
    /// When `i` is not 0, 1 or 2.
    pub fn server_ip(&self, i: usize) -> Ipv4Addr {
        self.servers[i].ip
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
            .filter(|s| s.child.is_some() && !s.frozen)
            .find_map(|s| {
                let named = leader_of(s.http);
                self.servers.iter().position(|t| {
                    t.child.is_some() && named == format!("{}:{}", t.ip, t.server_port)
                })
            })
    }

    /// Polls every 50 ms until a running server is leader and every running client agent sees
    /// a leader too; returns the leader's index.
    ///
    /// # Errors
    ///
    /// [`Error::RealConsul`] when there is none after `timeout`, or an agent exited.
    pub fn wait_for_leader(&mut self, timeout: Duration) -> Result<usize, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.leader() {
                let clients_see_it = self
                    .clients
                    .iter()
                    .filter(|c| c.child.is_some() && !c.frozen)
                    .all(|c| !leader_of(c.http).is_empty());
                if clients_see_it {
                    return Ok(i);
                }
            }
            for s in self.servers.iter_mut().chain(self.clients.iter_mut()) {
                if s.child.is_some() {
                    s.check_running()?;
                }
            }
            if Instant::now() >= deadline {
                return Err(Error::RealConsul(format!(
                    "no Consul leader seen through the client agents after {timeout:?}; \
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

    /// SIGKILLs the first client agent (tests see their connections refused until it is back).
    pub fn kill_client_agent(&mut self) {
        self.kill_client(0);
    }

    /// SIGKILLs client agent `j` (no graceful leave: its node stays registered).
    ///
    /// # Panics
    ///
    /// When there is no client agent `j`.
    pub fn kill_client(&mut self, j: usize) {
        self.clients[j].kill();
    }

    /// Starts the first client agent again (killing it first if it runs) and waits until it
    /// sees a leader.
    ///
    /// # Errors
    ///
    /// [`Error::RealConsul`] when it does not come up or sees no leader within 30 s.
    pub fn restart_client_agent(&mut self) -> Result<(), Error> {
        self.restart_client(0)
    }

    /// Starts client agent `j` again (killing it first if it runs) and waits until it sees a
    /// leader.
    ///
    /// # Errors
    ///
    /// [`Error::RealConsul`] when there is no client agent `j`, or it does not come up or sees
    /// no leader within 30 s.
    pub fn restart_client(&mut self, j: usize) -> Result<(), Error> {
        let bin = self.bin.clone();
        let c = self.clients.get_mut(j).ok_or_else(|| {
            Error::RealConsul(format!("restart_client({j}): there is no client agent {j}"))
        })?;
        c.kill();
        c.spawn(&bin)?;
        c.wait_http(DEV_START)?;
        self.wait_for_leader(DEV_START).map(|_| ())
    }

    /// Freezes client agent `j` (`SIGSTOP`, as a VM pause or a stuck agent would leave it):
    /// it keeps its connections but answers nothing until [`thaw_client`](Self::thaw_client).
    ///
    /// # Panics
    ///
    /// When there is no client agent `j`.
    pub fn freeze_client(&mut self, j: usize) {
        self.clients[j].freeze();
    }

    /// Resumes a frozen client agent (`SIGCONT`).
    ///
    /// # Panics
    ///
    /// When there is no client agent `j`.
    pub fn thaw_client(&mut self, j: usize) {
        self.clients[j].thaw();
    }

    /// Freezes server `i` (`SIGSTOP`).
    ///
    /// # Panics
    ///
    /// When `i` is not 0, 1 or 2.
    pub fn freeze_server(&mut self, i: usize) {
        self.servers[i].freeze();
    }

    /// Resumes a frozen server (`SIGCONT`).
    ///
    /// # Panics
    ///
    /// When `i` is not 0, 1 or 2.
    pub fn thaw_server(&mut self, i: usize) {
        self.servers[i].thaw();
    }

    /// Cuts client agent `j` off from every server (both ways, on loopback, with nftables):
    /// see [`Partition::between`].
    ///
    /// # Errors
    ///
    /// As [`Partition::between`].
    pub fn partition_client(&self, j: usize) -> Result<Partition, Error> {
        let servers: Vec<Ipv4Addr> = self.servers.iter().map(|s| s.ip).collect();
        Partition::between(&[self.clients[j].ip], &servers)
    }

    /// Cuts server `i` off from the other servers (its client agents still reach it).
    ///
    /// # Errors
    ///
    /// As [`Partition::between`].
    pub fn partition_server(&self, i: usize) -> Result<Partition, Error> {
        let others: Vec<Ipv4Addr> = (0..self.servers.len())
            .filter(|&k| k != i)
            .map(|k| self.servers[k].ip)
            .collect();
        Partition::between(&[self.servers[i].ip], &others)
    }
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        for a in self.clients.iter_mut().chain(self.servers.iter_mut()) {
            a.kill();
        }
    }
}

/// A loopback network `127.X.Y.0/24` for one cluster, with X in 100..=199 and Y random, so
/// that clusters of parallel tests (and anything on 127.0.0.1) never share addresses.
fn loopback_net() -> (u8, u8) {
    (fastrand::u8(100..=199), fastrand::u8(..))
}
