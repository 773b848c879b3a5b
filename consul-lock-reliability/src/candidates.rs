//! The processes of the election workload: candidates and observers started from the
//! `election-candidate` binary, killed (`SIGKILL`), paused and resumed (`SIGSTOP`,
//! `SIGCONT`), stopped (their stdin closed: a leader resigns), and their records collected as
//! they print them.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crate::election_candidate::CandidateConfig;
use crate::election_history::ElectionRecord;

/// What a process is.
#[derive(Clone, Debug)]
pub enum Role {
    /// A candidate.
    Candidate(CandidateConfig),
    /// An observer of the election on `key`.
    Observer {
        /// The election's whole key.
        key: String,
    },
}

/// One process to start.
#[derive(Clone, Debug)]
pub struct ProcessSpec {
    /// Its name (unique in the workload).
    pub name: String,
    /// The base URL of the agent it talks to.
    pub url: String,
    /// That agent's `session_ttl_min`.
    pub ttl_min: Duration,
    /// Candidate or observer.
    pub role: Role,
}

struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    paused: bool,
}

/// The running processes.
pub struct Processes {
    exe: PathBuf,
    specs: HashMap<String, ProcessSpec>,
    procs: HashMap<String, Proc>,
    tx: Sender<ElectionRecord>,
    rx: Receiver<ElectionRecord>,
    records: Vec<ElectionRecord>,
    /// How many records [`wait_new_leader`](Self::wait_new_leader) has looked at.
    scanned: usize,
}

impl Processes {
    /// Starts one `exe` (the `election-candidate` binary) per spec.
    ///
    /// # Errors
    ///
    /// When a process cannot be started.
    pub fn spawn(exe: &Path, specs: &[ProcessSpec]) -> std::io::Result<Processes> {
        let (tx, rx) = channel();
        let mut all = Processes {
            exe: exe.to_owned(),
            specs: HashMap::new(),
            procs: HashMap::new(),
            tx,
            rx,
            records: Vec::new(),
            scanned: 0,
        };
        for spec in specs {
            all.specs.insert(spec.name.clone(), spec.clone());
            all.start(&spec.name)?;
        }
        Ok(all)
    }

    fn start(&mut self, name: &str) -> std::io::Result<()> {
        let spec = self
            .specs
            .get(name)
            .ok_or_else(|| std::io::Error::other(format!("no process named {name}")))?;
        let mut cmd = Command::new(&self.exe);
        cmd.args(["--url", &spec.url, "--name", &spec.name])
            .args(["--ttl-min-ms", &spec.ttl_min.as_millis().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        match &spec.role {
            Role::Candidate(c) => {
                cmd.args(["--key", &c.key, "--data-key", &c.data_key])
                    .args(["--ttl-ms", &c.ttl.as_millis().to_string()])
                    .args(["--grace-ms", &c.grace.as_millis().to_string()])
                    .args(["--wind-down-ms", &c.wind_down.as_millis().to_string()]);
            }
            Role::Observer { key } => {
                cmd.args(["--key", key, "--observe"]);
            }
        }
        let mut child = cmd.spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let (tx, who) = (self.tx.clone(), spec.name.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match serde_json::from_str::<ElectionRecord>(&line) {
                    Ok(record) => {
                        if tx.send(record).is_err() {
                            return;
                        }
                    }
                    Err(e) => eprintln!("{who}: unreadable line {line:?}: {e}"),
                }
            }
        });
        let stdin = child.stdin.take();
        self.procs.insert(
            name.to_owned(),
            Proc {
                child,
                stdin,
                paused: false,
            },
        );
        Ok(())
    }

    /// Starts process `name` again (after [`kill`](Self::kill) or [`stop_one`](Self::stop_one)),
    /// as its spec says.
    ///
    /// # Errors
    ///
    /// When it cannot be started.
    pub fn respawn(&mut self, name: &str) -> std::io::Result<()> {
        self.start(name)
    }

