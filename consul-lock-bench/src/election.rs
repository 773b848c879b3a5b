//! The election section: how long a hand-over takes, from the leader process's death
//! (SIGKILL) and from its `resign()` to the next leader's start, measured with candidate
//! processes (this binary with `--election-candidate`) on one machine clock; what client-go's
//! defaults would give (modelled, not measured); and the Raft writes per second of an idle
//! election (from the server's Raft index, `raft.rs`: `Stats.raft.commit_index` on a server agent).

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use consul_lock::{Election, Error, RunEvent};
use serde::Serialize;

use tokio::runtime::Runtime;

use crate::raft::RaftIndex;
use crate::server::Target;
use crate::spread::mono_ns;
use crate::stats::{Samples, Summary};

/// What the section measured.
#[derive(Clone, Debug, Serialize)]
pub struct ElectionResult {
    /// The election's TTL (lease), seconds.
    pub ttl_s: f64,
    /// Candidate processes.
    pub candidates: usize,
    /// SIGKILL of the leader → the next leader's start.
    pub after_kill: Summary,
    /// `resign()` → the next leader's start.
    pub after_resign: Summary,
    /// client-go's defaults (lease 15 s, renew deadline 10 s, retry 2 s with jitter 1.2),
    /// modelled: the leader's death → a standby's acquisition.
    pub client_go_after_kill: Summary,
    /// client-go with `ReleaseOnCancel`, modelled: the release → a standby's acquisition.
    pub client_go_after_release: Summary,
    /// Raft commits per second with nobody campaigning (the agent's own writes).
    pub baseline_raft_writes_per_s: Option<f64>,
    /// Raft commits per second with a leader and the other candidates waiting, idle.
    pub idle_raft_writes_per_s: Option<f64>,
    /// How long each Raft window lasted, seconds.
    pub raft_window_s: f64,
    /// Why the Raft numbers are missing, when they are.
    pub raft_note: Option<String>,
}

/// How long candidates get to resign and end once told to, before they are killed.
const CANDIDATE_EXIT_LIMIT: Duration = Duration::from_secs(30);

/// One candidate process.
struct Candidate {
    child: Child,
    stdin: Option<ChildStdin>,
}

/// A line a candidate printed, with its index.
enum Said {
    Started { who: usize, at_ns: u64 },
    Resigning { who: usize, at_ns: u64 },
}

struct Candidates {
    target_url: String,
    key: String,
    ttl: Duration,
    procs: Vec<Option<Candidate>>,
    tx: std::sync::mpsc::Sender<Said>,
    rx: Receiver<Said>,
}

impl Candidates {
    fn start(&mut self, who: usize) -> Result<(), String> {
        let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
        let mut child = Command::new(exe)
            .args(["--election-candidate", &self.key])
            .args(["--election-ttl-secs", &self.ttl.as_secs_f64().to_string()])
            .env("CONSUL_HTTP_ADDR", &self.target_url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start a candidate: {e}"))?;
        let stdout = child.stdout.take().ok_or("a candidate without stdout")?;
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut parts = line.split(' ');
                let said = match (parts.next(), parts.next().and_then(|n| n.parse().ok())) {
                    (Some("STARTED"), Some(at_ns)) => Said::Started { who, at_ns },
                    (Some("RESIGNING"), Some(at_ns)) => Said::Resigning { who, at_ns },
                    _ => continue,
                };
                if tx.send(said).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        self.procs[who] = Some(Candidate { child, stdin });
        Ok(())
    }

    fn kill(&mut self, who: usize) {
        if let Some(mut c) = self.procs[who].take() {
            let _ = c.child.kill();
            let _ = c.child.wait();
        }
    }

    /// Waits for the next `Started` (skipping other lines), up to `limit`.
    fn started(&self, limit: Duration) -> Result<(usize, u64), String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(Said::Started { who, at_ns }) => return Ok((who, at_ns)),
                Ok(Said::Resigning { .. }) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    return Err(format!("no new leader within {limit:?}"))
                }
            }
        }
    }

    /// Tells `who` to resign; returns when it said it does, with the time.
    fn resign(&mut self, who: usize, limit: Duration) -> Result<u64, String> {
        if let Some(stdin) = self.procs[who].as_mut().and_then(|c| c.stdin.as_mut()) {
            writeln!(stdin, "resign").map_err(|e| format!("cannot tell the leader: {e}"))?;
        }
        match self.rx.recv_timeout(limit) {
            Ok(Said::Resigning { who: said, at_ns }) if said == who => Ok(at_ns),
            _ => Err("the leader did not say it resigned".into()),
        }
    }
}

