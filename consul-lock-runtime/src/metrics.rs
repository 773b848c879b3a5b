//! Metrics, through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! With the `metrics` cargo feature (on by default) the library records what follows into
//! whatever recorder the application installed (Prometheus, StatsD, OpenTelemetry exporters
//! plug into the facade). Without a recorder each call costs one atomic load; without the
//! feature the calls compile to nothing.
//!
//! Every metric carries a `lock` label: the key **template** (`send/user-<user_id>/welcome`),
//! never the rendered key, so the number of series stays bounded. The attribute passes its
//! template; with the runtime API give a name with [`Lock::metrics_name`](crate::Lock::metrics_name),
//! or the label is `unnamed`.
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `consul_lock_acquisitions_total` | counter | `lock`, `outcome` | acquires by outcome: `acquired`, `not_acquired` (held, or under a lock-delay, for the whole acquire timeout, or the timeout ran out while Consul's answer was on its way), or the error kind (`unreachable`: no answer within the client's request timeout, or no connection; `consul_refused`, `permission_denied`, `invalid_key`, `invalid_option`, `runtime`) |
//! | `consul_lock_wait_seconds` | histogram | `lock`, `outcome` | time from the start of an acquire to its outcome |
//! | `consul_lock_handoffs_total` | counter | `lock` | acquisitions that waited for another holder to release |
//! | `consul_lock_held_seconds` | histogram | `lock` | time from the acquisition to the release or the loss |
//! | `consul_lock_lost_total` | counter | `lock`, `reason` | locks lost while held: `expired`, `renewal_failed`, `session_invalidated`, `key_taken_over`, `unconfirmed` |
//! | `consul_lock_release_retries_total` | counter | `lock` | release requests sent again after a transient failure |
//! | `consul_lock_release_failures_total` | counter | `lock` | releases given up (the TTL frees the key) |
//! | `consul_lock_session_renewals_total` | counter | `lock` | successful session renewals of held locks |
//!
//! An [election](crate::Election) records its own series, labelled `election` with the
//! election's name (the lock under it records the series above with `lock` = that name too):
//!
//! | name | type | labels | what |
//! |---|---|---|---|
//! | `consul_lock_campaigns_total` | counter | `election`, `outcome` | campaigns by outcome: `elected`, `not_elected` (the campaign timeout passed), or the error kind as above |
//! | `consul_lock_leadership_changes_total` | counter | `election`, `change` | this process became leader (`elected`) or stopped leading (`ended`) |
//! | `consul_lock_leader_seconds` | histogram | `election` | time from being elected to resigning or the leadership's end |
//! | `consul_lock_is_leader` | gauge | `election` | 1 while this process leads, else 0 |
//!
//! ```
//! // The names, for dashboards and alerts:
//! assert_eq!(consul_lock_runtime::metrics::ACQUISITIONS_TOTAL, "consul_lock_acquisitions_total");
//! ```
//!
//! ## With `metrics-exporter-prometheus`
//!
//! Configured by default, that exporter renders every histogram as a **summary**: quantiles
//! computed in the process (`consul_lock_wait_seconds{quantile="0.99"}`), no `_bucket`
//! series, so `histogram_quantile(…_bucket…)` finds nothing, and quantiles cannot be summed
//! across instances. Give it buckets for this library's histograms with
//! `set_buckets_for_metric` ([`SECONDS_BUCKETS`] suits them), and they render as Prometheus
//! histograms:
//!
//! ```
//! use consul_lock_runtime::metrics::SECONDS_BUCKETS;
//! use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
//!
//! let recorder = PrometheusBuilder::new()
//!     .set_buckets_for_metric(Matcher::Prefix("consul_lock_".into()), SECONDS_BUCKETS)?
//!     .build_recorder(); // or `.install_recorder()?` for the whole process
//! let handle = recorder.handle();
//! metrics::with_local_recorder(&recorder, || {
//!     metrics::histogram!(consul_lock_runtime::metrics::WAIT_SECONDS).record(0.004);
//! });
//! let text = handle.render(); // what `/metrics` serves
//! assert!(text.contains("consul_lock_wait_seconds_bucket{le=\"0.005\"} 1"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Then, for example, the p99 wait per template:
//! `histogram_quantile(0.99, sum by (lock, le) (rate(consul_lock_wait_seconds_bucket{outcome="acquired"}[5m])))`.
//! Without buckets, read `consul_lock_wait_seconds{quantile="0.99"}` per instance instead.
//! (`consul-lock-runtime/tests/prometheus.rs` renders both configurations.)

