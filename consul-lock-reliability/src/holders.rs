//! The holder processes of the history checker: started from the `history-holder` binary,
//! one per agent, paused and resumed (`SIGSTOP`, `SIGCONT`), and stopped, their records
//! collected as they print them.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::holder::HolderConfig;
use crate::lease_history::{Acquisition, Record};

/// One holder to start: its configuration and the agent's URL.
#[derive(Clone, Debug)]
pub struct HolderSpec {
    /// What it does (its name and agent name are in here).
    pub config: HolderConfig,
    /// The base URL of the agent it talks to.
    pub url: String,
    /// The agent's `session_ttl_min`.
    pub ttl_min: Duration,
}

/// A line a holder printed, with the holder's name.
enum Event {
    Holding { holder: String },
    Record(Record),
}

struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    paused: bool,
}

/// The running holder processes.
pub struct Holders {
    procs: Vec<Proc>,
    events: Receiver<Event>,
    records: Vec<Record>,
}

impl Holders {
    /// Starts one `exe` (the `history-holder` binary) per spec.
    ///
    /// # Errors
    ///
    /// When a process cannot be started.
    pub fn spawn(exe: &Path, specs: &[HolderSpec]) -> std::io::Result<Holders> {
        let (tx, events) = channel();
        let mut procs = Vec::new();
        for spec in specs {
            let c = &spec.config;
            let mut cmd = Command::new(exe);
            cmd.args(["--url", &spec.url, "--name", &c.name, "--agent", &c.agent])
                .args(["--prefix", &c.prefix, "--data-prefix", &c.data_prefix])
                .args(["--keys", &c.keys.to_string()])
                .args(["--lock-timeout-ms", &c.lock_timeout.as_millis().to_string()])
                .args([
                    "--acquire-timeout-ms",
                    &c.acquire_timeout.as_millis().to_string(),
                ])
                .args(["--hold-ms", &c.hold.as_millis().to_string()])
                .args(["--ttl-min-ms", &spec.ttl_min.as_millis().to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit());
            if c.renew {
                cmd.arg("--renew");
            }
            let mut child = cmd.spawn()?;
            let stdout = child
                .stdout
                .take()
                .ok_or_else(|| std::io::Error::other("no stdout"))?;
            let (tx, name) = (tx.clone(), c.name.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    let event = if line.starts_with("HOLDING") {
                        Event::Holding {
                            holder: name.clone(),
                        }
                    } else {
                        match serde_json::from_str::<Record>(&line) {
                            Ok(record) => Event::Record(record),
                            Err(e) => {
                                eprintln!("holder {name}: unreadable line {line:?}: {e}");
                                continue;
                            }
                        }
                    };
                    if tx.send(event).is_err() {
                        return;
                    }
                }
            });
            procs.push(Proc {
                name: c.name.clone(),
                stdin: child.stdin.take(),
                child,
                paused: false,
            });
        }
        Ok(Holders {
            procs,
            events,
            records: Vec::new(),
        })
    }

    /// Waits until holder `name` says it took a key (it prints `HOLDING` then), from now on
    /// (what holders said before is set aside), up to `timeout`; returns whether it did.
    pub fn wait_holding(&mut self, name: &str, timeout: Duration) -> bool {
        while let Ok(event) = self.events.try_recv() {
            if let Event::Record(r) = event {
                self.records.push(r);
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(Event::Holding { holder }) if holder == name => return true,
                Ok(Event::Holding { .. }) => {}
                Ok(Event::Record(r)) => self.records.push(r),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    /// Pauses holder `name` (`SIGSTOP`): the process stops wherever it is, as a long GC pause
    /// or a stopped VM would stop it.
    pub fn pause(&mut self, name: &str) {
        if let Some(p) = self.procs.iter_mut().find(|p| p.name == name) {
            signal(&p.child, libc::SIGSTOP);
            p.paused = true;
        }
    }

    /// Resumes a paused holder (`SIGCONT`).
    pub fn resume(&mut self, name: &str) {
        if let Some(p) = self.procs.iter_mut().find(|p| p.name == name) {
            signal(&p.child, libc::SIGCONT);
            p.paused = false;
        }
    }

    /// Stops every holder (closes its stdin: it finishes the acquisition it is in and its
    /// releases), waits for them, and returns every acquisition and every acquire error.
    pub fn stop(mut self) -> (Vec<Acquisition>, Vec<String>) {
        for p in &mut self.procs {
            if p.paused {
                signal(&p.child, libc::SIGCONT);
            }
            drop(p.stdin.take());
        }
        for p in &mut self.procs {
            let _ = p.child.wait();
        }
        while let Ok(event) = self.events.recv_timeout(Duration::from_secs(2)) {
            if let Event::Record(r) = event {
                self.records.push(r);
            }
        }
        let (mut acquisitions, mut errors) = (Vec::new(), Vec::new());
        for r in std::mem::take(&mut self.records) {
            match r {
                Record::Acquisition(a) => acquisitions.push(a),
                Record::AcquireError { holder, error, .. } => {
                    errors.push(format!("{holder}: {error}"));
                }
            }
        }
        (acquisitions, errors)
    }
}

impl Drop for Holders {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}

fn signal(child: &Child, sig: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) on a child's pid with a valid signal has no memory effects.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}
