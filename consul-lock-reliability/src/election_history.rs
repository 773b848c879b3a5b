//! The history of an election workload (what each candidate and observer process printed)
//! and the checker that proves, from it: no two processes ever believed they led at once
//! (their `is_leader()` intervals never overlap; all processes share one machine clock),
//! leaders' fencing tokens grow, every observer saw every leader once and a no-leader gap
//! between any two, the work of a leader was stopped within its grace once told (by the
//! runner's own measure), and its fenced writes were applied before the next leadership began.
//!
//! A process paused in the middle of a step runs the rest of that step when it is resumed,
//! after the next leader may have started: no library can stop that. What it must not do is
//! act as leader then: `is_leader()` says false (the overlap check), and Consul refuses its
//! fenced writes (the write check).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::clock::ms_between;

/// One line a candidate or observer process prints (JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ElectionRecord {
    /// The work of a new leadership started (`at_ns` is read before a check of
    /// `is_leader()` that said true).
    Started {
        /// The candidate's name.
        candidate: String,
        /// Its OS process id.
        pid: u32,
        /// The leadership's fencing token.
        token: u64,
        /// Its session.
        session: String,
        /// When.
        at_ns: u64,
    },
    /// While leading, every 50 ms: the last moment `is_leader()` said true (read before the
    /// call), so that a killed process leaves its interval behind.
    Leading {
        /// The candidate's name.
        candidate: String,
        /// Its OS process id.
        pid: u32,
        /// The leadership's fencing token.
        token: u64,
        /// The last moment `is_leader()` said true.
        last_leader_ns: u64,
    },
    /// A fenced write of the leader that Consul applied.
    Wrote {
        /// The candidate's name.
        candidate: String,
        /// The leadership's fencing token.
        token: u64,
        /// The write's `ModifyIndex`.
        index: u64,
    },
    /// A fenced write of the leader that Consul refused (`Error::LockLost`).
    Refused {
        /// The candidate's name.
        candidate: String,
        /// The leadership's fencing token.
        token: u64,
    },
    /// The leadership ended (the runner's `Stopped` event).
    Stopped {
        /// The candidate's name.
        candidate: String,
        /// Its OS process id.
        pid: u32,
        /// The leadership's fencing token.
        token: u64,
        /// The last moment `is_leader()` said true.
        last_leader_ns: u64,
        /// When the work was told to stop (`stopping()` completed), if it was.
        told_ns: Option<u64>,
        /// The work's last step (a cancelled work's last step before it was dropped).
        work_end_ns: u64,
        /// Why (`StopCause`, as text).
        cause: String,
        /// Whether the work had to be cancelled.
        cancelled: bool,
        /// From the moment the runner told the work to stop until it was stopped (the
        /// `Stopped` event's `took`), in milliseconds.
        took_ms: f64,
        /// The grace, in milliseconds.
        grace_ms: u64,
    },
    /// What an observer saw.
    Observed {
        /// The observer's name.
        observer: String,
        /// When it saw it.
        at_ns: u64,
        /// `leader`, `proclaimed` or `no_leader`.
        what: String,
        /// The leader's fencing token, for `leader` and `proclaimed`.
        token: Option<u64>,
    },
    /// An error a process could not cure (it then exits).
    Failed {
        /// The candidate's or observer's name.
        name: String,
        /// The error.
        error: String,
    },
}

/// One leadership, assembled from its records.
#[derive(Clone, Debug)]
pub struct Term {
    /// The candidate.
    pub candidate: String,
    /// Its OS process id.
    pub pid: u32,
    /// The fencing token.
    pub token: u64,
    /// When its work started.
    pub start_ns: u64,
    /// The last moment `is_leader()` said true.
    pub last_leader_ns: u64,
    /// When its work was told to stop, if it was (and the process lived to say).
    pub told_ns: Option<u64>,
    /// Its work's last step, when the process lived to say.
    pub work_end_ns: Option<u64>,
    /// Why it ended, when the process lived to say; `None` for a killed leader.
    pub cause: Option<String>,
    /// Whether the work was cancelled.
    pub cancelled: bool,
    /// From telling the work to stop until it was stopped, by the runner.
    pub took_ms: Option<f64>,
    /// The grace, in milliseconds.
    pub grace_ms: u64,
    /// The indexes of the fenced writes Consul applied.
    pub writes: Vec<u64>,
    /// How many fenced writes Consul refused.
    pub refused: usize,
}