use std::time::Duration;

use crate::{Error, LostReason};

/// Counter: acquires by `lock` and `outcome`.
pub const ACQUISITIONS_TOTAL: &str = "consul_lock_acquisitions_total";
/// Histogram (seconds): time from the start of an acquire to its outcome, by `lock` and `outcome`.
pub const WAIT_SECONDS: &str = "consul_lock_wait_seconds";
/// Counter: acquisitions that waited for another holder, by `lock`.
pub const HANDOFFS_TOTAL: &str = "consul_lock_handoffs_total";
/// Histogram (seconds): time a lock was held, by `lock`.
pub const HELD_SECONDS: &str = "consul_lock_held_seconds";
/// Counter: locks lost while held, by `lock` and `reason`.
pub const LOST_TOTAL: &str = "consul_lock_lost_total";
/// Counter: release requests sent again after a transient failure, by `lock`.
pub const RELEASE_RETRIES_TOTAL: &str = "consul_lock_release_retries_total";
/// Counter: releases given up, by `lock`.
pub const RELEASE_FAILURES_TOTAL: &str = "consul_lock_release_failures_total";
/// Counter: successful session renewals of held locks, by `lock`.
pub const SESSION_RENEWALS_TOTAL: &str = "consul_lock_session_renewals_total";

/// Counter: campaigns of an election by `election` and `outcome`.
pub const CAMPAIGNS_TOTAL: &str = "consul_lock_campaigns_total";
/// Counter: this process becoming leader or ending its leadership, by `election` and `change`.
pub const LEADERSHIP_CHANGES_TOTAL: &str = "consul_lock_leadership_changes_total";
/// Histogram (seconds): time as leader, by `election`.
pub const LEADER_SECONDS: &str = "consul_lock_leader_seconds";
/// Gauge: 1 while this process leads the election, by `election`.
pub const IS_LEADER: &str = "consul_lock_is_leader";

/// Bucket bounds (seconds) for the histograms, [`WAIT_SECONDS`], [`HELD_SECONDS`] and
/// [`LEADER_SECONDS`]: from 1 ms (an uncontended acquire on a local agent) to 10 minutes (a
/// long hold; longer ones fall in `+Inf`), about three per decade. Exporters that render histograms as summaries unless told otherwise need
/// them, as `metrics-exporter-prometheus` does (see the module docs).
///
/// ```
/// use consul_lock_runtime::metrics::SECONDS_BUCKETS;
/// assert!(SECONDS_BUCKETS.windows(2).all(|w| w[0] < w[1]));
/// ```
pub const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    180.0, 600.0,
];

/// The `lock` label of a lock without a name.
pub(crate) const UNNAMED: &str = "unnamed";

/// The `outcome` label of an acquire's result.
pub(crate) fn outcome<T>(result: &Result<T, Error>) -> &'static str {
    match result {
        Ok(_) => "acquired",
        Err(Error::NotAcquired { .. }) => "not_acquired",
        Err(Error::Unreachable { .. }) => "unreachable",
        Err(Error::ConsulRefused { .. }) => "consul_refused",
        Err(Error::PermissionDenied { .. }) => "permission_denied",
        Err(Error::InvalidKey { .. }) => "invalid_key",
        Err(Error::InvalidOption { .. }) => "invalid_option",
        Err(_) => "runtime",
    }
}