impl Drop for Candidates {
    fn drop(&mut self) {
        // Every candidate is told at once (its stdin closes: it resigns), then each gets
        // until a common deadline to end before it is killed, so a stuck one cannot hang the
        // bench.
        let mut left: Vec<Candidate> = self.procs.iter_mut().filter_map(Option::take).collect();
        for c in &mut left {
            drop(c.stdin.take());
        }
        let deadline = Instant::now() + CANDIDATE_EXIT_LIMIT;
        for mut c in left {
            while matches!(c.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(c.child.try_wait(), Ok(None)) {
                eprintln!(
                    "election bench: a candidate (pid {}) did not end within {CANDIDATE_EXIT_LIMIT:?} of being told to; killed",
                    c.child.id()
                );
                let _ = c.child.kill();
            }
            let _ = c.child.wait();
        }
    }
}

/// Runs the section: `rounds` kills and `rounds` resignations among 3 candidates, then the
/// Raft windows of `window` each (skipped when zero).
pub fn run(
    target: &Target,
    rt: &Runtime,
    raft: &RaftIndex,
    key: &str,
    ttl: Duration,
    rounds: usize,
    window: Duration,
) -> Result<ElectionResult, String> {
    let raft_before = if window.is_zero() {
        Err("not measured in this run (--smoke)".to_owned())
    } else {
        raft_writes_per_s(rt, raft, window)
    };
    let (tx, rx) = channel();
    let n = 3;
    let mut c = Candidates {
        target_url: target.url.clone(),
        key: key.to_owned(),
        ttl,
        procs: (0..n).map(|_| None).collect(),
        tx,
        rx,
    };
    for who in 0..n {
        c.start(who)?;
    }
    // A dead leader's session ends within 2 × TTL; an election of the servers may add more.
    let limit = ttl * 3 + Duration::from_secs(10);
    let (mut leader, _) = c.started(limit)?;
    let (mut kills, mut resigns) = (Samples::default(), Samples::default());
    // The kills come at a uniform point of the leader's renewal period (it renews every half
    // TTL), as a crash of a long-running leader would: right after the election every kill
    // would meet a lease just renewed, the worst case.
    let mut phase = XorShift::seeded(u64::from(std::process::id()) ^ mono_ns());
    for round in 0..rounds * 2 {
        let (was, t0) = if round % 2 == 0 {
            std::thread::sleep(ttl.mul_f64(phase.next() / 2.0)); // the kill's point in the period
            let t0 = mono_ns();
            c.kill(leader);
            (leader, t0)
        } else {
            (leader, c.resign(leader, limit)?)
        };
        let (next, at_ns) = c.started(limit)?;
        let took = Duration::from_nanos(at_ns.saturating_sub(t0));
        if round % 2 == 0 {
            kills.push(took);
        } else {
            resigns.push(took);
        }
        progress!(
            "  {} of the leader → next leader: {:.3} s",
            if round % 2 == 0 {
                "SIGKILL"
            } else {
                "resign()"
            },
            took.as_secs_f64()
        );
        c.kill(was); // a resigned candidate has exited; reap it
        c.start(was)?;
        leader = next;
    }
    let raft_idle = if window.is_zero() {
        Err("not measured in this run (--smoke)".to_owned())
    } else {
        raft_writes_per_s(rt, raft, window)
    };
    drop(c);
    let raft_note = match (&raft_before, &raft_idle) {
        (Err(e), _) | (_, Err(e)) => Some(e.clone()),
        _ => None,
    };
    let (kill_model, release_model) = client_go_model(10_000);
    Ok(ElectionResult {
        ttl_s: ttl.as_secs_f64(),
        candidates: n,
        after_kill: kills.summary(),
        after_resign: resigns.summary(),
        client_go_after_kill: kill_model.summary(),
        client_go_after_release: release_model.summary(),
        baseline_raft_writes_per_s: raft_before.ok(),
        idle_raft_writes_per_s: raft_idle.ok(),
        raft_window_s: window.as_secs_f64(),
        raft_note,
    })
}

/// Raft commits per second over `window`, from the server's Raft index (see `raft.rs`).
fn raft_writes_per_s(rt: &Runtime, raft: &RaftIndex, window: Duration) -> Result<f64, String> {
    let before = rt.block_on(raft.read())?;
    let started = Instant::now();
    std::thread::sleep(window); // the measurement window itself
    let after = rt.block_on(raft.read())?;
    let writes = raft.writes_between(Some(before), Some(after)).unwrap_or(0);
    Ok(writes as f64 / started.elapsed().as_secs_f64())
}

/// client-go's defaults, modelled: lease 15 s, retry period 2 s with jitter factor 1.2 (each
/// wait 2–4.4 s), two standbys trying at random phases. The leader renews every 2 s and dies
/// (or releases, with `ReleaseOnCancel`) a uniform time after its last renewal. A standby
/// counts the lease from its first try after that renewal (client-go's observed time) and
/// takes it at its first try 15 s later; after a release, at its first try after it. Returns
/// (death → acquisition, release → acquisition).
fn client_go_model(n: usize) -> (Samples, Samples) {
    const LEASE: f64 = 15.0;
    const RETRY: f64 = 2.0;
    const JITTER: f64 = 1.2;
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let (mut kills, mut releases) = (Samples::default(), Samples::default());
    for _ in 0..n {
        // The last renewal at 0; the death (or release) at `end`.
        let end = rng.next() * RETRY;
        let (mut kill, mut release) = (f64::MAX, f64::MAX);
        for _ in 0..2 {
            let phase = rng.next();
            let mut wait = || RETRY + rng.next() * RETRY * JITTER;
            // The first try after the renewal: a uniform phase within one wait.
            let mut t = phase * wait();
            let expires = t + LEASE;
            let mut after_end = None;
            loop {
                if after_end.is_none() && t >= end {
                    after_end = Some(t);
                }
                if t >= expires && after_end.is_some() {
                    break;
                }
                t += wait();
            }
            kill = kill.min(t - end);
            release = release.min(after_end.unwrap_or(t) - end);
        }
        kills.push(Duration::from_secs_f64(kill));
        releases.push(Duration::from_secs_f64(release));
    }
    (kills, releases)
}

/// A tiny deterministic generator for the model (uniform in [0, 1)).
struct XorShift(u64);

impl XorShift {
    /// A generator from any seed (splitmix64 spreads it: small seeds would start near 0).
    fn seeded(seed: u64) -> XorShift {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        XorShift((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `--election-candidate KEY`: one candidate process. Prints `STARTED <ns>` when its work
/// starts (elected), and `RESIGNING <ns>` right before it resigns when told (`resign` on
/// stdin); stops (resigning) when stdin closes.
pub fn child(target: &Target, key: &str, ttl: Duration) -> Result<(), String> {
    let client = target
        .client_builder()?
        .session_ttl_min(ttl.min(Duration::from_secs(10)))
        .build()
        .map_err(|e| format!("cannot build the client: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build the tokio runtime: {e}"))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut lines = std::io::stdin().lock().lines();
        if let Some(Ok(line)) = lines.next() {
            if line.trim() == "resign" {
                println!("RESIGNING {}", mono_ns());
            }
        }
        let _ = stop.send(());
    });
    let election = Election::new("bench")
        .key(key.to_owned())
        .client(&client)
        .ttl(ttl);
    let runner = election
        .runner()
        .on_event(|event| {
            if let RunEvent::Started { .. } = event {
                println!("STARTED {}", mono_ns());
            }
        })
        .until(async move {
            let _ = stopped.await;
        });
    rt.block_on(runner.run(|leadership| async move {
        leadership.stopping().await;
        Ok::<(), Error>(())
    }))
    .map_err(|e| e.to_string())?;
    // On this runtime: a campaign stopped mid-request hands its clean-up to tasks of the
    // runtime it ran on, which run only while the runtime is driven (a blocking flush after
    // `block_on` returned would wait for them forever).
    rt.block_on(consul_lock::flush_releases());
    Ok(())
}
