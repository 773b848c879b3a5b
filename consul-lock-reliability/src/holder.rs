//! One lease holder of the history checker: a loop that takes one of a few keys, holds it a
//! moment while it samples `is_held()`, writes through the lock's fence, and releases it,
//! printing one [`Record`] per acquisition as a JSON line. The `history-holder` binary runs it
//! as a process of its own, so that a test can pause it (`SIGSTOP`) or freeze its agent.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consul_lock::{Client, Error, Lock, LostReason};

use crate::clock::monotonic_ns;
use crate::lease_history::{Acquisition, FencedWrite, Record};

/// What a holder does.
#[derive(Clone, Debug)]
pub struct HolderConfig {
    /// The holder's name, in its records.
    pub name: String,
    /// The agent it talks to, in its records.
    pub agent: String,
    /// Where the locks are (`prefix + "k0"`, …).
    pub prefix: String,
    /// Where the fenced writes go (`data_prefix + "k0"`, …).
    pub data_prefix: String,
    /// How many keys.
    pub keys: usize,
    /// The lock timeout (session TTL).
    pub lock_timeout: Duration,
    /// Each acquire's timeout.
    pub acquire_timeout: Duration,
    /// How long each acquisition is held (sampling `is_held()` every 10 ms).
    pub hold: Duration,
    /// Whether the locks renew their sessions.
    pub renew: bool,
}

/// Runs the holder until `stop` says so, printing `HOLDING` when it takes a key and one
/// JSON [`Record`] per acquisition on stdout.
pub async fn run(client: Client, config: HolderConfig, stop: Arc<std::sync::atomic::AtomicBool>) {
    let locks: Vec<Lock> = (0..config.keys)
        .map(|k| {
            Lock::new(format!("k{k}"))
                .client(&client)
                .key_prefix(config.prefix.clone())
                .lock_timeout(config.lock_timeout)
                .acquire_timeout(config.acquire_timeout)
                .renew(config.renew)
        })
        .collect();
    let mut seq = 0u64;
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let k = fastrand::usize(..locks.len());
        let started_ns = monotonic_ns();
        let guard = match locks[k].acquire().await {
            Ok(guard) => guard,
            Err(e) => {
                emit(&Record::AcquireError {
                    holder: config.name.clone(),
                    started_ns,
                    ended_ns: monotonic_ns(),
                    error: e.to_string(),
                });
                continue;
            }
        };
        let acquired_ns = monotonic_ns();
        say("HOLDING");
        let mut acq = Acquisition {
            holder: config.name.clone(),
            agent: config.agent.clone(),
            key: guard.key().to_owned(),
            token: guard.fencing_token(),
            acquired_ns,
            last_held_ns: acquired_ns,
            ended_ns: acquired_ns,
            found_lost: false,
            lost: None,
            writes: Vec::new(),
            release_error: None,
        };
        // What lost() says, and when, from a task of its own.
        let heard: Arc<Mutex<Option<(u64, String)>>> = Arc::default();
        let listener = {
            let (lost, heard) = (guard.lost(), heard.clone());
            tokio::spawn(async move {
                let reason = lost.await;
                if reason != LostReason::Released {
                    let mut heard = heard.lock().unwrap_or_else(|e| e.into_inner());
                    *heard = Some((monotonic_ns(), reason.to_string()));
                }
            })
        };
        let sample = |acq: &mut Acquisition| {
            if guard.is_held() {
                acq.last_held_ns = monotonic_ns();
            } else {
                acq.found_lost = true;
            }
        };
        let hold_until = tokio::time::Instant::now() + config.hold;
        while tokio::time::Instant::now() < hold_until && !acq.found_lost {
            sample(&mut acq);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The fenced write, whatever is_held() says: Consul refuses it if the lock is gone.
        seq += 1;
        let data = format!("{}k{k}", config.data_prefix);
        let value = format!("{} token {} write {seq}", config.name, acq.token);
        let at_ns = monotonic_ns();
        let write = match guard.fence().put(&data, value).await {
            Ok(index) => FencedWrite {
                at_ns,
                applied_index: Some(index),
                refused: false,
                error: None,
            },
            Err(Error::LockLost { .. }) => FencedWrite {
                at_ns,
                applied_index: None,
                refused: true,
                error: None,
            },
            Err(e) => FencedWrite {
                at_ns,
                applied_index: None,
                refused: false,
                error: Some(e.to_string()),
            },
        };
        acq.writes.push(write);
        sample(&mut acq);
        acq.ended_ns = monotonic_ns();
        if acq.found_lost {
            // Give lost() the time to say it (it may need Consul to answer).
            let _ = tokio::time::timeout(config.lock_timeout * 2, async {
                while heard.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await;
        }
        acq.lost = heard.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Err(e) = guard.release().await {
            acq.release_error = Some(e.to_string());
        }
        let _ = listener.await;
        emit(&Record::Acquisition(acq));
    }
    consul_lock::flush_releases().await;
}

/// Prints one line and flushes it.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Prints one record as a JSON line and flushes it, so that a killed holder's records stay.
fn emit(record: &Record) {
    let mut out = std::io::stdout().lock();
    if let Ok(line) = serde_json::to_string(record) {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}
