//! The failover workload: tasks that acquire, hold and release a few keys over and over
//! while a fault schedule (a leader election, a client agent restart) runs beside them, and
//! the summary that counts what the tasks saw and checks the holds.
//!
//! The tests in `tests/failover.rs` (a real Consul cluster) and
//! `tests/failover_testserver.rs` (the embedded test server's election fault) drive it.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use consul_lock::{Client, Lock};

use crate::clock::{monotonic_ns, ms_between};
use crate::history::{check, Hold, Verdict};
use crate::support::Leftovers;

/// What the workload does.
#[derive(Clone, Debug)]
pub struct WorkloadConfig {
    /// Concurrent tasks.
    pub tasks: usize,
    /// Keys they share (each acquisition picks one at random).
    pub keys: usize,
    /// Each acquire's timeout.
    pub acquire_timeout: Duration,
    /// Each lock's timeout (session TTL).
    pub lock_timeout: Duration,
    /// How long each acquisition is held.
    pub hold: Duration,
}

impl WorkloadConfig {
    /// The failover scenario's workload: 8 tasks over 3 keys, acquire timeout 15 s, lock
    /// timeout 10 s, hold 3 ms.
    #[must_use]
    pub fn failover() -> WorkloadConfig {
        WorkloadConfig {
            tasks: 8,
            keys: 3,
            acquire_timeout: Duration::from_secs(15),
            lock_timeout: Duration::from_secs(10),
            hold: Duration::from_millis(3),
        }
    }
}

/// One acquire attempt.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// When the acquire was called ([`monotonic_ns`]).
    pub start_ns: u64,
    /// When it returned.
    pub end_ns: u64,
    /// Whether it returned a guard.
    pub ok: bool,
}

/// Everything the tasks saw.
#[derive(Clone, Debug, Default)]
pub struct WorkloadReport {
    /// Every hold, for [`check`].
    pub holds: Vec<Hold>,
    /// Every acquire attempt.
    pub attempts: Vec<Attempt>,
    /// Every acquire error (`Display` text).
    pub acquire_errors: Vec<String>,
    /// Every error an explicit `guard.release().await` returned.
    pub release_errors: Vec<String>,
}

/// The running tasks; [`stop`](Workload::stop) ends them and collects their report.
#[derive(Debug)]
pub struct Workload {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<WorkloadReport>>,
}

impl Workload {
    /// Starts `config.tasks` tasks on the current tokio runtime, locking
    /// `prefix + "k0"…` through `client`: the even ones on the client's shared session (when
    /// the lock timeout is at least its TTL), the odd ones each lock with a session of its own,
    /// so that both ways of holding a key meet the same faults.
    #[must_use]
    pub fn start(client: &Client, prefix: &str, config: &WorkloadConfig) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..config.tasks)
            .map(|task| {
                let locks: Vec<Lock> = (0..config.keys)
                    .map(|k| {
                        Lock::new(format!("k{k}"))
                            .client(client)
                            .key_prefix(prefix)
                            .acquire_timeout(config.acquire_timeout)
                            .lock_timeout(config.lock_timeout)
                            .own_session(task % 2 == 1)
                    })
                    .collect();
                let stop = stop.clone();
                let hold = config.hold;
                tokio::spawn(run_task(task as u32, locks, hold, stop))
            })
            .collect();
        Workload { stop, tasks }
    }

    /// Tells the tasks to stop after their current acquisition and waits for them.
    ///
    /// # Panics
    ///
    /// When a task panicked.
    pub async fn stop(self) -> WorkloadReport {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = WorkloadReport::default();
        for t in self.tasks {
            let r = t.await.expect("a workload task panicked");
            all.holds.extend(r.holds);
            all.attempts.extend(r.attempts);
            all.acquire_errors.extend(r.acquire_errors);
            all.release_errors.extend(r.release_errors);
        }
        all
    }
}

