//! The performance targets, checked against what was measured.

use serde::Serialize;

use crate::contention::ContentionResult;
use crate::cycle::CycleResult;

/// Hand-off latency budget used by the utilisation target.
const HANDOFF_BUDGET_MS: f64 = 2.0;

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

/// Every target: cycle throughput and requests per cycle for each library variant, hand-off
/// latency over the one-key contention runs, utilisation and fairness at 4 workers × 10 ms.
pub fn evaluate(cycles: &[CycleResult], contention: &[ContentionResult]) -> Vec<Check> {
    let mut out = Vec::new();
    for c in cycles.iter().filter(|c| c.variant != "bare_reqwest") {
        let ratio = c.ratio_to_bare.unwrap_or(0.0);
        out.push(check(
            format!("cycle throughput: {}", c.label),
            "≥ 0.90 × bare minimum",
            format!(
                "{ratio:.3} × ({:.0} cycles/s); p50 latency ratio {}",
                c.cycles_per_s,
                c.p50_ratio_to_bare
                    .map_or("–".into(), |r| format!("{r:.3}"))
            ),
            ratio >= 0.9,
        ));
    }
    for c in cycles.iter().filter(|c| c.variant != "bare_reqwest") {
        let exact = |n: f64| (n - 3.0).abs() < 0.005;
        let server = c
            .server_requests_per_cycle
            .map_or("n/a (agent)".to_owned(), |s| format!("{s:.3}"));
        out.push(check(
            format!("HTTP requests per cycle: {}", c.label),
            "= 3 (client count; server count)",
            format!("{:.3}; {server}", c.client_requests_per_cycle),
            exact(c.client_requests_per_cycle) && c.server_requests_per_cycle.is_none_or(exact),
        ));
    }
    let one_key: Vec<&ContentionResult> = contention.iter().filter(|c| c.keys == 1).collect();
    let worst = |f: fn(&ContentionResult) -> f64| {
        one_key
            .iter()
            .copied()
            .max_by(|a, b| f(a).total_cmp(&f(b)))
            .map(|c| (f(c) / 1e3, c.workers, c.hold_ms))
    };
    if let Some((ms, n, h)) = worst(|c| c.handoff.p50_us) {
        out.push(check(
            "hand-off p50 (worst one-key run)",
            "≤ 2 ms",
            format!("{ms:.3} ms (N={n}, H={h} ms)"),
            ms <= 2.0,
        ));
    }
    if let Some((ms, n, h)) = worst(|c| c.handoff.p99_us) {
        out.push(check(
            "hand-off p99 (worst one-key run)",
            "≤ 10 ms",
            format!("{ms:.3} ms (N={n}, H={h} ms)"),
            ms <= 10.0,
        ));
    }
    if let Some(c) = one_key
        .iter()
        .find(|c| c.workers == 4 && (c.hold_ms - 10.0).abs() < 1e-9)
    {
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
