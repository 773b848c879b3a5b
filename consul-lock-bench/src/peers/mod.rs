//! Finds and runs the peer programs: other Consul lock clients that consul-lock is measured
//! and tested against (see `peers/README.md` at the workspace root).
//!
//! - [`PeerKind::Go`]: `peers/go/bin/go-peer`, Consul's official Go client (`api.Lock`);
//!   modes `cycle`, `contention`, `hold`, `try`.
//! - [`PeerKind::Python`]: `peers/python/peer.py`, the Python library `consul-lock` 0.1.6;
//!   modes `cycle`, `hold`, `try`.
//! - [`PeerKind::ConsulCli`]: the `consul lock PREFIX CHILD` command of a real Consul binary
//!   (`CONSUL_BIN`, else `consul` on `PATH`), which is `api.Lock` too; modes `hold`, `try`,
//!   on keys that end in `/.lock` (the CLI locks `PREFIX/.lock`).
//!
//! Every peer is given the server's URL as `CONSUL_HTTP_ADDR` and full keys (no prefix is
//! added). A peer that is not installed is an [`Absent`] with the reason, so a caller can say
//! plainly what it skipped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde::Serialize;

mod held;
mod records;

pub use held::HeldLock;
pub use records::{ContentionRun, CycleRun, PeerHold, TryOutcome};

/// Which peer program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerKind {
    /// `peers/go`: Consul's Go client `github.com/hashicorp/consul/api` (`api.Lock`).
    Go,
    /// `peers/python`: the Python library `consul-lock` 0.1.6 (`EphemeralLock`).
    Python,
    /// `consul lock` of a real Consul binary (`api.Lock` inside the CLI).
    ConsulCli,
}

impl PeerKind {
    /// A short name for tables and messages.
    pub fn label(self) -> &'static str {
        match self {
            PeerKind::Go => "Go api.Lock (hashicorp/consul/api)",
            PeerKind::Python => "Python consul-lock 0.1.6 (EphemeralLock)",
            PeerKind::ConsulCli => "consul lock (CLI)",
        }
    }
}

/// Why a peer cannot be used.
#[derive(Clone, Debug, Serialize)]
pub struct Absent {
    /// The peer.
    pub kind: PeerKind,
    /// What is missing and how to get it.
    pub reason: String,
}

/// A failure to run a peer or to read its answer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The program could not be started.
    #[error("cannot start {program}: {source}; check that it is installed (peers/install.sh)")]
    Spawn {
        /// The program.
        program: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The peer exited with an error or said something unexpected.
    #[error("{peer} {mode}: {detail}")]
    Failed {
        /// The peer's label.
        peer: &'static str,
        /// The mode it ran.
        mode: &'static str,
        /// What it printed or why its answer was not understood.
        detail: String,
    },
    /// The mode is not offered by this peer.
    #[error("{peer} has no {mode} mode (see peers/README.md)")]
    Unsupported {
        /// The peer's label.
        peer: &'static str,
        /// The mode asked for.
        mode: &'static str,
    },
}

/// A peer program that is installed and can be run.
#[derive(Clone, Debug)]
pub struct Peer {
    kind: PeerKind,
    program: PathBuf,
    /// Arguments before the mode (the script, for Python).
    lead: Vec<PathBuf>,
}

/// The workspace root this crate was built in (where `peers/` lives).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `name` as found on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

impl Peer {
    /// Finds a peer: for [`PeerKind::Go`] `CONSUL_LOCK_PEER_GO` or `peers/go/bin/go-peer`;
    /// for [`PeerKind::Python`] `CONSUL_LOCK_PEER_PYTHON` or `peers/python/peer.py`, run by
    /// `CONSUL_LOCK_PEER_PYTHON_BIN` or `python3`, which must import `consul_lock`; for
    /// [`PeerKind::ConsulCli`] `CONSUL_BIN` or `consul` on `PATH`.
    ///
    /// # Errors
    /// [`Absent`] saying what is missing (run `peers/install.sh`, or set the variable).
    ///
    /// ```
    /// use consul_lock_bench::peers::{Peer, PeerKind};
    /// match Peer::find(PeerKind::Python) {
    ///     Ok(peer) => println!("found {}", peer.describe()),
    ///     Err(absent) => println!("skipped: {}", absent.reason),
    /// }
    /// ```
    pub fn find(kind: PeerKind) -> Result<Peer, Absent> {
        Peer::find_at(kind, None)
    }