    fn collect(&mut self, timeout: Duration) -> bool {
        match self.rx.recv_timeout(timeout) {
            Ok(record) => {
                self.records.push(record);
                true
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => false,
        }
    }

    /// Waits until a candidate starts leading with a fencing token above `above`, up to
    /// `timeout`; returns its name and token.
    pub fn wait_new_leader(&mut self, above: u64, timeout: Duration) -> Option<(String, u64)> {
        let deadline = Instant::now() + timeout;
        loop {
            while self.scanned < self.records.len() {
                let record = &self.records[self.scanned];
                self.scanned += 1;
                if let ElectionRecord::Started {
                    candidate, token, ..
                } = record
                {
                    if *token > above {
                        return Some((candidate.clone(), *token));
                    }
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.collect(left) {
                return None;
            }
        }
    }

    /// Collects what the processes print for `duration` (an event-driven wait: it returns
    /// when the time has passed, having read every line meanwhile).
    pub fn run_for(&mut self, duration: Duration) {
        let deadline = Instant::now() + duration;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            self.collect(left);
        }
    }

    /// Kills process `name` (`SIGKILL`) and waits for it.
    pub fn kill(&mut self, name: &str) {
        if let Some(mut p) = self.procs.remove(name) {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }

    /// Pauses process `name` (`SIGSTOP`): it stops wherever it is, as a long GC pause or a
    /// stopped VM would stop it.
    pub fn pause(&mut self, name: &str) {
        if let Some(p) = self.procs.get_mut(name) {
            signal(&p.child, libc::SIGSTOP);
            p.paused = true;
        }
    }

    /// Resumes a paused process (`SIGCONT`).
    pub fn resume(&mut self, name: &str) {
        if let Some(p) = self.procs.get_mut(name) {
            signal(&p.child, libc::SIGCONT);
            p.paused = false;
        }
    }

    /// Stops process `name` (closes its stdin: a leader resigns) and waits for it to exit.
    pub fn stop_one(&mut self, name: &str) {
        if let Some(mut p) = self.procs.remove(name) {
            if p.paused {
                signal(&p.child, libc::SIGCONT);
            }
            drop(p.stdin.take());
            let _ = p.child.wait();
        }
    }

    /// Whether observer `name`'s last observation is "no leader".
    fn last_saw_no_leader(&self, name: &str) -> bool {
        self.records
            .iter()
            .rev()
            .find_map(|r| match r {
                ElectionRecord::Observed { observer, what, .. } if observer == name => {
                    Some(what == "no_leader")
                }
                _ => None,
            })
            .unwrap_or(false)
    }

    /// Stops every process (candidates first, so that observers see the last leader go),
    /// waits for them, and returns every record.
    pub fn stop(mut self) -> Vec<ElectionRecord> {
        let mut names: Vec<String> = self.procs.keys().cloned().collect();
        names.sort_by_key(|n| matches!(self.specs[n].role, Role::Observer { .. }));
        let candidates: Vec<String> = names
            .iter()
            .filter(|n| matches!(self.specs[*n].role, Role::Candidate(_)))
            .cloned()
            .collect();
        for name in &candidates {
            if let Some(p) = self.procs.get_mut(name) {
                if p.paused {
                    signal(&p.child, libc::SIGCONT);
                }
                drop(p.stdin.take());
            }
        }
        for name in &candidates {
            if let Some(mut p) = self.procs.remove(name) {
                let _ = p.child.wait();
            }
        }
        // Observers see the last leader resign before they stop.
        let observers: Vec<String> = names
            .iter()
            .filter(|n| matches!(self.specs[*n].role, Role::Observer { .. }))
            .cloned()
            .collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !observers.iter().all(|o| self.last_saw_no_leader(o)) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.collect(left) {
                break;
            }
        }
        for name in names {
            self.stop_one(&name);
        }
        while self.collect(Duration::from_millis(500)) {}
        std::mem::take(&mut self.records)
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for p in self.procs.values_mut() {
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
