//! What the CLI tests share: a Consul (the embedded test server, or the agent named by
//! `CONSUL_HTTP_ADDR`), the `consul-lock` binary run as a user runs it, and readers of its
//! output that wait for lines instead of sleeping.

#![allow(dead_code)] // each test binary uses a part of it

use std::io::{BufRead as _, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use consul_lock_runtime::{Client, Lock, LockGuard};
use consul_lock_testkit::TestConsul;

/// How long a test waits for any one thing before it fails (a hung CLI fails, not hangs).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_consul-lock");

/// One test's Consul, client and key prefix (unique, so that tests against a shared agent do
/// not meet).
pub struct Env {
    pub consul: TestConsul,
    pub client: Client,
    pub prefix: String,
    rt: tokio::runtime::Runtime,
}

impl Env {
    pub fn new(test: &str) -> Env {
        let consul = TestConsul::from_env_or_start().expect("start the test server");
        // Told what the agent is, so that its first lock, too, takes the shared session.
        let client = Client::builder()
            .address(consul.url())
            .agent_is_server(false)
            .build()
            .expect("client");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let prefix = format!("cli-test/{test}-{:08x}/", fastrand::u32(..));
        Env {
            consul,
            client,
            prefix,
            rt,
        }
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// `consul-lock ARGS…` with `CONSUL_HTTP_ADDR` pointing at this Consul.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("CONSUL_HTTP_ADDR", self.consul.url())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `consul-lock ARGS…` to the end.
    pub fn run(&self, args: &[&str]) -> Finished {
        self.spawn(args).finish()
    }

    /// Starts `consul-lock ARGS…` with its output read line by line.
    pub fn spawn(&self, args: &[&str]) -> Running {
        Running::start(self.command(args))
    }

    /// The Consul key for `key` under this test's prefix.
    pub fn consul_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Takes the lock on `key` under this test's prefix, as an application would.
    pub fn hold(&self, key: &str) -> LockGuard {
        Lock::new(key)
            .key_prefix(self.prefix.clone())
            .client(&self.client)
            .acquire_blocking()
            .expect("the test takes the lock")
    }

    /// Takes `key` (under this test's prefix) with a session of the lock's own.
    pub fn hold_own_session(&self, key: &str) -> LockGuard {
        Lock::new(key)
            .key_prefix(self.prefix.clone())
            .client(&self.client)
            .own_session(true)
            .acquire_blocking()
            .expect("the test takes the lock")
    }

    /// The session holding `key` (under this test's prefix) now, if any.
    pub fn holder(&self, key: &str) -> Option<String> {
        self.block_on(self.client.kv_get(&self.consul_key(key)))
            .expect("read the key")
            .and_then(|e| e.session)
    }

    /// Waits (Consul blocking queries on the queue prefix) until `n` waiters queue for `key`;
    /// returns the queue entries' keys.
    pub fn wait_for_waiters(&self, key: &str, n: usize) -> Vec<String> {
        let queue = format!("{}/.waiters/", self.consul_key(key));
        let url = format!("{}/v1/kv/{queue}", self.consul.url());
        let http = reqwest::Client::new();
        let token = std::env::var("CONSUL_HTTP_TOKEN").ok();
        let deadline = Instant::now() + PATIENCE;
        let mut index = 0u64;
        self.block_on(async {
            loop {
                assert!(
                    Instant::now() < deadline,
                    "{n} waiter(s) never queued for {key}"
                );
                let mut req = http.get(&url).query(&[
                    ("keys", ""),
                    ("index", &index.to_string()),
                    ("wait", "5s"),
                ]);
                if let Some(t) = &token {
                    req = req.header("X-Consul-Token", t);
                }
                let reply = req.send().await.expect("blocking query on the queue");
                index = reply
                    .headers()
                    .get("X-Consul-Index")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(index + 1);
                let keys: Vec<String> = if reply.status() == 404 {
                    Vec::new()
                } else {
                    reply.json().await.expect("a list of keys")
                };
                if keys.len() >= n {
                    return keys;
                }
            }
        })
    }

    /// Writes or deletes (`value` None) a plain KV key, held by no session.
    pub fn put_plain(&self, consul_key: &str, value: Option<&str>) {
        let url = format!("{}/v1/kv/{consul_key}", self.consul.url());
        let http = reqwest::Client::new();
        let mut req = match value {
            Some(v) => http.put(&url).body(v.to_owned()),
            None => http.delete(&url),
        };
        if let Ok(t) = std::env::var("CONSUL_HTTP_TOKEN") {
            req = req.header("X-Consul-Token", t);
        }
        let reply = self.block_on(req.send()).expect("write the key");
        assert!(reply.status().is_success(), "{reply:?}");
    }

    /// Keys left under this test's prefix.
    pub fn leftovers(&self) -> Vec<String> {
        consul_lock_runtime::flush_releases_blocking().expect("flush releases");
        self.block_on(self.client.kv_keys(&self.prefix))
            .expect("list keys")
    }
}

/// A `consul-lock` process whose stdout and stderr are read line by line.
pub struct Running {
    pub child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    pub out: Vec<String>,
    pub err: Vec<String>,
}

fn reader(from: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Running {
    pub fn start(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start consul-lock");
        let stdout = reader(child.stdout.take().expect("stdout"));
        let stderr = reader(child.stderr.take().expect("stderr"));
        Running {
            child,
            stdout,
            stderr,
            out: Vec::new(),
            err: Vec::new(),
        }
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"))
    }

    fn expect(&mut self, on_stdout: bool, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (rx, seen) = if on_stdout {
                (&self.stdout, &mut self.out)
            } else {
                (&self.stderr, &mut self.err)
            };
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(e) => {
                    panic!(
                    "no line with {needle:?} on {} ({}); stdout so far {:?}, stderr so far {:?}",
                    if on_stdout { "stdout" } else { "stderr" },
                    if e == RecvTimeoutError::Timeout { "timed out" } else { "closed" },
                    self.out,
                    self.err
                )
                }
            }
        }
    }

    /// Waits for a line on stdout containing `needle`.
    pub fn expect_stdout(&mut self, needle: &str) -> String {
        self.expect(true, needle)
    }

    /// Waits for a line on stderr containing `needle`.
    pub fn expect_stderr(&mut self, needle: &str) -> String {
        self.expect(false, needle)
    }

    /// Reads the output to its end and waits for the process.
    pub fn finish(mut self) -> Finished {
        let deadline = Instant::now() + PATIENCE;
        for on_stdout in [true, false] {
            loop {
                let (rx, seen) = if on_stdout {
                    (&self.stdout, &mut self.out)
                } else {
                    (&self.stderr, &mut self.err)
                };
                match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(line) => seen.push(line),
                    Err(RecvTimeoutError::Disconnected) => break,
                    Err(RecvTimeoutError::Timeout) => {
                        let _ = self.child.kill();
                        panic!(
                            "consul-lock did not finish; stdout {:?}, stderr {:?}",
                            self.out, self.err
                        );
                    }
                }
            }
        }
        let status = self.child.wait().expect("wait for consul-lock");
        Finished {
            status,
            stdout: std::mem::take(&mut self.out).join("\n"),
            stderr: std::mem::take(&mut self.err).join("\n"),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A finished `consul-lock` run.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    /// The exit code; a test fails when the process was killed by a signal.
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("consul-lock was killed: {self:?}"))
    }
}