    /// As [`find`](Self::find), with an explicit program (the Go binary, the Python script or
    /// the Consul binary) in place of the variable and the default place.
    ///
    /// # Errors
    /// [`Absent`] when the program is not there or (Python) `consul_lock` does not import.
    pub fn find_at(kind: PeerKind, program: Option<&Path>) -> Result<Peer, Absent> {
        let absent = |reason: String| Absent { kind, reason };
        let root = workspace_root();
        match kind {
            PeerKind::Go => {
                let bin = program
                    .map(Path::to_path_buf)
                    .or_else(|| env_path("CONSUL_LOCK_PEER_GO"))
                    .unwrap_or_else(|| root.join("peers/go/bin/go-peer"));
                if !bin.is_file() {
                    return Err(absent(format!(
                        "{} is not built (peers/install.sh builds it; it needs Go, and the Go module proxy or a GOPATH holding Consul's Go client: CONSUL_LOCK_PEER_GOPATH), or set CONSUL_LOCK_PEER_GO",
                        bin.display()
                    )));
                }
                Ok(Peer {
                    kind,
                    program: bin,
                    lead: Vec::new(),
                })
            }
            PeerKind::Python => {
                let script = program
                    .map(Path::to_path_buf)
                    .or_else(|| env_path("CONSUL_LOCK_PEER_PYTHON"))
                    .unwrap_or_else(|| root.join("peers/python/peer.py"));
                if !script.is_file() {
                    return Err(absent(format!("{} is not there", script.display())));
                }
                let python = env_path("CONSUL_LOCK_PEER_PYTHON_BIN")
                    .unwrap_or_else(|| PathBuf::from("python3"));
                let check = Command::new(&python)
                    .args(["-c", "import consul_lock; consul_lock.EphemeralLock"])
                    .stdin(Stdio::null())
                    .output();
                match check {
                    Ok(o) if o.status.success() => Ok(Peer {
                        kind,
                        program: python,
                        lead: vec![script],
                    }),
                    Ok(o) => Err(absent(format!(
                        "{} cannot import consul_lock 0.1.6 (run peers/install.sh, which installs it from PyPI and patches its Python-2 imports): {}",
                        python.display(),
                        String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
                    ))),
                    Err(e) => Err(absent(format!("cannot run {}: {e}", python.display()))),
                }
            }
            PeerKind::ConsulCli => {
                let bin = program
                    .map(Path::to_path_buf)
                    .or_else(|| env_path("CONSUL_BIN"))
                    .or_else(|| on_path("consul"));
                match bin {
                    Some(b) if b.is_file() => Ok(Peer {
                        kind,
                        program: b,
                        lead: Vec::new(),
                    }),
                    Some(b) => Err(absent(format!("CONSUL_BIN={} is not a file", b.display()))),
                    None => Err(absent(
                        "no Consul binary (set CONSUL_BIN or put consul on PATH)".into(),
                    )),
                }
            }
        }
    }

    /// Which peer this is.
    pub fn kind(&self) -> PeerKind {
        self.kind
    }

    /// The peer and the program that runs it, for messages.
    pub fn describe(&self) -> String {
        let mut s = format!("{} ({}", self.kind.label(), self.program.display());
        for a in &self.lead {
            s.push(' ');
            s.push_str(&a.display().to_string());
        }
        s.push(')');
        s
    }

