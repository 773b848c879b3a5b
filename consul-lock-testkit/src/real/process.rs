//! One Consul agent process (its configuration, log and ports), the status request, free
//! loopback ports and the temporary directory.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{ConsulBinary, POLL};
use crate::error::Error;

/// How long a single status request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// One agent process: its configuration file, log file and ports.
#[derive(Debug)]
pub(super) struct AgentProc {
    pub(super) name: String,
    /// The loopback address it binds (HTTP, serf and RPC).
    pub(super) ip: Ipv4Addr,
    pub(super) http: SocketAddr,
    /// The server RPC port (what `/v1/status/leader` names); 0 for a client agent.
    pub(super) server_port: u16,
    pub(super) config: PathBuf,
    pub(super) log: PathBuf,
    pub(super) extra: Vec<String>,
    pub(super) child: Option<Child>,
    /// Stopped with `SIGSTOP` (until `thaw`).
    pub(super) frozen: bool,
}

impl AgentProc {
    pub(super) fn new(
        dir: &TempDir,
        name: &str,
        ip: Ipv4Addr,
        http: u16,
        server_port: u16,
        hcl: &str,
    ) -> Result<Self, Error> {
        let config = dir.path().join(format!("{name}.hcl"));
        write_file(&config, hcl)?;
        Ok(AgentProc {
            name: name.into(),
            ip,
            http: SocketAddr::from((ip, http)),
            server_port,
            config,
            log: dir.path().join(format!("{name}.log")),
            extra: Vec::new(),
            child: None,
            frozen: false,
        })
    }

    /// Stops the agent (`SIGSTOP`): it keeps its sockets but answers nothing.
    pub(super) fn freeze(&mut self) {
        if let Some(c) = &self.child {
            signal(c.id(), "STOP");
            self.frozen = true;
        }
    }

    /// Resumes a frozen agent (`SIGCONT`).
    pub(super) fn thaw(&mut self) {
        if let Some(c) = &self.child {
            signal(c.id(), "CONT");
        }
        self.frozen = false;
    }

    /// Whether the agent's log says it could not bind a port another process took.
    pub(super) fn lost_a_port(&self) -> bool {
        fs::read_to_string(&self.log).is_ok_and(|log| log.contains("address already in use"))
    }

    pub(super) fn spawn(&mut self, bin: &ConsulBinary) -> Result<(), Error> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(io_error)?;
        let err_log = log.try_clone().map_err(io_error)?;
        let child = Command::new(bin.path())
            .arg("agent")
            .args(&self.extra)
            .arg("-config-file")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .map_err(|e| {
                Error::RealConsul(format!(
                    "cannot run {} for agent {}: {e}; set CONSUL_BIN to a Consul binary",
                    bin.path().display(),
                    self.name
                ))
            })?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL (what `Child::kill` sends on Unix; it ends a stopped process too) and reap.
    pub(super) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.frozen = false;
    }

    pub(super) fn check_running(&mut self) -> Result<(), Error> {
        let status = match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(status))) => status.to_string(),
            Some(Err(e)) => e.to_string(),
            _ => return Ok(()),
        };
        self.child = None;
        Err(self.error(&format!("the agent exited ({status})")))
    }

    pub(super) fn wait_http(&mut self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        while get(self.http, "/v1/status/leader").is_err() {
            self.check_running()?;
            if Instant::now() >= deadline {
                return Err(
                    self.failed(&format!("its HTTP port did not answer within {timeout:?}"))
                );
            }
            std::thread::sleep(POLL);
        }
        Ok(())
    }

    pub(super) fn print_log(&self) {
        eprintln!(
            "---- Consul agent {} log ({}) ----\n{}\n---- end of log ----",
            self.name,
            self.log.display(),
            fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    /// Prints the log and builds the error, with the log's last lines in it.
    pub(super) fn failed(&self, what: &str) -> Error {
        self.print_log();
        self.error(what)
    }

    /// The error, with the log's last lines in it (the log is not printed).
    pub(super) fn error(&self, what: &str) -> Error {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(8).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Error::RealConsul(format!(
            "Consul agent {} ({}) failed to start: {what}; check that the binary is Consul 1.10 \
             or later and that loopback ports are free. Last log lines:\n{}",
            self.name,
            self.http,
            tail.join("\n")
        ))
    }
}

impl Drop for AgentProc {
    /// An agent never outlives its handle, also when starting it failed half-way.
    fn drop(&mut self) {
        self.kill();
    }
}

/// The leader `/v1/status/leader` names at `addr` (like `127.0.0.1:8300`), or `""` when it
/// names none or cannot be asked.
pub(super) fn leader_of(addr: SocketAddr) -> String {
    match get(addr, "/v1/status/leader") {
        Ok((200, body)) => body.trim().trim_matches('"').to_string(),
        _ => String::new(),
    }
}

/// Whether the catalog of the agent at `addr` lists a node: a dev agent registers its own
/// node a moment after it becomes leader, and until then Consul refuses to create a session
/// (`500 Missing node registration`).
pub(super) fn has_node(addr: SocketAddr) -> bool {
    match get(addr, "/v1/catalog/nodes") {
        Ok((200, body)) => body.contains("\"Node\""),
        _ => false,
    }
}

/// How many nodes the catalog of the agent at `addr` lists (0 when it cannot be asked): an
/// agent's node is registered a moment after it joins, and until then Consul refuses to
/// create a session through it (`Missing node registration`).
pub(super) fn node_count(addr: SocketAddr) -> usize {
    match get(addr, "/v1/catalog/nodes") {
        Ok((200, body)) => body.matches("\"Node\"").count(),
        _ => 0,
    }
}

/// One `GET` over HTTP/1.0 (the server closes the connection after its answer).
pub(super) fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    request(addr, "GET", path, &[], "")
}

