//! The history of lease holders under faults, and its checker: what each holder process saw
//! of each acquisition (the fencing token, when it was acquired, the last moment `is_held()`
//! said true, the fenced writes it made, how the lock ended and whether `lost()` said so), and
//! the checks that prove the lease's promise from it across processes.
//!
//! The overlap and token checks are [`history::check`](crate::history::check)'s, run on each
//! acquisition's believed interval: from the acquire's return to the last `true` of
//! `is_held()`. All times are [`monotonic_ns`](crate::clock::monotonic_ns), one clock for every
//! process of the machine.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::history::{check, Hold};
use crate::support::Leftovers;

/// One fenced write of an acquisition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FencedWrite {
    /// When it was sent.
    pub at_ns: u64,
    /// The `ModifyIndex` Consul applied it at, if it did.
    pub applied_index: Option<u64>,
    /// Whether Consul refused it because the lock was gone (`Error::LockLost`).
    pub refused: bool,
    /// Any other error (the write may or may not have been applied).
    pub error: Option<String>,
}

/// One acquisition, as its holder saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acquisition {
    /// The holder process's name (`h1`…) and the agent it talks to.
    pub holder: String,
    /// The agent (`c1`, `s2`, `test server`).
    pub agent: String,
    /// The full Consul key.
    pub key: String,
    /// The fencing token.
    pub token: u64,
    /// When the acquire returned.
    pub acquired_ns: u64,
    /// The last moment `is_held()` said true (read right after it returned).
    pub last_held_ns: u64,
    /// When the holder stopped holding: the release was called, or it found the lock gone.
    pub ended_ns: u64,
    /// Whether the holder found the lock gone (`is_held()` false) before releasing it.
    pub found_lost: bool,
    /// What `lost()` said before the release, and when: `None` when it said nothing then
    /// (the lock was released while held).
    pub lost: Option<(u64, String)>,
    /// The fenced writes made under this acquisition.
    pub writes: Vec<FencedWrite>,
    /// The error `release()` returned, if any.
    pub release_error: Option<String>,
}

/// One line a holder process prints: an acquisition, or a failed acquire.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// A finished acquisition.
    Acquisition(Acquisition),
    /// An acquire that returned an error.
    AcquireError {
        /// The holder.
        holder: String,
        /// When the acquire started and returned.
        started_ns: u64,
        /// When it returned.
        ended_ns: u64,
        /// The error's text.
        error: String,
    },
}

/// What [`check_history`] found.
#[derive(Clone, Debug, Default)]
pub struct HistoryVerdict {
    /// Acquisitions checked.
    pub acquisitions: usize,
    /// Failed acquires.
    pub acquire_errors: Vec<String>,
    /// Failed releases.
    pub release_errors: Vec<String>,
    /// Fenced writes Consul applied.
    pub writes_applied: usize,
    /// Fenced writes Consul refused because the lock was gone.
    pub stale_writes_refused: usize,
    /// Fenced writes that failed otherwise (unreachable, 5xx).
    pub writes_failed: usize,
    /// Acquisitions whose holder found the lock gone, and how many of them `lost()` reported.
    pub losses: usize,
    /// Of [`losses`](Self::losses), how many `lost()` reported.
    pub losses_reported: usize,
    /// What was left in Consul.
    pub leftovers: Leftovers,
    /// Every violation, for a person.
    pub violations: Vec<String>,
}

