//! The performance targets, each a ratio measured in one run, checked against what was
//! measured. A miss is reported, never a failure of the run.

use serde::Serialize;

use crate::ceiling::CeilingResult;
use crate::contention::ContentionResult;
use crate::cycle::CycleResult;

/// Hand-off latency budget used by the utilisation target at 4 workers.
const HANDOFF_BUDGET_MS: f64 = 2.0;

/// The library variants the cycle targets are checked on: the runtime API, async and blocking.
const CYCLE_VARIANTS: [&str; 2] = ["api_async", "api_blocking"];

/// The Raft writes a lock cycle needs: one to take the key, one to give it back.
const RAFT_WRITES_PER_CYCLE: f64 = 2.0;

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub target: String,
    pub goal: String,
    pub measured: String,
    pub pass: bool,
}

fn check(
    target: impl Into<String>,
    goal: impl Into<String>,
    measured: String,
    pass: bool,
) -> Check {
    Check {
        target: target.into(),
        goal: goal.into(),
        measured,
        pass,
    }
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".into(), |v| format!("{v:.digits$}"))
}

/// Every target: for the runtime API's async and blocking cycle, its throughput against both
/// bare minimums, its Raft writes and its client CPU per cycle; the many-keys rate against the
/// write ceiling; on one key with H = 10 ms, utilisation at N = 32 against N = 2 and the
/// hand-off p99 at every N; and the hand-off p50, utilisation and fairness targets of before.
pub fn evaluate(
    cycles: &[CycleResult],
    contention: &[ContentionResult],
    many_keys: &[ContentionResult],
    ceiling: &[CeilingResult],
) -> Vec<Check> {
    let mut out = Vec::new();
    let find = |id: &str| cycles.iter().find(|c| c.variant == id);
    let bare3 = find("bare_reqwest");
    let bare2 = find("bare_reqwest_2call");
    let lib: Vec<&CycleResult> = CYCLE_VARIANTS.iter().filter_map(|v| find(v)).collect();
    for c in &lib {
        let ratio = c.ratio_to_bare.unwrap_or(0.0);
        out.push(check(
            format!("uncontended cycle: {}", c.label),
            "≥ 1.4 × the 3-call bare minimum",
            format!(
                "{ratio:.3} × ({:.0} vs {} cycles/s; median of per-round ratios)",
                c.cycles_per_s,
                bare3.map_or("–".into(), |b| format!("{:.0}", b.cycles_per_s))
            ),
            ratio >= 1.4,
        ));
        let ratio2 = c.ratio_to_bare2.unwrap_or(0.0);
        out.push(check(
            format!("uncontended cycle: {}", c.label),
            "≥ 0.95 × the 2-call bare minimum",
            format!(
                "{ratio2:.3} × ({:.0} vs {} cycles/s; median of per-round ratios)",
                c.cycles_per_s,
                bare2.map_or("–".into(), |b| format!("{:.0}", b.cycles_per_s))
            ),
            ratio2 >= 0.95,
        ));
    }
    for c in &lib {
        let (measured, pass) = match c.raft_writes_per_cycle {
            // Other writes of the server (an agent's own, a few a minute) land in the window
            // too: a hundredth of a write per cycle is left to them.
            Some(w) => (format!("{w:.3}"), (w - RAFT_WRITES_PER_CYCLE).abs() < 0.01),
            None => ("n/a (the server's Raft index cannot be read)".into(), false),
        };
        out.push(check(
            format!("Raft writes per cycle: {}", c.label),
            "= 2.0",
            measured,
            pass,
        ));
    }
    for c in &lib {
        let of = |b: Option<&CycleResult>| {
            b.filter(|b| b.cpu_us_per_cycle > 0.0)
                .map(|b| c.cpu_us_per_cycle / b.cpu_us_per_cycle)
        };
        let (r2, r3) = (of(bare2), of(bare3));
        out.push(check(
            format!("client CPU per cycle: {}", c.label),
            "≤ 1.1 × the bare minimum's (the 2-call one: the same take and give back)",
            format!(
                "{:.1} µs = {} × the 2-call's ({} µs); {} × the 3-call's ({} µs)",
                c.cpu_us_per_cycle,
                opt(r2, 2),
                bare2.map_or("–".into(), |b| format!("{:.1}", b.cpu_us_per_cycle)),
                opt(r3, 2),
                bare3.map_or("–".into(), |b| format!("{:.1}", b.cpu_us_per_cycle)),
            ),
            r2.is_some_and(|r| r <= 1.1),
        ));
    }
    if let Some(m) = many_keys.first() {
        let (measured, pass) = match (m.share_of_half_ceiling, crate::ceiling::highest(ceiling)) {
            (Some(share), Some(c)) => (
                format!(
                    "{share:.3} ({:.0} acq/s; ceiling {:.0} writes/s from {} client(s), ÷ 2 = {:.0})",
                    m.acquisitions_per_s,
                    c.writes_per_s,
                    c.clients,
                    c.writes_per_s / 2.0
                ),
                share >= 0.8,
            ),
            _ => (
                "not measured (the write ceiling did not run: --sections)".into(),
                false,
            ),
        };
        out.push(check(
            format!(
                "{} keys × {} workers, H = 0: acquisitions/s",
                m.keys, m.workers_per_key
            ),
            "≥ 0.8 × (write ceiling ÷ 2)",
            measured,
            pass,
        ));
    }
    let one_key: Vec<&ContentionResult> = contention.iter().filter(|c| c.keys == 1).collect();
    let at_10ms: Vec<&ContentionResult> = one_key
        .iter()
        .copied()
        .filter(|c| (c.hold_ms - 10.0).abs() < 1e-9)
        .collect();
    let n = |w: usize| at_10ms.iter().find(|c| c.workers == w);
    if let (Some(c2), Some(c32)) = (n(2), n(32)) {
        let (u2, u32_) = (
            c2.utilisation.unwrap_or(0.0),
            c32.utilisation.unwrap_or(0.0),
        );
        let ratio = if u2 > 0.0 { u32_ / u2 } else { 0.0 };
        out.push(check(
            "utilisation, one key, H = 10 ms: N = 32 against N = 2",
            "≥ 0.95 × N = 2's",
            format!("{ratio:.3} × ({u32_:.3} vs {u2:.3})"),
            ratio >= 0.95,
        ));
    }
    if let Some(worst) = at_10ms
        .iter()
        .max_by(|a, b| a.handoff.p99_us.total_cmp(&b.handoff.p99_us))
    {
        let all: Vec<String> = at_10ms
            .iter()
            .map(|c| format!("N={}: {:.2}", c.workers, c.handoff.p99_us / 1e3))
            .collect();
        let ms = worst.handoff.p99_us / 1e3;
        out.push(check(
            "hand-off p99, one key, H = 10 ms, every N",
            "≤ 5 ms",
            format!(
                "worst {ms:.3} ms (N={}); {} ms",
                worst.workers,
                all.join(", ")
            ),
            ms <= 5.0,
        ));
    }
    if let Some(c) = one_key
        .iter()
        .copied()
        .max_by(|a, b| a.handoff.p50_us.total_cmp(&b.handoff.p50_us))
    {
        let ms = c.handoff.p50_us / 1e3;
        out.push(check(
            "hand-off p50 (worst one-key run)",
            "≤ 2 ms",
            format!("{ms:.3} ms (N={}, H={} ms)", c.workers, c.hold_ms),
            ms <= 2.0,
        ));
    }
    if let Some(c) = n(4) {
        let goal = c.hold_ms / (c.hold_ms + HANDOFF_BUDGET_MS);
        let u = c.utilisation.unwrap_or(0.0);
        out.push(check(
            "utilisation, 4 workers, H = 10 ms",
            format!("≥ H ÷ (H + 2 ms) = {goal:.3}"),
            format!("{u:.3}"),
            u >= goal,
        ));
        let f = c.fairness.unwrap_or(0.0);
        out.push(check(
            "fairness, 4 workers, H = 10 ms",
            "≥ 0.90 (fewest ÷ most per worker)",
            format!("{f:.3} ({} ÷ {})", c.per_worker_min, c.per_worker_max),
            f >= 0.9,
        ));
    }
    out
}
