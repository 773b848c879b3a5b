//! The history of lock holds and the checker that proves mutual exclusion and fencing-token
//! order from it.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// One time a lock was held, as its holder saw it.
///
/// `start_ns` is read after the acquire returned and `end_ns` before the release was sent
/// (both [`monotonic_ns`](crate::clock::monotonic_ns)), so the interval lies inside the time
/// the holder really held the key: two intervals of one key that overlap prove a violation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The full Consul key.
    pub key: String,
    /// The fencing token the guard reported.
    pub token: u64,
    /// When the holder started holding (after the acquire returned).
    pub start_ns: u64,
    /// When the holder stopped (before the release).
    pub end_ns: u64,
    /// Whether `is_held()` was still true at `end_ns`.
    pub held_at_end: bool,
    /// The OS process id of the holder.
    pub pid: u32,
    /// The task inside that process.
    pub task: u32,
    /// How the lock was taken and released (`acquire+release`, `try`, `drop`, `hold`, `blocking`).
    pub mode: String,
}

/// What [`check`] found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Verdict {
    /// How many holds were checked.
    pub holds: usize,
    /// How many distinct keys they were on.
    pub keys: usize,
    /// How many processes held a lock at least once.
    pub processes: usize,
    /// How many pairs of consecutive holds of the same key were compared.
    pub handovers: usize,
    /// Holds whose guard said at the end that the lock was no longer held (`is_held()`
    /// false): the library reported the loss, so they are left out of the overlap and order
    /// checks. None are expected without faults.
    pub lost: usize,
    /// Every violation found, described for a person.
    pub violations: Vec<String>,
}

impl Verdict {
    /// Whether no violation was found.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Checks a history:
///
/// - no two holds of one key overlap in time;
/// - per key, fencing tokens strictly increase in the order the holds started;
/// - no two holds (of any key) share a fencing token (the token is the `ModifyIndex` of the
///   acquiring write, unique in the datacenter);
/// - every hold ended after it started.
///
/// Holds whose guard reported the loss (`is_held()` false at the end) are counted in
/// [`Verdict::lost`] and left out of the overlap and order checks: the library's promise is
/// that a guard saying "held" is exclusive.
///
/// ```
/// use consul_lock_reliability::history::{check, Hold};
/// let hold = |token, start_ns, end_ns| Hold {
///     key: "k".into(), token, start_ns, end_ns, held_at_end: true, pid: 1, task: 0, mode: "try".into(),
/// };
/// assert!(check(&[hold(5, 0, 10), hold(9, 11, 20)]).ok());
/// assert!(!check(&[hold(5, 0, 10), hold(9, 9, 20)]).ok()); // overlap
/// assert!(!check(&[hold(9, 0, 10), hold(5, 11, 20)]).ok()); // token went backwards
/// ```
#[must_use]
pub fn check(holds: &[Hold]) -> Verdict {
    let mut verdict = Verdict {
        holds: holds.len(),
        ..Verdict::default()
    };
    let mut by_key: BTreeMap<&str, Vec<&Hold>> = BTreeMap::new();
    let mut by_token: HashMap<u64, &Hold> = HashMap::new();
    let mut pids = std::collections::HashSet::new();
    for h in holds {
        pids.insert(h.pid);
        if h.held_at_end {
            by_key.entry(&h.key).or_default().push(h);
        }
        if h.end_ns < h.start_ns {
            verdict
                .violations
                .push(format!("hold ends before it starts: {h:?}"));
        }
        if !h.held_at_end {
            verdict.lost += 1;
        }
        if let Some(other) = by_token.insert(h.token, h) {
            verdict.violations.push(format!(
                "fencing token {} given twice: {other:?} and {h:?}",
                h.token
            ));
        }
    }
    verdict.keys = holds
        .iter()
        .map(|h| &h.key)
        .collect::<std::collections::HashSet<_>>()
        .len();
    verdict.processes = pids.len();
    for (key, mut list) in by_key {
        list.sort_by_key(|h| (h.start_ns, h.token));
        // The hold that ends last among those seen so far: any later start before its end
        // overlaps it, even if holds in between were short.
        let mut latest_end: Option<&Hold> = None;
        for pair in list.windows(2) {
            verdict.handovers += 1;
            let (prev, next) = (pair[0], pair[1]);
            if next.token <= prev.token {
                verdict.violations.push(format!(
                    "key {key}: token {} (pid {} task {}) started after token {} (pid {} task {}) but is not greater",
                    next.token, next.pid, next.task, prev.token, prev.pid, prev.task
                ));
            }
        }
        for h in &list {
            if let Some(l) = latest_end {
                if h.start_ns < l.end_ns {
                    verdict.violations.push(format!(
                        "key {key}: holds overlap by {:.3} ms: token {} (pid {} task {}, {}) and token {} (pid {} task {}, {})",
                        (l.end_ns - h.start_ns) as f64 / 1e6,
                        l.token, l.pid, l.task, l.mode, h.token, h.pid, h.task, h.mode
                    ));
                }
            }
            if latest_end.is_none_or(|l| h.end_ns > l.end_ns) {
                latest_end = Some(h);
            }
        }
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hold(key: &str, token: u64, start_ns: u64, end_ns: u64) -> Hold {
        Hold {
            key: key.into(),
            token,
            start_ns,
            end_ns,
            held_at_end: true,
            pid: 1,
            task: 0,
            mode: "test".into(),
        }
    }

    #[test]
    fn a_long_hold_overlapping_a_later_one_is_found() {
        // 1: [0, 100], 2: [10, 20] inside it, 3: [30, 40] also inside 1.
        let v = check(&[
            hold("k", 1, 0, 100),
            hold("k", 2, 10, 20),
            hold("k", 3, 30, 40),
        ]);
        assert_eq!(v.violations.len(), 2, "{:?}", v.violations);
    }

    #[test]
    fn keys_are_independent_but_tokens_are_global() {
        let v = check(&[hold("a", 1, 0, 100), hold("b", 2, 10, 20)]);
        assert!(v.ok(), "{:?}", v.violations);
        let v = check(&[hold("a", 1, 0, 10), hold("b", 1, 20, 30)]);
        assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
    }

    #[test]
    fn touching_holds_are_fine_and_lost_holds_are_counted() {
        assert!(check(&[hold("k", 1, 0, 10), hold("k", 2, 10, 20)]).ok());
        let mut lost = hold("k", 1, 0, 10);
        lost.held_at_end = false;
        let v = check(&[lost, hold("k", 2, 5, 20)]);
        assert!(v.ok(), "{:?}", v.violations);
        assert_eq!(v.lost, 1);
    }
}