/// The acquisitions worth a look: those whose holder found the lock gone, or whose fenced
/// write was not applied, one line each (when relative to `begin_ns`).
#[must_use]
pub fn notable(acquisitions: &[Acquisition], begin_ns: u64) -> Vec<String> {
    let secs = |ns: u64| ns.saturating_sub(begin_ns) as f64 / 1e9;
    acquisitions
        .iter()
        .filter(|a| a.found_lost || a.writes.iter().any(|w| w.applied_index.is_none()))
        .map(|a| {
            let writes: Vec<String> = a
                .writes
                .iter()
                .map(|w| match (&w.applied_index, w.refused, &w.error) {
                    (Some(i), _, _) => format!("applied at {i}"),
                    (None, true, _) => format!("refused by Consul at +{:.1} s", secs(w.at_ns)),
                    (None, false, e) => format!(
                        "failed at +{:.1} s: {}",
                        secs(w.at_ns),
                        e.as_deref().unwrap_or("?")
                    ),
                })
                .collect();
            format!(
                "{} on {}: {} token {} acquired +{:.1} s, is_held() last true +{:.1} s, \
                 ended +{:.1} s; lost(): {}; write {}",
                a.holder,
                a.agent,
                a.key.rsplit('/').next().unwrap_or(&a.key),
                a.token,
                secs(a.acquired_ns),
                secs(a.last_held_ns),
                secs(a.ended_ns),
                a.lost
                    .as_ref()
                    .map_or("nothing".to_owned(), |(at, why)| format!(
                        "+{:.1} s {why}",
                        secs(*at)
                    )),
                writes.join(", ")
            )
        })
        .collect()
}

impl HistoryVerdict {
    /// Whether the history holds no violation, nothing was left and no acquire or release
    /// failed.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// The summary printed to the log.
    #[must_use]
    pub fn table(&self, name: &str) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "==== {name} ====");
        let _ = writeln!(
            t,
            "acquisitions {} | acquire errors {} | release errors {} | fenced writes applied {} | \
             stale fenced writes refused {} | fenced writes failed otherwise {} | losses found {} \
             (reported by lost(): {}) | left: {} sessions, {} keys | violations {}",
            self.acquisitions,
            self.acquire_errors.len(),
            self.release_errors.len(),
            self.writes_applied,
            self.stale_writes_refused,
            self.writes_failed,
            self.losses,
            self.losses_reported,
            self.leftovers.sessions.len(),
            self.leftovers.keys.len(),
            self.violations.len()
        );
        for e in self
            .acquire_errors
            .iter()
            .chain(&self.release_errors)
            .take(6)
        {
            let _ = writeln!(t, "error: {e}");
        }
        for v in self.violations.iter().take(12) {
            let _ = writeln!(t, "violation: {v}");
        }
        t
    }
}