/// One request over HTTP/1.0 with `headers` and `body` (the server closes the connection
/// after its answer).
pub(crate) fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, REQUEST_TIMEOUT)?;
    s.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    s.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    write!(s, "{head}Content-Length: {}\r\n\r\n{body}", body.len())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed HTTP answer");
    let (head, body) = raw.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    Ok((status, body.to_string()))
}

/// `n` distinct loopback ports free for TCP and UDP now (serf uses both). Another process
/// may take one before the agent binds it; the agent's start then fails and says so
/// (`address already in use`), and the harness tries again on fresh ports.
pub(super) fn free_ports(n: usize) -> Result<Vec<u16>, Error> {
    free_ports_on(Ipv4Addr::LOCALHOST, n)
}

/// [`free_ports`] on the loopback address `ip`.
pub(super) fn free_ports_on(ip: Ipv4Addr, n: usize) -> Result<Vec<u16>, Error> {
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < n {
        let tcp = TcpListener::bind((ip, 0)).map_err(io_error)?;
        let port = tcp.local_addr().map_err(io_error)?.port();
        if let Ok(udp) = UdpSocket::bind((ip, port)) {
            ports.push(port);
            held.push((tcp, udp));
        }
    }
    Ok(ports)
}

/// Sends the signal named `sig` (`STOP`, `CONT`) to the process `pid`, a child of this
/// process, with the system's `kill` command (this crate has no unsafe code).
pub(super) fn signal(pid: u32, sig: &str) {
    let sent = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
    if !sent.is_ok_and(|s| s.success()) {
        eprintln!("consul-lock-testkit: could not send SIG{sig} to the Consul agent {pid}");
    }
}
pub(super) fn io_error(e: std::io::Error) -> Error {
    Error::RealConsul(format!(
        "cannot prepare a Consul agent (temporary directory, file or loopback port): {e}; \
         check that the temporary directory is writable and ports are free"
    ))
}

pub(super) fn write_file(path: &Path, text: &str) -> Result<(), Error> {
    fs::write(path, text).map_err(io_error)
}

/// A directory under the system's temporary directory, removed on drop.
#[derive(Debug)]
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new(what: &str) -> Result<TempDir, Error> {
        let path = std::env::temp_dir().join(format!(
            "consul-lock-real-{what}-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        ));
        fs::create_dir_all(&path).map_err(io_error)?;
        Ok(TempDir(path))
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
