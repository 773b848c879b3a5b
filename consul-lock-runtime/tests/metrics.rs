//! Metrics through the `metrics` facade, read back with `metrics-util`'s debugging recorder
//! (installed once for this test binary): what an operator's dashboard would see. Each test
//! uses its own `lock` label, so the tests of this binary never see each other's series.

mod common;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::Env;
use consul_lock_runtime::metrics::{
    ACQUISITIONS_TOTAL, HANDOFFS_TOTAL, HELD_SECONDS, LOST_TOTAL, RELEASE_FAILURES_TOTAL,
    RELEASE_RETRIES_TOTAL, SESSION_RENEWALS_TOTAL, WAIT_SECONDS,
};
use consul_lock_runtime::{Client, Lock, LostReason};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};

/// Every series seen so far: counters as their totals, histograms as all their samples (a
/// snapshot drains what it returns, so both are accumulated here).
#[derive(Default)]
struct Seen {
    counters: HashMap<String, u64>,
    histograms: HashMap<String, Vec<f64>>,
}

fn recorder() -> &'static (Snapshotter, Mutex<Seen>) {
    static RECORDER: OnceLock<(Snapshotter, Mutex<Seen>)> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::set_global_recorder(recorder).expect("the only recorder of this test binary");
        (snapshotter, Mutex::new(Seen::default()))
    })
}

/// `name{label=value,…}` with the labels sorted, as a dashboard would name the series.
fn series(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    labels.sort();
    format!("{name}{{{}}}", labels.join(","))
}

fn refresh() -> std::sync::MutexGuard<'static, Seen> {
    let (snapshotter, seen) = recorder();
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let k = key.key();
        let labels: Vec<(&str, &str)> = k.labels().map(|l| (l.key(), l.value())).collect();
        let name = series(k.name(), &labels);
        match value {
            DebugValue::Counter(c) => *seen.counters.entry(name).or_default() += c,
            DebugValue::Histogram(samples) => seen
                .histograms
                .entry(name)
                .or_default()
                .extend(samples.into_iter().map(|s| s.into_inner())),
            DebugValue::Gauge(_) => {}
        }
    }
    seen
}

fn counter(name: &str, labels: &[(&str, &str)]) -> u64 {
    refresh()
        .counters
        .get(&series(name, labels))
        .copied()
        .unwrap_or(0)
}

fn samples(name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    refresh()
        .histograms
        .get(&series(name, labels))
        .cloned()
        .unwrap_or_default()
}

/// A unique `lock` label for one test; installs the recorder first, so that nothing the test
/// does goes to the no-op recorder.
fn label(test: &str) -> String {
    recorder();
    format!("{test}/<id>-{:08x}", fastrand::u32(..))
}