/// What [`check`] found.
#[derive(Clone, Debug, Default)]
pub struct ElectionVerdict {
    /// The leaderships, in the order they began.
    pub terms: Vec<Term>,
    /// Observations per observer.
    pub observations: BTreeMap<String, usize>,
    /// Fenced writes applied, and refused.
    pub writes: (usize, usize),
    /// Processes that failed.
    pub failures: Vec<String>,
    /// Every violation, for a person.
    pub violations: Vec<String>,
}

impl ElectionVerdict {
    /// Whether nothing was violated.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.violations.is_empty() && self.failures.is_empty()
    }

    /// A table of the terms and the counts, for the test's output.
    #[must_use]
    pub fn table(&self) -> String {
        let mut out = String::new();
        let first = self.terms.first().map_or(0, |t| t.start_ns);
        let _ = writeln!(
            out,
            "{:>9} {:>8} {:>10} {:>9} {:>10} {:>9}  {:<9} cause",
            "start_s", "token", "candidate", "led_ms", "stop_ms", "gap_ms", "cancelled"
        );
        for (i, t) in self.terms.iter().enumerate() {
            let gap = self
                .terms
                .get(i + 1)
                .map(|n| format!("{:.0}", ms_between(t.last_leader_ns, n.start_ns)))
                .unwrap_or_default();
            let stop = t
                .took_ms
                .map(|took| format!("{took:.0} ms"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{:>9.2} {:>8} {:>10} {:>9.0} {:>10} {:>9}  {:<9} {}",
                ms_between(first, t.start_ns) / 1000.0,
                t.token,
                t.candidate,
                ms_between(t.start_ns, t.last_leader_ns),
                stop,
                gap,
                t.cancelled,
                t.cause.as_deref().unwrap_or("(process killed)")
            );
        }
        let _ = writeln!(
            out,
            "{} leaderships; observations {:?}; fenced writes applied {}, refused {}; {} violation(s)",
            self.terms.len(),
            self.observations,
            self.writes.0,
            self.writes.1,
            self.violations.len()
        );
        for v in &self.violations {
            let _ = writeln!(out, "VIOLATION: {v}");
        }
        for f in &self.failures {
            let _ = writeln!(out, "FAILED: {f}");
        }
        out
    }
}

/// How late a work may end after its grace: the scheduling of two busy cores.
pub const GRACE_SLACK_MS: f64 = 100.0;