async fn run_task(
    task: u32,
    locks: Vec<Lock>,
    hold: Duration,
    stop: Arc<AtomicBool>,
) -> WorkloadReport {
    let mut report = WorkloadReport::default();
    while !stop.load(Ordering::SeqCst) {
        let lock = &locks[fastrand::usize(..locks.len())];
        let start_ns = monotonic_ns();
        let result = lock.acquire().await;
        let end_ns = monotonic_ns();
        report.attempts.push(Attempt {
            start_ns,
            end_ns,
            ok: result.is_ok(),
        });
        let guard = match result {
            Ok(guard) => guard,
            Err(e) => {
                report.acquire_errors.push(e.to_string());
                continue;
            }
        };
        tokio::time::sleep(hold).await;
        let hold_end = monotonic_ns();
        report.holds.push(Hold {
            key: guard.key().to_string(),
            token: guard.fencing_token(),
            start_ns: end_ns,
            end_ns: hold_end,
            held_at_end: guard.is_held(),
            pid: std::process::id(),
            task,
            mode: "acquire+release".into(),
        });
        if let Err(e) = guard.release().await {
            report.release_errors.push(e.to_string());
        }
    }
    report
}

/// One fault: from `start_ns` (the kill) until `back_ns` (a leader seen again through the
/// client agent) and `restarted_ns` (the killed agent started again).
#[derive(Clone, Debug)]
pub struct Outage {
    /// When the fault began.
    pub start_ns: u64,
    /// When the cluster answered with a leader again.
    pub back_ns: u64,
    /// When the killed agent was running again.
    pub restarted_ns: u64,
}

/// The numbers a failover scenario reports and asserts on.
#[derive(Clone, Debug)]
pub struct FailoverSummary {
    /// The scenario's name.
    pub name: String,
    /// The outages, in order.
    pub outages: Vec<Outage>,
    /// Successful acquisitions.
    pub acquisitions: usize,
    /// Failed acquisitions.
    pub acquire_errors: usize,
    /// Failed explicit releases.
    pub release_errors: usize,
    /// What the history checker found.
    pub verdict: Verdict,
    /// Per outage: the longest acquire (successful or not) that started between its start
    /// and the next outage's start (or the end of the run).
    pub longest_wait_after: Vec<Duration>,
    /// Per outage: how many acquires started in that window.
    pub attempts_after: Vec<usize>,
    /// The longest an acquire went on past the later of its start and the end of the last
    /// outage it overlapped (the cluster answering with a leader again): the wait the outages
    /// do not explain. An acquire that starts just before the next fault rides out that
    /// fault's election, not the one of the outage it started after.
    pub longest_wait_past_outage: Duration,
    /// What was left in Consul after the run.
    pub leftovers: Leftovers,
    /// The first distinct error texts, for the log.
    pub error_samples: Vec<String>,
}

impl FailoverSummary {
    /// Counts `report` against `outages`.
    #[must_use]
    pub fn new(
        name: &str,
        report: &WorkloadReport,
        outages: &[Outage],
        leftovers: Leftovers,
    ) -> Self {
        let mut longest_wait_after = Vec::new();
        let mut attempts_after = Vec::new();
        for (i, o) in outages.iter().enumerate() {
            let until = outages.get(i + 1).map_or(u64::MAX, |n| n.start_ns);
            let window = report
                .attempts
                .iter()
                .filter(|a| a.start_ns >= o.start_ns && a.start_ns < until);
            attempts_after.push(window.clone().count());
            let longest = window.map(|a| a.end_ns.saturating_sub(a.start_ns)).max();
            longest_wait_after.push(Duration::from_nanos(longest.unwrap_or(0)));
        }
        let longest_wait_past_outage = report
            .attempts
            .iter()
            .map(|a| {
                let explained = outages
                    .iter()
                    .filter(|o| o.start_ns <= a.end_ns && o.back_ns >= a.start_ns)
                    .map(|o| o.back_ns)
                    .fold(a.start_ns, u64::max);
                Duration::from_nanos(a.end_ns.saturating_sub(explained))
            })
            .max()
            .unwrap_or_default();
        let mut error_samples: Vec<String> = Vec::new();
        for e in report.acquire_errors.iter().chain(&report.release_errors) {
            if error_samples.len() < 8 && !error_samples.contains(e) {
                error_samples.push(e.clone());
            }
        }
        FailoverSummary {
            name: name.to_string(),
            outages: outages.to_vec(),
            acquisitions: report.holds.len(),
            acquire_errors: report.acquire_errors.len(),
            release_errors: report.release_errors.len(),
            verdict: check(&report.holds),
            longest_wait_after,
            attempts_after,
            longest_wait_past_outage,
            leftovers,
            error_samples,
        }
    }

