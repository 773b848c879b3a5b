//! The service's own tests, on the embedded test server (or a real agent when
//! `CONSUL_HTTP_ADDR` is set; the fault tests then say that they skip), as `docs/guide.md`
//! shows them.

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use consul_lock::{Client, Lock, LostReason};
use consul_lock_example_service::{nightly_report, prometheus, router, App, Outbox, Report};
use consul_lock_testkit::{ServerConfig, TestConsul};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

/// The process's Prometheus recorder (one per process), shared by the tests.
fn metrics() -> metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: OnceLock<metrics_exporter_prometheus::PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| prometheus().expect("the recorder"))
        .clone()
}

// ANCHOR: test_setup
/// A Consul for one test (the test server, or `CONSUL_HTTP_ADDR`'s agent) and the service's
/// state talking to it, with a key prefix of the test's own.
fn app(consul: &TestConsul, send_time: Duration) -> App {
    let client = Client::builder()
        .address(consul.url())
        .session_ttl_min(consul.session_ttl_min())
        .build()
        .expect("client");
    App {
        consul: client,
        outbox: Outbox::default(),
        send_time,
        metrics: metrics(),
    }
}

async fn post(app: &App, path: &str) -> (StatusCode, String) {
    let request = Request::post(path).body(Body::empty()).expect("request");
    let response = router(app.clone())
        .oneshot(request)
        .await
        .expect("response");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}
// ANCHOR_END: test_setup

fn user() -> u64 {
    // A user of this run's own, so that runs against one real agent do not meet.
    static BASE: OnceLock<u64> = OnceLock::new();
    *BASE.get_or_init(|| u64::from(std::process::id()) * 1000) + fastrand_user()
}

fn fastrand_user() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

// ANCHOR: test_one_mail
#[tokio::test]
async fn two_signups_at_once_send_one_welcome_email() {
    let consul = TestConsul::from_env_or_start().expect("a Consul");
    let app = app(&consul, Duration::from_millis(300));
    let user = user();
    let path = format!("/signup/{user}");
    // Each request on a task of its own, as axum serves them (two locked calls joined in one
    // task would be that task asking again for a key it holds: `Error::Reentrant`).
    let first = tokio::spawn({
        let (app, path) = (app.clone(), path.clone());
        async move { post(&app, &path).await }
    });
    // The second request comes while the first holds the lock.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let second = post(&app, &path).await;
    let first = first.await.expect("the first request");
    // The first sends; the second waits for the lock (the 300 ms send ends within its
    // 500 ms), then finds the e-mail sent.
    assert_eq!(first.0, StatusCode::ACCEPTED, "{first:?}");
    assert_eq!(second.0, StatusCode::OK, "{second:?}");
    assert_eq!(app.outbox.mails(user).len(), 1);
}
// ANCHOR_END: test_one_mail

#[tokio::test]
async fn a_signup_while_another_instance_sends_answers_200_without_sending() {
    let consul = TestConsul::from_env_or_start().expect("a Consul");
    let app = app(&consul, Duration::from_millis(50));
    let user = user();
    // Another instance (another client) holds the user's lock for longer than the 500 ms the
    // handler waits.
    let other = Client::builder()
        .address(consul.url())
        .build()
        .expect("client");
    let held = Lock::new(format!("send/user-{user}/welcome-email"))
        .client(&other)
        .acquire()
        .await
        .expect("the other instance's lock");
    let (status, _) = post(&app, &format!("/signup/{user}")).await;
    assert_eq!(status, StatusCode::OK, "fail_soft: not acquired is a value");
    assert!(app.outbox.mails(user).is_empty());
    held.release().await.expect("release");
}