/// Assembles the terms from `records` and checks them (see the module docs).
#[must_use]
pub fn check(records: &[ElectionRecord]) -> ElectionVerdict {
    let mut verdict = ElectionVerdict::default();
    let mut terms: BTreeMap<(u32, u64), Term> = BTreeMap::new();
    let mut observed: BTreeMap<String, Vec<(u64, Option<u64>)>> = BTreeMap::new();
    for r in records {
        match r {
            ElectionRecord::Started {
                candidate,
                pid,
                token,
                at_ns,
                ..
            } => {
                terms.insert(
                    (*pid, *token),
                    Term {
                        candidate: candidate.clone(),
                        pid: *pid,
                        token: *token,
                        start_ns: *at_ns,
                        last_leader_ns: *at_ns,
                        told_ns: None,
                        work_end_ns: None,
                        cause: None,
                        cancelled: false,
                        took_ms: None,
                        grace_ms: 0,
                        writes: Vec::new(),
                        refused: 0,
                    },
                );
            }
            ElectionRecord::Leading {
                pid,
                token,
                last_leader_ns,
                ..
            } => {
                if let Some(t) = terms.get_mut(&(*pid, *token)) {
                    t.last_leader_ns = t.last_leader_ns.max(*last_leader_ns);
                }
            }
            ElectionRecord::Stopped {
                pid,
                token,
                last_leader_ns,
                told_ns,
                work_end_ns,
                cause,
                cancelled,
                took_ms,
                grace_ms,
                ..
            } => {
                if let Some(t) = terms.get_mut(&(*pid, *token)) {
                    t.last_leader_ns = t.last_leader_ns.max(*last_leader_ns);
                    t.told_ns = *told_ns;
                    t.work_end_ns = Some(*work_end_ns);
                    t.cause = Some(cause.clone());
                    t.cancelled = *cancelled;
                    t.took_ms = Some(*took_ms);
                    t.grace_ms = *grace_ms;
                } else {
                    verdict.violations.push(format!(
                        "a stop of token {token} (pid {pid}) without its start"
                    ));
                }
            }
            ElectionRecord::Wrote { token, index, .. } => {
                verdict.writes.0 += 1;
                if let Some(t) = terms.values_mut().find(|t| t.token == *token) {
                    t.writes.push(*index);
                }
            }
            ElectionRecord::Refused { token, .. } => {
                verdict.writes.1 += 1;
                if let Some(t) = terms.values_mut().find(|t| t.token == *token) {
                    t.refused += 1;
                }
            }
            ElectionRecord::Observed {
                observer,
                at_ns,
                what,
                token,
            } => {
                let token = if what == "no_leader" { None } else { *token };
                if what != "proclaimed" {
                    observed
                        .entry(observer.clone())
                        .or_default()
                        .push((*at_ns, token));
                }
            }
            ElectionRecord::Failed { name, error } => {
                verdict.failures.push(format!("{name}: {error}"));
            }
        }
    }
    let mut terms: Vec<Term> = terms.into_values().collect();
    terms.sort_by_key(|t| t.start_ns);
    check_terms(&terms, &mut verdict.violations);
    for (observer, seen) in &observed {
        verdict.observations.insert(observer.clone(), seen.len());
        check_observer(observer, seen, &terms, &mut verdict.violations);
    }
    verdict.terms = terms;
    verdict
}

/// Overlaps, token order, the grace, and fenced writes after the next leadership began.
fn check_terms(terms: &[Term], violations: &mut Vec<String>) {
    for (i, t) in terms.iter().enumerate() {
        for later in &terms[i + 1..] {
            if later.start_ns <= t.last_leader_ns {
                violations.push(format!(
                    "two leaders: {} (token {}) believed it led until {:.1} ms after {} (token {}) started",
                    t.candidate,
                    t.token,
                    ms_between(later.start_ns, t.last_leader_ns),
                    later.candidate,
                    later.token
                ));
            }
        }
        if let Some(next) = terms.get(i + 1) {
            if next.token <= t.token {
                violations.push(format!(
                    "token order: {} started after {} but has token {} <= {}",
                    next.candidate, t.candidate, next.token, t.token
                ));
            }
            if let Some(w) = t.writes.iter().find(|w| **w >= next.token) {
                violations.push(format!(
                    "a fenced write of {} (token {}) was applied at index {w}, after the next leadership (token {}) began",
                    t.candidate, t.token, next.token
                ));
            }
        }
        if let Some(took) = t.took_ms {
            if took > t.grace_ms as f64 + GRACE_SLACK_MS {
                violations.push(format!(
                    "the work of {} (token {}) stopped {took:.0} ms after it was told, over its grace of {} ms",
                    t.candidate, t.token, t.grace_ms
                ));
            }
        }
    }
}