    /// Overlapping holds of one key.
    #[must_use]
    pub fn overlaps(&self) -> usize {
        self.count_violations("overlap")
    }

    /// Fencing tokens out of order or given twice.
    #[must_use]
    pub fn token_violations(&self) -> usize {
        self.count_violations("token")
    }

    fn count_violations(&self, what: &str) -> usize {
        self.verdict
            .violations
            .iter()
            .filter(|v| v.contains(what))
            .count()
    }

    /// The longest wait over all outages.
    #[must_use]
    pub fn longest_wait(&self) -> Duration {
        self.longest_wait_after
            .iter()
            .max()
            .copied()
            .unwrap_or_default()
    }

    /// The table printed to the log.
    #[must_use]
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "==== {} ====", self.name);
        let _ = writeln!(
            t,
            "outages {} | acquisitions {} | acquire errors {} | release errors {} | overlaps {} | \
             token-order violations {} | holds reported lost {} | left: {} sessions, {} keys",
            self.outages.len(),
            self.acquisitions,
            self.acquire_errors,
            self.release_errors,
            self.overlaps(),
            self.token_violations(),
            self.verdict.lost,
            self.leftovers.sessions.len(),
            self.leftovers.keys.len()
        );
        let _ = writeln!(
            t,
            "outage | leader back after | restarted after | acquires started | longest wait"
        );
        let first = self.outages.first().map_or(0, |o| o.start_ns);
        for (i, o) in self.outages.iter().enumerate() {
            let _ = writeln!(
                t,
                "{:>6} | {:>14.0} ms | {:>12.0} ms | {:>16} | {:>9.0} ms   (at +{:.1} s)",
                i + 1,
                ms_between(o.start_ns, o.back_ns),
                ms_between(o.start_ns, o.restarted_ns),
                self.attempts_after[i],
                self.longest_wait_after[i].as_secs_f64() * 1e3,
                ms_between(first, o.start_ns) / 1e3
            );
        }
        let _ = writeln!(
            t,
            "longest wait past the end of the outages an acquire overlapped: {:.0} ms",
            self.longest_wait_past_outage.as_secs_f64() * 1e3
        );
        for e in &self.error_samples {
            let _ = writeln!(t, "error: {e}");
        }
        for v in self.verdict.violations.iter().take(8) {
            let _ = writeln!(t, "violation: {v}");
        }
        if !self.leftovers.is_empty() {
            let _ = writeln!(t, "left in Consul: {:?}", self.leftovers);
        }
        t
    }

    /// Asserts the failover promise: no acquire or release error, no overlap, tokens in
    /// order, every acquire after an outage within `max_wait`, nothing left.
    ///
    /// # Panics
    ///
    /// When one of them does not hold (the message is the table).
    pub fn assert_ok(&self, max_wait: Duration) {
        let t = self.table();
        assert_eq!(self.acquire_errors, 0, "acquire errors\n{t}");
        assert_eq!(self.release_errors, 0, "release errors\n{t}");
        assert_eq!(self.overlaps(), 0, "overlapping holds\n{t}");
        assert_eq!(
            self.token_violations(),
            0,
            "fencing tokens out of order\n{t}"
        );
        assert!(self.verdict.ok(), "history violations\n{t}");
        assert!(
            self.longest_wait() <= max_wait,
            "an acquire after an outage waited {:?} (> {max_wait:?})\n{t}",
            self.longest_wait()
        );
        assert!(self.leftovers.is_empty(), "left in Consul\n{t}");
        assert!(self.acquisitions > 0, "no acquisition at all\n{t}");
    }
}