/// Waits (bounded) until a counter reaches `at_least`: the library records asynchronously
/// (renewals, background releases), and the recorder has no notification to wait on.
async fn counter_reaches(name: &str, labels: &[(&str, &str)], at_least: u64, within: Duration) {
    let start = Instant::now();
    while counter(name, labels) < at_least {
        assert!(
            start.elapsed() < within,
            "{} stayed at {} (expected at least {at_least}) for {within:?}",
            series(name, labels),
            counter(name, labels)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn an_acquisition_a_hold_and_a_release_are_counted_under_the_template() {
    let env = Env::new("metrics-cycle");
    let name = label("cycle");
    let l = name.as_str();
    let guard = env
        .lock("job-1")
        .metrics_name(&name)
        .acquire()
        .await
        .unwrap();
    let held_for = Duration::from_millis(30);
    tokio::time::sleep(held_for).await; // the work done under the lock
    guard.release().await.unwrap();
    assert_eq!(
        counter(ACQUISITIONS_TOTAL, &[("lock", l), ("outcome", "acquired")]),
        1
    );
    let waits = samples(WAIT_SECONDS, &[("lock", l), ("outcome", "acquired")]);
    assert_eq!(waits.len(), 1, "{waits:?}");
    assert!(waits[0] >= 0.0 && waits[0] < 5.0, "{waits:?}");
    let held = samples(HELD_SECONDS, &[("lock", l)]);
    assert_eq!(held.len(), 1, "{held:?}");
    assert!(held[0] >= held_for.as_secs_f64(), "{held:?}");
    assert_eq!(counter(HANDOFFS_TOTAL, &[("lock", l)]), 0, "nobody waited");
    // The rendered key never becomes a label.
    let seen = refresh();
    assert!(
        !seen
            .counters
            .keys()
            .chain(seen.histograms.keys())
            .any(|s| s.contains("job-1")),
        "a rendered key leaked into a label"
    );
}

#[tokio::test]
async fn not_acquired_in_time_and_a_hand_off_are_told_apart() {
    let env = Env::new("metrics-contended");
    let name = label("contended");
    let l = name.as_str();
    let holder = env.lock("job").metrics_name(&name).acquire().await.unwrap();
    // Another client stands for another process (the same task asking again is re-entry).
    let err = env
        .lock("job")
        .client(env.another_client())
        .metrics_name(&name)
        .acquire()
        .await
        .unwrap_err();
    assert!(
        matches!(err, consul_lock_runtime::Error::NotAcquired { .. }),
        "{err}"
    );
    assert_eq!(
        counter(
            ACQUISITIONS_TOTAL,
            &[("lock", l), ("outcome", "not_acquired")]
        ),
        1
    );
    assert_eq!(
        samples(WAIT_SECONDS, &[("lock", l), ("outcome", "not_acquired")]).len(),
        1
    );
    // A waiter that gets the lock once the holder lets go: a hand-off.
    let other = env.another_client();
    let waiter = env
        .lock("job")
        .client(&other)
        .metrics_name(&name)
        .acquire_timeout(Duration::from_secs(10));
    let waiting = tokio::spawn(async move { waiter.acquire().await });
    env.until_queued(&env.key("job"), 1).await;
    holder.release().await.unwrap();
    let next = waiting.await.unwrap().expect("handed over");
    assert_eq!(counter(HANDOFFS_TOTAL, &[("lock", l)]), 1);
    assert_eq!(
        counter(ACQUISITIONS_TOTAL, &[("lock", l), ("outcome", "acquired")]),
        2
    );
    next.release().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_consul_is_its_own_outcome() {
    let name = label("unreachable");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = Client::builder()
        .address(format!("127.0.0.1:{port}"))
        .build()
        .unwrap();
    let err = Lock::new("k")
        .client(&client)
        .metrics_name(&name)
        .acquire()
        .await
        .unwrap_err();
    assert!(
        matches!(err, consul_lock_runtime::Error::Unreachable { .. }),
        "{err}"
    );
    assert_eq!(
        counter(
            ACQUISITIONS_TOTAL,
            &[("lock", &name), ("outcome", "unreachable")]
        ),
        1
    );
}

#[tokio::test]
async fn renewals_and_a_loss_are_counted() {
    let env = Env::new("metrics-renew");
    let name = label("renewed");
    let l = name.as_str();
    let ttl = env.min_ttl();
    let guard = env
        .lock("job")
        .metrics_name(&name)
        .lock_timeout(ttl)
        .renew(true)
        .acquire()
        .await
        .unwrap();
    // Renewals run at TTL/2.
    counter_reaches(SESSION_RENEWALS_TOTAL, &[("lock", l)], 1, ttl * 2).await;
    // An operator ends the session: the key watch reports the loss.
    env.client
        .destroy_session(guard.session_id())
        .await
        .unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(10), guard.lost())
        .await
        .expect("loss reported");
    assert!(
        matches!(reason, LostReason::SessionInvalidated),
        "{reason:?}"
    );
    assert_eq!(
        counter(
            LOST_TOTAL,
            &[("lock", l), ("reason", "session_invalidated")]
        ),
        1
    );
    assert_eq!(
        samples(HELD_SECONDS, &[("lock", l)]).len(),
        1,
        "held time ends at the loss"
    );
    let _ = guard.release().await;
}

#[tokio::test]
async fn release_retries_and_failures_are_counted() {
    let env = Env::new("metrics-release");
    if !env.embedded_or_skip("release_retries_and_failures_are_counted") {
        return;
    }
    let server = env.consul.server().unwrap();
    let name = label("release");
    let l = name.as_str();
    let guard = env.lock("job").metrics_name(&name).acquire().await.unwrap();
    server.fail_next(2, 500, "rpc error making call: EOF");
    guard.release().await.expect("released after two retries");
    assert_eq!(counter(RELEASE_RETRIES_TOTAL, &[("lock", l)]), 2);
    assert_eq!(counter(RELEASE_FAILURES_TOTAL, &[("lock", l)]), 0);
    let guard = env.lock("job").metrics_name(&name).acquire().await.unwrap();
    server.fail_next(1, 403, "Permission denied");
    guard.release().await.expect_err("refused");
    assert_eq!(counter(RELEASE_FAILURES_TOTAL, &[("lock", l)]), 1);
}

#[tokio::test]
async fn locks_on_several_keys_and_semaphores_are_counted_under_their_names() {
    let env = Env::new("metrics-multi");
    let multi = label("accounts/<from>, accounts/<to>");
    let slots = label("reports/<kind>");
    let guard = consul_lock_runtime::MultiLock::new(["a", "b"])
        .key_prefix(env.prefix.clone())
        .client(&env.client)
        .metrics_name(&multi)
        .acquire()
        .await
        .unwrap();
    guard.release().await.unwrap();
    let slot = consul_lock_runtime::Semaphore::new("nightly", 2)
        .key_prefix(env.prefix.clone())
        .client(&env.client)
        .metrics_name(&slots)
        .acquire()
        .await
        .unwrap();
    slot.release().await.unwrap();
    for name in [&multi, &slots] {
        assert_eq!(
            counter(
                ACQUISITIONS_TOTAL,
                &[("lock", name), ("outcome", "acquired")]
            ),
            1,
            "{name}"
        );
        assert_eq!(samples(HELD_SECONDS, &[("lock", name)]).len(), 1, "{name}");
    }
}

#[tokio::test]
async fn an_election_counts_campaigns_leadership_changes_and_time_as_leader() {
    use consul_lock_runtime::metrics::{CAMPAIGNS_TOTAL, LEADERSHIP_CHANGES_TOTAL, LEADER_SECONDS};
    let env = Env::new("metrics-election");
    let name = label("election");
    let e = consul_lock_runtime::Election::new(name.clone())
        .key_prefix(env.prefix.clone())
        .client(&env.client)
        .ttl(env.min_ttl());
    let leadership = e.campaign().await.unwrap();
    let other = env.another_client();
    let timed_out = e
        .clone()
        .client(&other)
        .campaign_timeout(Duration::from_millis(50))
        .campaign()
        .await;
    assert!(timed_out.is_err());
    leadership.resign().await.unwrap();
    let n = name.as_str();
    assert_eq!(
        counter(CAMPAIGNS_TOTAL, &[("election", n), ("outcome", "elected")]),
        1
    );
    assert_eq!(
        counter(
            CAMPAIGNS_TOTAL,
            &[("election", n), ("outcome", "not_elected")]
        ),
        1
    );
    assert_eq!(
        counter(
            LEADERSHIP_CHANGES_TOTAL,
            &[("election", n), ("change", "elected")]
        ),
        1
    );
    assert_eq!(
        counter(
            LEADERSHIP_CHANGES_TOTAL,
            &[("election", n), ("change", "ended")]
        ),
        1
    );
    assert_eq!(samples(LEADER_SECONDS, &[("election", n)]).len(), 1);
    // The lock under the election records its own series with the election's name.
    assert!(counter(ACQUISITIONS_TOTAL, &[("lock", n), ("outcome", "acquired")]) >= 1);
}