/// Checks a history of acquisitions (of several processes) and what was left in Consul:
///
/// - no two acquisitions of one key overlap from the acquire's return to the last `true` of
///   `is_held()`, and fencing tokens grow in the order of the acquisitions
///   ([`history::check`](crate::history::check));
/// - no fenced write was applied after the next acquisition of its key (its applied index is
///   below the next holder's fencing token);
/// - a holder that found its lock gone, or whose key was taken by the next holder before it
///   released it, heard of it from `lost()`;
/// - no acquire and no release returned an error;
/// - nothing was left in Consul.
///
/// ```
/// use consul_lock_reliability::lease_history::{check_history, Acquisition, FencedWrite};
/// let acq = |token, from, to, write| Acquisition {
///     holder: "h1".into(), agent: "c1".into(), key: "k".into(), token,
///     acquired_ns: from, last_held_ns: to, ended_ns: to, found_lost: false, lost: None,
///     writes: vec![FencedWrite { at_ns: from, applied_index: Some(write), refused: false, error: None }],
///     release_error: None,
/// };
/// let left = consul_lock_reliability::support::Leftovers::default();
/// assert!(check_history(&[acq(10, 0, 5, 11), acq(20, 6, 9, 21)], &[], left.clone()).ok());
/// // The first holder's write applied at 25, after the second holder took the key at 20.
/// assert!(!check_history(&[acq(10, 0, 5, 25), acq(20, 6, 9, 21)], &[], left).ok());
/// ```
#[must_use]
pub fn check_history(
    acquisitions: &[Acquisition],
    acquire_errors: &[String],
    leftovers: Leftovers,
) -> HistoryVerdict {
    let mut v = HistoryVerdict {
        acquisitions: acquisitions.len(),
        acquire_errors: acquire_errors.to_vec(),
        leftovers,
        ..HistoryVerdict::default()
    };
    let holds: Vec<Hold> = acquisitions
        .iter()
        .enumerate()
        .map(|(i, a)| Hold {
            key: a.key.clone(),
            token: a.token,
            start_ns: a.acquired_ns,
            end_ns: a.last_held_ns.max(a.acquired_ns),
            held_at_end: true,
            pid: u32::try_from(i).unwrap_or(u32::MAX),
            task: 0,
            mode: format!("{} on {}", a.holder, a.agent),
        })
        .collect();
    v.violations.extend(check(&holds).violations);
    let mut by_key: BTreeMap<&str, Vec<&Acquisition>> = BTreeMap::new();
    for a in acquisitions {
        by_key.entry(&a.key).or_default().push(a);
        for w in &a.writes {
            match (w.applied_index, w.refused) {
                (Some(_), _) => v.writes_applied += 1,
                (None, true) => v.stale_writes_refused += 1,
                (None, false) => v.writes_failed += 1,
            }
        }
        if let Some(e) = &a.release_error {
            v.release_errors
                .push(format!("{} (token {}): {e}", a.holder, a.token));
        }
        if a.found_lost {
            v.losses += 1;
            if a.lost.is_some() {
                v.losses_reported += 1;
            } else {
                v.violations.push(format!(
                    "{} on {} found lock {} (token {}) gone, but lost() never said so",
                    a.holder, a.agent, a.key, a.token
                ));
            }
        }
    }
    for (key, mut list) in by_key {
        list.sort_by_key(|a| a.token);
        for pair in list.windows(2) {
            let (a, next) = (pair[0], pair[1]);
            for w in &a.writes {
                if let Some(index) = w.applied_index.filter(|&i| i > next.token) {
                    v.violations.push(format!(
                        "key {key}: {}'s fenced write (token {}) applied at index {index}, after \
                         {} took the key at {}",
                        a.holder, a.token, next.holder, next.token
                    ));
                }
            }
            // The next holder took the key while this one still had its guard: this one's
            // lock had ended, and lost() must have said so.
            if next.acquired_ns < a.ended_ns && a.lost.is_none() {
                v.violations.push(format!(
                    "key {key}: {} (token {}) was not told by lost() that its lock ended, yet {} \
                     took the key {:.3} s before {0} stopped holding",
                    a.holder,
                    a.token,
                    next.holder,
                    (a.ended_ns - next.acquired_ns) as f64 / 1e9
                ));
            }
        }
    }
    if !v.acquire_errors.is_empty() {
        v.violations
            .push(format!("{} acquire(s) failed", v.acquire_errors.len()));
    }
    if !v.release_errors.is_empty() {
        v.violations
            .push(format!("{} release(s) failed", v.release_errors.len()));
    }
    if !v.leftovers.is_empty() {
        v.violations
            .push(format!("left in Consul after the run: {:?}", v.leftovers));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acq(holder: &str, token: u64, from: u64, to: u64) -> Acquisition {
        Acquisition {
            holder: holder.into(),
            agent: "c1".into(),
            key: "k".into(),
            token,
            acquired_ns: from,
            last_held_ns: to,
            ended_ns: to,
            found_lost: false,
            lost: None,
            writes: Vec::new(),
            release_error: None,
        }
    }

    #[test]
    fn overlaps_and_unreported_losses_are_found() {
        let left = Leftovers::default();
        assert!(check_history(
            &[acq("a", 1, 0, 10), acq("b", 2, 11, 20)],
            &[],
            left.clone()
        )
        .ok());
        let v = check_history(&[acq("a", 1, 0, 10), acq("b", 2, 5, 20)], &[], left.clone());
        assert!(v.violations.iter().any(|v| v.contains("overlap")), "{v:?}");
        // a held its guard until 30 and never heard of the loss, while b took the key at 15.
        let mut a = acq("a", 1, 0, 10);
        a.ended_ns = 30;
        let v = check_history(&[a.clone(), acq("b", 2, 15, 20)], &[], left.clone());
        assert!(v.violations.iter().any(|v| v.contains("not told")), "{v:?}");
        a.lost = Some((12, "expired".into()));
        a.found_lost = true;
        let v = check_history(&[a, acq("b", 2, 15, 20)], &[], left);
        assert!(v.ok(), "{v:?}");
        assert_eq!((v.losses, v.losses_reported), (1, 1));
    }
}
