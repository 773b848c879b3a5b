//! What the bench talks to: a Consul agent (`CONSUL_HTTP_ADDR`) or the embedded test server.
//!
//! The embedded server (`consul-lock-testkit`) runs in a child process: this same binary,
//! started with `--serve`. So the bench process's CPU time and memory are the client's alone,
//! while the server still runs on the same machine over loopback, like a local agent. The
//! child prints its URL on stdout, answers `count` on stdin with its request counter, and
//! exits when its stdin closes (so it never outlives the bench).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use consul_lock::{Client, ClientBuilder};
use serde::Serialize;

/// Which kind of server the numbers were measured against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A Consul agent at `CONSUL_HTTP_ADDR`.
    Agent,
    /// The embedded `consul-lock-testkit` server in a child process.
    Embedded,
}

pub struct Target {
    pub kind: Kind,
    pub url: String,
    child: Option<Mutex<ChildServer>>,
}

struct ChildServer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Target {
    /// The agent at `CONSUL_HTTP_ADDR` when it is set, else a freshly started embedded server.
    pub fn from_env() -> Result<Target, String> {
        let addr = std::env::var("CONSUL_HTTP_ADDR").unwrap_or_default();
        if !addr.trim().is_empty() {
            let client = Client::from_env().map_err(|e| e.to_string())?;
            return Ok(Target {
                kind: Kind::Agent,
                url: client.address().to_owned(),
                child: None,
            });
        }
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find this program to start the server: {e}"))?;
        let mut child = Command::new(exe)
            .arg("--serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the embedded server (--serve): {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().map(BufReader::new);
        let Some(mut stdout) = stdout else {
            let _ = child.kill();
            return Err("the embedded server has no stdout".into());
        };
        let mut line = String::new();
        let read = stdout.read_line(&mut line);
        let url = match (read, line.trim().strip_prefix("url ")) {
            (Ok(n), Some(url)) if n > 0 => url.to_owned(),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the embedded server did not start (it said {:?})",
                    line.trim()
                ));
            }
        };
        Ok(Target {
            kind: Kind::Embedded,
            url,
            child: Some(Mutex::new(ChildServer {
                child,
                stdin,
                stdout,
            })),
        })
    }

    /// An embedded server this process runs itself (tests): no request counter.
    #[cfg(test)]
    pub fn embedded_at(url: String) -> Target {
        Target {
            kind: Kind::Embedded,
            url,
            child: None,
        }
    }

    /// A client builder for this target: the `CONSUL_*` environment for an agent (token, TLS,
    /// …), the embedded server's URL otherwise.
    pub fn client_builder(&self) -> Result<ClientBuilder, String> {
        match self.kind {
            Kind::Agent => ClientBuilder::from_env().map_err(|e| e.to_string()),
            Kind::Embedded => Ok(Client::builder().address(self.url.clone())),
        }
    }

    /// One line saying what the bench talks to.
    pub fn describe(&self) -> String {
        match self.kind {
            Kind::Agent => format!("Consul agent at {} (CONSUL_HTTP_ADDR)", self.url),
            Kind::Embedded => format!(
                "embedded test server (consul-lock-testkit) at {}, started by this bench in a child \
                 process (CONSUL_HTTP_ADDR is not set)",
                self.url
            ),
        }
    }

    /// How many requests the server has answered, when it can tell (the embedded server).
    pub fn server_requests(&self) -> Option<u64> {
        let child = self.child.as_ref()?;
        let mut child = child.lock().ok()?;
        let stdin = child.stdin.as_mut()?;
        stdin.write_all(b"count\n").ok()?;
        stdin.flush().ok()?;
        let mut line = String::new();
        child.stdout.read_line(&mut line).ok()?;
        line.trim().parse().ok()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        let Some(child) = self.child.take() else {
            return;
        };
        let mut child = child.into_inner().unwrap_or_else(|e| e.into_inner());
        // Closing stdin asks the server to exit; kill it if it does not within a second.
        drop(child.stdin.take());
        let until = Instant::now() + Duration::from_secs(1);
        while Instant::now() < until {
            if let Ok(Some(_)) = child.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.child.kill();
        let _ = child.child.wait();
    }
}

/// The `--serve` mode: runs the embedded server until stdin closes.
pub fn serve() -> Result<(), String> {
    // A 1 s TTL floor, so that the election section's smoke run hands over in seconds.
    let config =
        consul_lock_testkit::ServerConfig::default().session_ttl_min(Duration::from_secs(1));
    let server = consul_lock_testkit::TestServer::start_with(config)
        .map_err(|e| format!("cannot start the test server: {e}"))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "url {}", server.url()).map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line.trim() == "count" {
            writeln!(out, "{}", server.request_count()).map_err(|e| e.to_string())?;
            out.flush().map_err(|e| e.to_string())?;
        }
    }
    drop(server);
    Ok(())
}
