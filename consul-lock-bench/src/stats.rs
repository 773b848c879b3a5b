//! Latency samples, percentiles and fairness.

use std::time::Duration;

use serde::Serialize;

/// Latency samples in nanoseconds.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    ns: Vec<u64>,
}

impl Samples {
    pub fn with_capacity(n: usize) -> Samples {
        Samples {
            ns: Vec::with_capacity(n),
        }
    }

    pub fn push(&mut self, d: Duration) {
        self.ns
            .push(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn extend(&mut self, other: Samples) {
        self.ns.extend(other.ns);
    }

    pub fn len(&self) -> usize {
        self.ns.len()
    }

    pub fn summary(&self) -> Summary {
        let mut sorted = self.ns.clone();
        sorted.sort_unstable();
        let us = |p: f64| percentile(&sorted, p).map_or(0.0, |ns| ns as f64 / 1e3);
        let mean = if sorted.is_empty() {
            0.0
        } else {
            sorted.iter().map(|&n| n as f64).sum::<f64>() / sorted.len() as f64 / 1e3
        };
        Summary {
            count: sorted.len(),
            p50_us: us(50.0),
            p99_us: us(99.0),
            mean_us: mean,
            max_us: sorted.last().map_or(0.0, |&n| n as f64 / 1e3),
        }
    }
}

/// A latency distribution in microseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Summary {
    pub count: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    pub mean_us: f64,
    pub max_us: f64,
}

/// The `p`-th percentile (0 < p <= 100) of sorted values by the nearest-rank method: the
/// smallest value such that at least p % of the values are at or below it. `None` when empty.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Fairness of a split of acquisitions between workers: fewest ÷ most (1.0 = perfectly even,
/// 0.0 = some worker never got the lock). `None` when there are no workers or no acquisitions.
pub fn fairness(counts: &[u64]) -> Option<f64> {
    let max = *counts.iter().max()?;
    let min = *counts.iter().min()?;
    (max > 0).then(|| min as f64 / max as f64)
}

/// The median of some values (the mean of the middle two for an even count). `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[n / 2]),
        n => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 51.0), Some(3));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn p99_of_small_sets_is_the_max() {
        let v: Vec<u64> = (1..=10).collect();
        assert_eq!(percentile(&v, 99.0), Some(10));
    }

    #[test]
    fn summary_in_microseconds() {
        let mut s = Samples::default();
        for ms in [3, 1, 2] {
            s.push(Duration::from_millis(ms));
        }
        let sum = s.summary();
        assert_eq!(sum.count, 3);
        assert_eq!(sum.p50_us, 2000.0);
        assert_eq!(sum.p99_us, 3000.0);
        assert_eq!(sum.mean_us, 2000.0);
        assert_eq!(sum.max_us, 3000.0);
        let empty = Samples::default().summary();
        assert_eq!(empty.count, 0);
        assert_eq!(empty.p50_us, 0.0);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn fairness_is_fewest_over_most() {
        assert_eq!(fairness(&[10, 10, 10]), Some(1.0));
        assert_eq!(fairness(&[5, 10]), Some(0.5));
        assert_eq!(fairness(&[0, 10]), Some(0.0));
        assert_eq!(fairness(&[0, 0]), None);
        assert_eq!(fairness(&[]), None);
    }
}