/// Every leader once, in order, and a no-leader gap between any two.
fn check_observer(
    observer: &str,
    seen: &[(u64, Option<u64>)],
    terms: &[Term],
    violations: &mut Vec<String>,
) {
    let leaders: Vec<u64> = seen.iter().filter_map(|(_, t)| *t).collect();
    // The leaders that began while this observer watched (its first observation is the state
    // it found).
    let (Some(first), Some(last)) = (seen.first(), seen.last()) else {
        violations.push(format!("observer {observer} saw nothing"));
        return;
    };
    let watched: Vec<u64> = terms
        .iter()
        .filter(|t| t.start_ns >= first.0 && t.start_ns <= last.0)
        .map(|t| t.token)
        .collect();
    for token in &watched {
        if !leaders.contains(token) {
            violations.push(format!(
                "observer {observer} never saw the leader with token {token}"
            ));
        }
    }
    let mut sorted = leaders.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted != leaders {
        violations.push(format!(
            "observer {observer} saw leaders out of order or twice: {leaders:?}"
        ));
    }
    for pair in seen.windows(2) {
        if pair[0].1.is_some() && pair[1].1.is_some() {
            violations.push(format!(
                "observer {observer} saw leader {:?} follow leader {:?} without a no-leader gap",
                pair[1].1, pair[0].1
            ));
        }
        if pair[0].1.is_none() && pair[1].1.is_none() {
            violations.push(format!(
                "observer {observer} said \"no leader\" twice in a row"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(c: &str, pid: u32, token: u64, at: u64) -> ElectionRecord {
        ElectionRecord::Started {
            candidate: c.into(),
            pid,
            token,
            session: format!("s{token}"),
            at_ns: at,
        }
    }

    fn leading(c: &str, pid: u32, token: u64, last: u64) -> ElectionRecord {
        ElectionRecord::Leading {
            candidate: c.into(),
            pid,
            token,
            last_leader_ns: last,
        }
    }

    fn observed(at: u64, token: Option<u64>) -> ElectionRecord {
        ElectionRecord::Observed {
            observer: "o".into(),
            at_ns: at,
            what: if token.is_some() {
                "leader"
            } else {
                "no_leader"
            }
            .into(),
            token,
        }
    }

    #[test]
    fn a_clean_history_passes() {
        let v = check(&[
            observed(0, None),
            started("a", 1, 10, 100),
            observed(110, Some(10)),
            leading("a", 1, 10, 500),
            observed(510, None),
            started("b", 2, 20, 600),
            observed(610, Some(20)),
        ]);
        assert!(v.ok(), "{}", v.table());
        assert_eq!(v.terms.len(), 2);
    }

    #[test]
    fn overlaps_order_and_observers_are_caught() {
        let v = check(&[
            observed(0, None),
            started("a", 1, 30, 100),
            leading("a", 1, 30, 700),
            started("b", 2, 20, 600),
            observed(650, Some(20)),
        ]);
        let text = v.violations.join("\n");
        assert!(text.contains("two leaders"), "{text}");
        assert!(text.contains("token order"), "{text}");
        assert!(
            text.contains("never saw the leader with token 30"),
            "{text}"
        );
    }

    #[test]
    fn work_past_its_grace_and_late_writes_are_caught() {
        let ms = 1_000_000;
        let v = check(&[
            started("a", 1, 10, 0),
            ElectionRecord::Wrote {
                candidate: "a".into(),
                token: 10,
                index: 25,
            },
            ElectionRecord::Stopped {
                candidate: "a".into(),
                pid: 1,
                token: 10,
                last_leader_ns: 100 * ms,
                told_ns: Some(100 * ms),
                work_end_ns: 700 * ms,
                cause: "expiring".into(),
                cancelled: false,
                took_ms: 600.0,
                grace_ms: 200,
            },
            started("b", 2, 20, 800 * ms),
        ]);
        let text = v.violations.join("\n");
        assert!(text.contains("over its grace"), "{text}");
        assert!(text.contains("after the next leadership"), "{text}");
    }
}
