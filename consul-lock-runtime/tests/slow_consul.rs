//! A slow Consul: every request takes 100 ms (the test server's `set_latency`; against a real
//! agent, a loopback proxy that delays each request as much). An acquire whose deadline runs
//! out while a request is on its way has not had the lock in time: the try and fail-soft
//! forms answer `None`, `acquire` answers `NotAcquired`, and the metrics count it as
//! `not_acquired`, never as an unreachable Consul.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::Env;
use consul_lock_runtime::{Client, Error, Lock};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::{CompositeKey, MetricKind};

const LATENCY: Duration = Duration::from_millis(100);
const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(500);
const ROUNDS: usize = 48;
/// Rounds run side by side (on keys of their own), to keep the test short.
const PARALLEL: usize = 8;

/// How one round's contender ended.
fn outcome<T>(result: &Result<Option<T>, Error>) -> String {
    match result {
        Ok(Some(_)) => "acquired".into(),
        Ok(None) => "not acquired".into(),
        Err(e) => format!("error: {e}"),
    }
}

/// One round on its own key: a holder takes the key; a contender asks for it with a 500 ms
/// acquire timeout, in one of three forms (try_acquire, try_hold as the attribute's fail-soft
/// does, acquire), from the holder's process (the same client: it waits for its local turn,
/// then meets Consul with little time left) or from another one; the holder releases 250-450
/// ms after the contender started.
async fn round(
    holder: Client,
    contender: Client,
    prefix: String,
    round: usize,
) -> Result<Option<()>, Error> {
    let key = format!("round-{round}");
    let lock = Lock::new(key)
        .key_prefix(prefix)
        .metrics_name("slow")
        .acquire_timeout(ACQUIRE_TIMEOUT);
    let held = lock
        .clone()
        .client(&holder)
        .acquire()
        .await
        .expect("the holder takes the free key");
    let contender = lock.client(if round % 2 == 0 { &holder } else { &contender });
    let ask = tokio::spawn(async move {
        match (round / 2) % 3 {
            0 => contender.try_acquire().await.map(|g| g.map(drop)),
            1 => contender.try_hold(|_| async {}).await,
            _ => match contender.acquire().await {
                Ok(_) => Ok(Some(())),
                Err(Error::NotAcquired { .. }) => Ok(None),
                Err(e) => Err(e),
            },
        }
    });
    // The fault's schedule, not a synchronisation: the holder lets go part-way through the
    // contender's deadline, so that its last requests race the deadline.
    tokio::time::sleep(Duration::from_millis(250 + fastrand::u64(0..=200))).await;
    held.release().await.expect("the holder's release");
    ask.await.expect("the contender's task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_that_runs_out_during_a_request_is_not_acquired_not_unreachable() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::set_global_recorder(recorder).expect("the test's metrics recorder");

    let env = Env::new("slow-consul");
    let url = match env.consul.server() {
        Some(server) => {
            server.set_latency(LATENCY);
            env.consul.url()
        }
        None => {
            eprintln!(
                "slow consul: real agent, slowed by a loopback proxy that delays each request by {LATENCY:?}"
            );
            common::slow::slow_proxy(&env.consul.url(), LATENCY).await
        }
    };
    let client = || {
        consul_lock_runtime::ClientBuilder::from_env()
            .expect("CONSUL_* variables")
            .address(url.clone())
            .build()
            .expect("client")
    };
    let prefix = Arc::new(env.prefix.clone());
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for batch in (0..ROUNDS).collect::<Vec<_>>().chunks(PARALLEL) {
        let rounds: Vec<_> = batch
            .iter()
            .map(|&i| tokio::spawn(round(client(), client(), prefix.to_string(), i)))
            .collect();
        for r in rounds {
            let result = r.await.expect("round task");
            *outcomes.entry(outcome(&result)).or_default() += 1;
        }
    }
    if let Some(server) = env.consul.server() {
        server.set_latency(Duration::ZERO);
    }
    eprintln!("slow consul, {ROUNDS} rounds: {outcomes:?}");

    // What the metrics counted for these rounds' contenders (the holders all acquired).
    let mut counted: BTreeMap<String, u64> = BTreeMap::new();
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key: CompositeKey = key;
        if key.kind() != MetricKind::Counter
            || key.key().name() != consul_lock_runtime::metrics::ACQUISITIONS_TOTAL
        {
            continue;
        }
        let labels: Vec<_> = key.key().labels().collect();
        if !labels
            .iter()
            .any(|l| l.key() == "lock" && l.value() == "slow")
        {
            continue;
        }
        if let (Some(o), DebugValue::Counter(n)) =
            (labels.iter().find(|l| l.key() == "outcome"), value)
        {
            counted.insert(o.value().to_owned(), n);
        }
    }
    eprintln!("slow consul, acquisitions counted: {counted:?}");

    let errors: Vec<_> = outcomes.keys().filter(|o| o.starts_with("error")).collect();
    assert!(
        errors.is_empty(),
        "a deadline reached during a request must be 'not acquired', got {outcomes:?}"
    );
    assert_eq!(
        counted.keys().collect::<Vec<_>>(),
        ["acquired", "not_acquired"]
            .iter()
            .filter(|o| counted.contains_key(**o))
            .collect::<Vec<_>>(),
        "metrics count only acquired and not_acquired: {counted:?}"
    );
    assert_eq!(counted.values().sum::<u64>(), 2 * ROUNDS as u64);
}

/// The counterpart: a Consul that gives no answer within the client's request timeout is
/// unreachable, on the one try and when a longer acquire timeout cuts its last request.
#[tokio::test]
async fn no_answer_within_the_request_timeout_is_unreachable() {
    let env = Env::new("no-answer");
    // Every request waits 2 s in the proxy, far past the client's 300 ms request timeout.
    let url = common::slow::slow_proxy(&env.consul.url(), Duration::from_secs(2)).await;
    let client = consul_lock_runtime::ClientBuilder::from_env()
        .expect("CONSUL_* variables")
        .address(url)
        .request_timeout(Duration::from_millis(300))
        .build()
        .expect("client");
    for acquire_timeout in [Duration::ZERO, Duration::from_millis(1000)] {
        let err = env
            .lock("k")
            .client(&client)
            .acquire_timeout(acquire_timeout)
            .try_acquire()
            .await
            .expect_err("no answer within the request timeout");
        assert!(
            matches!(
                err,
                Error::Unreachable {
                    cause: consul_lock_runtime::RequestFailure::NoAnswer,
                    ..
                }
            ),
            "acquire timeout {acquire_timeout:?}: {err:?}"
        );
        assert!(err.to_string().contains("request timeout"), "{err}");
    }
}