    /// A command running `mode` against the server at `consul_url`, for modes and flags
    /// this module does not wrap (see `peers/README.md`).
    pub fn command(&self, consul_url: &str, mode: &str) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.lead);
        if self.kind != PeerKind::ConsulCli {
            c.arg(mode);
        }
        c.env("CONSUL_HTTP_ADDR", consul_url);
        c
    }

    fn output(&self, mode: &'static str, mut c: Command, check: bool) -> Result<Output, PeerError> {
        let out = c
            .stdin(Stdio::null())
            .output()
            .map_err(|source| PeerError::Spawn {
                program: self.program.display().to_string(),
                source,
            })?;
        if check && !out.status.success() {
            return Err(self.failed(mode, stderr_tail(&out)));
        }
        Ok(out)
    }

    fn failed(&self, mode: &'static str, detail: String) -> PeerError {
        PeerError::Failed {
            peer: self.kind.label(),
            mode,
            detail,
        }
    }

    fn json<T: serde::de::DeserializeOwned>(
        &self,
        mode: &'static str,
        c: Command,
    ) -> Result<T, PeerError> {
        let out = self.output(mode, c, true)?;
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.trim()).map_err(|e| {
            self.failed(
                mode,
                format!("its output is not the expected JSON ({e}): {:.200}", text),
            )
        })
    }

    /// Runs uncontended lock + unlock cycles on `key` for `duration` after `warmup`
    /// (Go and Python peers).
    ///
    /// # Errors
    /// [`PeerError`] when the peer cannot start, fails, or has no cycle mode (the CLI).
    pub fn cycle(
        &self,
        consul_url: &str,
        key: &str,
        duration: Duration,
        warmup: Duration,
    ) -> Result<CycleRun, PeerError> {
        let mut c = self.command(consul_url, "cycle");
        match self.kind {
            PeerKind::Go => c.args([
                format!("-key={key}"),
                format!("-duration={}ns", duration.as_nanos()),
                format!("-warmup={}ns", warmup.as_nanos()),
            ]),
            PeerKind::Python => c.args([
                format!("--key={key}"),
                format!("--duration={}", duration.as_secs_f64()),
                format!("--warmup={}", warmup.as_secs_f64()),
            ]),
            PeerKind::ConsulCli => return Err(self.unsupported("cycle")),
        };
        self.json("cycle", c)
    }

    /// Runs `workers` workers on `key`, each holding it for `hold`, for `duration` (Go peer).
    ///
    /// # Errors
    /// [`PeerError`] when the peer cannot start, fails, or has no contention mode.
    pub fn contention(
        &self,
        consul_url: &str,
        key: &str,
        workers: usize,
        hold: Duration,
        duration: Duration,
    ) -> Result<ContentionRun, PeerError> {
        if self.kind != PeerKind::Go {
            return Err(self.unsupported("contention"));
        }
        let mut c = self.command(consul_url, "contention");
        c.args([
            format!("-key={key}"),
            format!("-workers={workers}"),
            format!("-hold={}ns", hold.as_nanos()),
            format!("-duration={}ns", duration.as_nanos()),
        ]);
        self.json("contention", c)
    }

    fn unsupported(&self, mode: &'static str) -> PeerError {
        PeerError::Unsupported {
            peer: self.kind.label(),
            mode,
        }
    }

    /// Locks `key` in the peer and returns once it holds it (waiting up to `wait` for a held
    /// key); it holds the key until [`HeldLock::release`] (or the drop of the handle).
    /// For the CLI, `key` must end in `/.lock` (the CLI locks `PREFIX/.lock`).
    ///
    /// # Errors
    /// [`PeerError`] when the peer cannot start, or exits without saying `locked <index>`
    /// (its output is in the error).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use consul_lock_bench::peers::{Peer, PeerKind};
    /// let peer = Peer::find(PeerKind::Go).expect("peers/install.sh builds the Go peer");
    /// let held = peer.hold("http://127.0.0.1:8500", "locks/ephemeral/demo", Duration::from_secs(5)).unwrap();
    /// println!("Go holds the key, fencing index {}", held.fencing_index());
    /// held.release().unwrap();
    /// ```
    pub fn hold(&self, consul_url: &str, key: &str, wait: Duration) -> Result<HeldLock, PeerError> {
        let mut c = self.command(consul_url, "hold");
        match self.kind {
            PeerKind::Go => {
                c.arg(format!("-key={key}"));
            }
            PeerKind::Python => {
                c.args([
                    format!("--key={key}"),
                    format!("--wait-ms={}", wait.as_millis()),
                ]);
            }
            PeerKind::ConsulCli => {
                let prefix = cli_prefix(key).ok_or_else(|| self.cli_key(key))?;
                // The child prints the key's ModifyIndex (the fencing index), then holds the
                // lock until its stdin (passed through by -pass-stdin) closes.
                c.args(["lock", "-pass-stdin", "-name=consul-lock peer", prefix])
                    .arg(r#"printf 'locked %s\n' "$("$PEER_CONSUL" kv get -detailed "$PEER_KEY" | awk '$1 == "ModifyIndex" {print $2}')"; cat >/dev/null"#)
                    .env("PEER_CONSUL", &self.program)
                    .env("PEER_KEY", key);
            }
        }
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| PeerError::Spawn {
                program: self.program.display().to_string(),
                source,
            })?;
        let stdin = child.stdin.take();
        let mut stdout = match child.stdout.take() {
            Some(s) => BufReader::new(s),
            None => return Err(self.failed("hold", "no stdout".into())),
        };
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        let index = line
            .trim()
            .strip_prefix("locked ")
            .and_then(|n| n.trim().parse::<u64>().ok());
        match index {
            Some(fencing_index) => Ok(HeldLock {
                peer: self.kind,
                child,
                stdin,
                stdout,
                fencing_index,
            }),
            None => {
                drop(stdin);
                let _ = child.kill();
                let out = child.wait_with_output();
                let err = out.map(|o| stderr_tail(&o)).unwrap_or_default();
                Err(self.failed(
                    "hold",
                    format!("it did not lock (said {:?}; stderr: {err})", line.trim()),
                ))
            }
        }
    }

    fn cli_key(&self, key: &str) -> PeerError {
        self.failed(
            "lock",
            format!("the CLI locks PREFIX/.lock: give a key ending in /.lock, not {key:?}"),
        )
    }

    /// One attempt to lock `key`, waiting at most `wait` (Go: `LockTryOnce` with
    /// `LockWaitTime`; Python: `acquire_timeout_ms`; CLI: `-timeout`); a lock taken is
    /// released at once.
    ///
    /// # Errors
    /// [`PeerError`] when the peer cannot start or answers something unexpected; a refusal
    /// by the peer's client is `Ok(TryOutcome::Error(message))`.
    pub fn try_lock(
        &self,
        consul_url: &str,
        key: &str,
        wait: Duration,
    ) -> Result<TryOutcome, PeerError> {
        let mut c = self.command(consul_url, "try");
        match self.kind {
            PeerKind::Go => c.args([
                format!("-key={key}"),
                format!("-wait={}ns", wait.as_nanos()),
            ]),
            PeerKind::Python => c.args([
                format!("--key={key}"),
                format!("--wait-ms={}", wait.as_millis()),
            ]),
            PeerKind::ConsulCli => {
                let prefix = cli_prefix(key).ok_or_else(|| self.cli_key(key))?;
                let ms = wait.as_millis().max(1);
                c.args([
                    "lock",
                    &format!("-timeout={ms}ms"),
                    "-name=consul-lock peer",
                    prefix,
                    "echo locked",
                ])
            }
        };
        // The Go and Python peers exit 1 after printing "error: ..."; the CLI exits 1 on a
        // timeout: the answer is read from the output, not the exit status.
        let out = self.output("try", c, false)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stdout.lines().next().unwrap_or("").trim();
        Ok(match first {
            "locked" => TryOutcome::Locked,
            "timeout" => TryOutcome::Timeout,
            _ if first.starts_with("error: ") => {
                TryOutcome::Error(first["error: ".len()..].to_owned())
            }
            _ if self.kind == PeerKind::ConsulCli
                && stderr.contains("timeout during lock acquisition") =>
            {
                TryOutcome::Timeout
            }
            _ if self.kind == PeerKind::ConsulCli && !out.status.success() => {
                TryOutcome::Error(stderr.trim().to_owned())
            }
            _ => {
                return Err(self.failed(
                    "try",
                    format!("unexpected answer {first:?} (stderr: {})", stderr.trim()),
                ))
            }
        })
    }
}

