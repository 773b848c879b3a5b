//! What one process of the election workload does (the `election-candidate` binary): a
//! candidate runs the election's `Runner` with a work that samples `is_leader()` every few
//! milliseconds and writes through the leader's fence, and prints an [`ElectionRecord`] per
//! event; an observer prints what `observe()` yields. Both stop when told (their stdin
//! closed): a leader then resigns.

use std::io::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use consul_lock::{Client, Election, Error, Leadership, Observation, RunEvent, StopCause};
use futures::StreamExt as _;

use crate::clock::monotonic_ns;
use crate::election_history::ElectionRecord;

/// What a candidate does.
#[derive(Clone, Debug)]
pub struct CandidateConfig {
    /// Its name, in its records.
    pub name: String,
    /// The election's whole key.
    pub key: String,
    /// Where its fenced writes go.
    pub data_key: String,
    /// The election's TTL.
    pub ttl: Duration,
    /// The grace.
    pub grace: Duration,
    /// How long its work takes to wind down once told to stop (longer than the grace: the
    /// runner cancels it).
    pub wind_down: Duration,
}

/// Prints one record as a JSON line (stdout is line-buffered by the reader: flush each).
pub fn print(record: &ElectionRecord) {
    let mut out = std::io::stdout().lock();
    if let Ok(line) = serde_json::to_string(record) {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// The state of the current leadership's work, shared with the runner's event callback.
#[derive(Default)]
struct Work {
    last_leader_ns: u64,
    told_ns: Option<u64>,
    work_end_ns: u64,
}

/// Every how often the work samples `is_leader()`.
const STEP: Duration = Duration::from_millis(2);
/// Every how often a leader writes through its fence, and prints that it still leads.
const BEAT: Duration = Duration::from_millis(50);

/// Runs a candidate until `stop` completes, then resigns. Returns the runner's error.
///
/// # Errors
///
/// What the runner returns: an error campaigning again cannot cure.
pub async fn run_candidate(
    client: Client,
    config: CandidateConfig,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let election = Election::new(config.name.clone())
        .key(config.key.clone())
        .client(&client)
        .ttl(config.ttl)
        .grace(config.grace);
    let work_state = Arc::new(Mutex::new(Work::default()));
    let events_state = work_state.clone();
    let name = config.name.clone();
    let pid = std::process::id();
    let grace_ms = config.grace.as_millis() as u64;
    let on_event = move |event: RunEvent| {
        if let RunEvent::Stopped {
            fencing_token,
            cause,
            cancelled,
            took,
            ..
        } = event
        {
            let w = events_state.lock().unwrap_or_else(PoisonError::into_inner);
            print(&ElectionRecord::Stopped {
                candidate: name.clone(),
                pid,
                token: fencing_token,
                last_leader_ns: w.last_leader_ns,
                told_ns: w.told_ns,
                work_end_ns: w.work_end_ns,
                cause: cause_name(&cause).into(),
                cancelled,
                took_ms: took.as_secs_f64() * 1000.0,
                grace_ms,
            });
        }
    };
    let runner = election.runner().on_event(on_event).until(stop);
    let result = runner
        .run(|leadership| lead(leadership, config.clone(), work_state.clone()))
        .await;
    consul_lock::flush_releases().await;
    result.map(drop)
}

fn cause_name(cause: &StopCause) -> &'static str {
    match cause {
        StopCause::Lost(_) => "lost",
        StopCause::Expiring => "expiring",
        StopCause::Resigned => "resigned",
        _ => "other",
    }
}

/// The work of one leadership.
async fn lead(
    leadership: Leadership,
    config: CandidateConfig,
    state: Arc<Mutex<Work>>,
) -> Result<(), Error> {
    let pid = std::process::id();
    let token = leadership.fencing_token();
    let started = monotonic_ns();
    if leadership.is_leader() {
        *state.lock().unwrap_or_else(PoisonError::into_inner) = Work {
            last_leader_ns: started,
            told_ns: None,
            work_end_ns: started,
        };
        print(&ElectionRecord::Started {
            candidate: config.name.clone(),
            pid,
            token,
            session: leadership.session_id().to_owned(),
            at_ns: started,
        });
    }
    let fence = leadership.fence();
    let mut next_beat = started;
    loop {
        // The time is read before the check: is_leader() said true at least until then.
        let now = monotonic_ns();
        let leads = leadership.is_leader();
        let told = {
            let mut w = state.lock().unwrap_or_else(PoisonError::into_inner);
            if leads {
                w.last_leader_ns = now;
            }
            w.work_end_ns = now;
            if w.told_ns.is_none() && leadership.stop_cause().is_some() {
                w.told_ns = Some(now);
            }
            w.told_ns
        };
        if let Some(told) = told {
            // Winds down; the runner cancels a wind-down longer than the grace.
            if Duration::from_nanos(now.saturating_sub(told)) >= config.wind_down {
                return Ok(());
            }
        } else if leads && now >= next_beat {
            // Only a sample that said "leader" is reported as one (a process resumed from a
            // pause runs this step before it learns the leadership is gone).
            next_beat = now + BEAT.as_nanos() as u64;
            print(&ElectionRecord::Leading {
                candidate: config.name.clone(),
                pid,
                token,
                last_leader_ns: now,
            });
            match fence.put(config.data_key.clone(), token.to_string()).await {
                Ok(index) => print(&ElectionRecord::Wrote {
                    candidate: config.name.clone(),
                    token,
                    index,
                }),
                Err(Error::LockLost { .. }) => print(&ElectionRecord::Refused {
                    candidate: config.name.clone(),
                    token,
                }),
                Err(_) => {} // in transit (an outage): may or may not have been applied
            }
        }
        tokio::time::sleep(STEP).await;
    }
}

/// Prints what the election's observer yields until `stop` completes.
pub async fn run_observer(
    client: Client,
    name: String,
    key: String,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let election = Election::new(name.clone()).key(key).client(&client);
    let mut observer = election.observe();
    let mut stop = Box::pin(stop);
    loop {
        let next = tokio::select! {
            () = &mut stop => return,
            next = observer.next() => next,
        };
        let at_ns = monotonic_ns();
        let (what, token) = match next {
            Some(Ok(Observation::Leader(l))) => ("leader", Some(l.fencing_token)),
            Some(Ok(Observation::Proclaimed(l))) => ("proclaimed", Some(l.fencing_token)),
            Some(Ok(Observation::NoLeader)) => ("no_leader", None),
            Some(Ok(_)) => continue,
            Some(Err(e)) => {
                print(&ElectionRecord::Failed {
                    name,
                    error: e.to_string(),
                });
                return;
            }
            None => return,
        };
        print(&ElectionRecord::Observed {
            observer: name.clone(),
            at_ns,
            what: what.into(),
            token,
        });
    }
}