fn lost_reason(reason: &LostReason) -> &'static str {
    match reason {
        LostReason::Expired => "expired",
        LostReason::RenewalFailed { .. } => "renewal_failed",
        LostReason::SessionInvalidated => "session_invalidated",
        LostReason::KeyTakenOver { .. } => "key_taken_over",
        LostReason::Unconfirmed { .. } => "unconfirmed",
        _ => "other",
    }
}

#[cfg(feature = "metrics")]
mod record {
    use super::*;

    pub(crate) fn acquire_finished(lock: &str, outcome: &'static str, waited: Duration) {
        let lock = lock.to_owned();
        metrics::counter!(ACQUISITIONS_TOTAL, "lock" => lock.clone(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!(WAIT_SECONDS, "lock" => lock, "outcome" => outcome)
            .record(waited.as_secs_f64());
    }

    pub(crate) fn handoff(lock: &str) {
        metrics::counter!(HANDOFFS_TOTAL, "lock" => lock.to_owned()).increment(1);
    }

    pub(crate) fn held(lock: &str, held: Duration) {
        metrics::histogram!(HELD_SECONDS, "lock" => lock.to_owned()).record(held.as_secs_f64());
    }

    pub(crate) fn lost(lock: &str, reason: &LostReason) {
        metrics::counter!(LOST_TOTAL, "lock" => lock.to_owned(), "reason" => lost_reason(reason))
            .increment(1);
    }

    pub(crate) fn release_retry(lock: &str) {
        metrics::counter!(RELEASE_RETRIES_TOTAL, "lock" => lock.to_owned()).increment(1);
    }

    pub(crate) fn release_failed(lock: &str) {
        metrics::counter!(RELEASE_FAILURES_TOTAL, "lock" => lock.to_owned()).increment(1);
    }

    pub(crate) fn session_renewed(lock: &str) {
        metrics::counter!(SESSION_RENEWALS_TOTAL, "lock" => lock.to_owned()).increment(1);
    }

    pub(crate) fn campaign_finished(election: &str, outcome: &'static str) {
        metrics::counter!(CAMPAIGNS_TOTAL, "election" => election.to_owned(), "outcome" => outcome)
            .increment(1);
    }

    pub(crate) fn elected(election: &str) {
        let election = election.to_owned();
        metrics::counter!(LEADERSHIP_CHANGES_TOTAL, "election" => election.clone(), "change" => "elected")
            .increment(1);
        metrics::gauge!(IS_LEADER, "election" => election).set(1.0);
    }

    pub(crate) fn leadership_ended(election: &str, led: Duration) {
        let election = election.to_owned();
        metrics::counter!(LEADERSHIP_CHANGES_TOTAL, "election" => election.clone(), "change" => "ended")
            .increment(1);
        metrics::histogram!(LEADER_SECONDS, "election" => election.clone())
            .record(led.as_secs_f64());
        metrics::gauge!(IS_LEADER, "election" => election).set(0.0);
    }
}

#[cfg(not(feature = "metrics"))]
#[allow(clippy::missing_const_for_fn)]
mod record {
    use super::*;

    pub(crate) fn acquire_finished(_: &str, _: &'static str, _: Duration) {}
    pub(crate) fn handoff(_: &str) {}
    pub(crate) fn held(_: &str, _: Duration) {}
    pub(crate) fn lost(_: &str, reason: &LostReason) {
        let _ = lost_reason(reason);
    }
    pub(crate) fn release_retry(_: &str) {}
    pub(crate) fn release_failed(_: &str) {}
    pub(crate) fn session_renewed(_: &str) {}
    pub(crate) fn campaign_finished(_: &str, _: &'static str) {}
    pub(crate) fn elected(_: &str) {}
    pub(crate) fn leadership_ended(_: &str, _: Duration) {}
}

pub(crate) use record::{
    acquire_finished, campaign_finished, elected, handoff, held, leadership_ended, lost,
    release_failed, release_retry, session_renewed,
};