/// The CLI's prefix for a key `PREFIX/.lock`.
fn cli_prefix(key: &str) -> Option<&str> {
    key.strip_suffix("/.lock").filter(|p| !p.is_empty())
}

fn stderr_tail(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    format!("exit {}: {tail}", out.status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_prefix_needs_a_dot_lock_key() {
        assert_eq!(
            cli_prefix("locks/ephemeral/a/.lock"),
            Some("locks/ephemeral/a")
        );
        assert_eq!(cli_prefix("locks/ephemeral/a"), None);
        assert_eq!(cli_prefix("/.lock"), None);
    }

    #[test]
    fn peer_json_is_read() {
        let run: CycleRun = serde_json::from_str(
            r#"{"peer":"go","library":"x","cycles":2,"seconds":0.5,"latencies_ns":[1,2],
                "client_requests":10,"cpu_ns":7,"context_switches":3,"notes":["n"]}"#,
        )
        .unwrap();
        assert_eq!(run.latencies_ns, [1, 2]);
        assert_eq!(run.client_requests, 10);
        let c: ContentionRun = serde_json::from_str(
            r#"{"peer":"go","library":"x","workers":2,"hold_ns":0,"seconds":1,"client_requests":4,
                "holds":[{"worker":1,"acquired_ns":5,"release_called_ns":6,"released_ns":7}]}"#,
        )
        .unwrap();
        assert_eq!(c.holds[0].worker, 1);
        assert_eq!(c.holds[0].released_ns, 7);
    }

    #[test]
    fn a_missing_go_peer_says_why() {
        let absent = Peer::find_at(PeerKind::Go, Some(Path::new("no/such/go-peer"))).unwrap_err();
        assert_eq!(absent.kind, PeerKind::Go);
        assert!(
            absent.reason.contains("no/such/go-peer"),
            "{}",
            absent.reason
        );
        assert!(
            absent.reason.contains("peers/install.sh"),
            "{}",
            absent.reason
        );
    }
}