// ANCHOR: test_fault
/// A slow Consul (every request 600 ms: longer than the 500 ms the handler waits) is "not
/// acquired", answered 200, not an error; a Consul that answers `500 No cluster leader` is a
/// 503 naming the key. (Real Consul holds a request about 7 s before that answer, and so does
/// the test server by default: past a 500 ms acquire timeout that is "not acquired" too.)
#[tokio::test]
async fn faults_consul_can_have_are_answered_as_the_service_means_them() {
    let config = ServerConfig::default().leaderless_hold(Duration::from_millis(50));
    let consul = TestConsul::from_env_or_start_with(config).expect("a Consul");
    let Some(server) = consul.server() else {
        eprintln!("fault injection needs the embedded test server; skipped against a real agent");
        return;
    };
    let app = app(&consul, Duration::from_millis(10));
    let user = user();
    server.set_latency(Duration::from_millis(600));
    let (status, body) = post(&app, &format!("/signup/{user}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server.set_latency(Duration::ZERO);

    server.set_leaderless(true);
    let (status, body) = post(&app, &format!("/signup/{user}")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body.contains(&format!("send/user-{user}/welcome-email")),
        "{body}"
    );
    server.set_leaderless(false);
    assert!(app.outbox.mails(user).is_empty());
}
// ANCHOR_END: test_fault

#[tokio::test]
async fn the_sync_audit_runs_under_its_lock_through_spawn_blocking() {
    let consul = TestConsul::from_env_or_start().expect("a Consul");
    let app = app(&consul, Duration::ZERO);
    let (status, body) = post(&app, &format!("/audit/{}", user())).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("audited"), "{body}");
}

// ANCHOR: test_lost
#[tokio::test]
async fn the_nightly_report_stops_when_its_lock_is_taken_away() {
    let consul = TestConsul::from_env_or_start().expect("a Consul");
    let app = app(&consul, Duration::ZERO);
    let job = tokio::spawn({
        let client = app.consul.clone();
        async move { nightly_report(&client, Duration::from_secs(60)).await }
    });
    // An operator's `consul-lock release --force`: the job's session is destroyed.
    let operator = Client::builder()
        .address(consul.url())
        .build()
        .expect("client");
    let session = loop {
        let held = operator
            .kv_get("locks/ephemeral/reports/nightly")
            .await
            .expect("read");
        if let Some(session) = held.and_then(|e| e.session) {
            break session;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    operator
        .destroy_session(&session)
        .await
        .expect("force the release");
    let report = tokio::time::timeout(Duration::from_secs(5), job)
        .await
        .expect("stopped long before its 60 s of work")
        .expect("the job")
        .expect("no Consul error");
    assert_eq!(report, Report::Stopped(LostReason::SessionInvalidated));
}
// ANCHOR_END: test_lost

// ANCHOR: test_fencing
/// A holder that lost its lock without knowing (paused past its TTL) cannot write after the
/// next holder has: the outbox refuses its older fencing token.
#[tokio::test]
async fn a_stale_holder_is_refused_by_the_outbox() {
    let consul = TestConsul::from_env_or_start().expect("a Consul");
    let app = app(&consul, Duration::ZERO);
    let user = user();
    let lock = Lock::new(format!("fencing/user-{user}")).client(&app.consul);
    let paused = lock.acquire().await.expect("the first holder");
    // Its lease ends while it is paused (here: the session is destroyed).
    app.consul
        .destroy_session(paused.session_id())
        .await
        .expect("destroy");
    let other = Client::builder()
        .address(consul.url())
        .build()
        .expect("client");
    let next = lock
        .clone()
        .client(&other)
        .acquire()
        .await
        .expect("the next holder");
    app.outbox
        .deliver(user, next.fencing_token(), "from the next holder")
        .expect("fresh token");
    let refused = app
        .outbox
        .deliver(user, paused.fencing_token(), "from the paused holder")
        .expect_err("stale token");
    assert_eq!(refused.seen, next.fencing_token());
    next.release().await.expect("release");
    // Releasing a lock already lost is harmless (its session is gone); done here, while this
    // test's server runs, rather than by a drop in the background.
    paused.release().await.expect("release of a lost lock");
}
// ANCHOR_END: test_fencing

#[tokio::test]
async fn metrics_render_as_prometheus_histograms() {
    let consul = TestConsul::from_env_or_start().expect("a Consul");
    let app = app(&consul, Duration::ZERO);
    let _ = post(&app, &format!("/signup/{}", user())).await;
    let request = Request::get("/metrics")
        .body(Body::empty())
        .expect("request");
    let response = router(app).oneshot(request).await.expect("response");
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains(
            r#"consul_lock_wait_seconds_bucket{lock="send/user-<user_id>/welcome-email""#
        ),
        "{text}"
    );
}
