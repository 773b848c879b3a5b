//! An axum service that uses `consul-lock` the way `docs/guide.md` explains it: one welcome
//! e-mail per user across every instance, a sync audit through `spawn_blocking`, a nightly
//! report held with `renew` that stops when its lock is lost, an outbox that refuses stale
//! fencing tokens, and Prometheus metrics with buckets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use consul_lock::metrics::SECONDS_BUCKETS;
use consul_lock::{consul_lock, Client, Lock, LostReason};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// What the handlers share.
#[derive(Clone)]
pub struct App {
    /// The Consul client, built (and checked) once at start-up.
    pub consul: Client,
    /// Where e-mails go; it refuses writes with a stale fencing token.
    pub outbox: Outbox,
    /// How long sending one e-mail takes (a real mailer's latency).
    pub send_time: Duration,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
}

/// The service's errors, each turned into an HTTP status.
#[derive(Debug)]
pub enum AppError {
    /// Consul failed (unreachable, refused, a bad key): 503.
    Lock(consul_lock::Error),
    /// The outbox refused a write from a holder that lost its lock: 409.
    Stale(Stale),
    /// A blocking task panicked: 500.
    Task(tokio::task::JoinError),
}

impl From<consul_lock::Error> for AppError {
    fn from(e: consul_lock::Error) -> Self {
        AppError::Lock(e)
    }
}

impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        match self {
            AppError::Lock(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
            AppError::Stale(s) => (StatusCode::CONFLICT, s.to_string()).into_response(),
            AppError::Task(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        }
    }
}

// ANCHOR: prometheus
/// A Prometheus recorder whose histograms have buckets: without them
/// `metrics-exporter-prometheus` renders summaries, and `histogram_quantile` finds nothing.
pub fn prometheus() -> Result<PrometheusHandle, BuildError> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Prefix("consul_lock_".into()), SECONDS_BUCKETS)?
        .install_recorder()
}
// ANCHOR_END: prometheus

// ANCHOR: router
/// The service's routes.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/signup/{user_id}", post(signup))
        .route("/audit/{user_id}", post(audit))
        .route(
            "/metrics",
            get(|State(app): State<App>| async move { app.metrics.render() }),
        )
        .with_state(app)
}
// ANCHOR_END: router

// ANCHOR: signup
/// `POST /signup/{user_id}`: 202 when this request sent the welcome e-mail; 200 when it had
/// been sent already, or another instance is sending it right now (not an error: the user gets
/// one e-mail either way).
async fn signup(State(app): State<App>, Path(user_id): Path<u64>) -> Result<StatusCode, AppError> {
    match send_welcome_email(user_id, &app).await? {
        Some(Sent::Now) => Ok(StatusCode::ACCEPTED),
        Some(Sent::Before) | None => Ok(StatusCode::OK),
    }
}

/// Whether the welcome e-mail went out with this call.
#[derive(Debug, PartialEq, Eq)]
pub enum Sent {
    /// Sent now.
    Now,
    /// Sent by an earlier call.
    Before,
}

/// At most one instance sends a user's welcome e-mail at a time, so "check, then send" under
/// the lock sends it once. `fail_soft`: a lock still held after 500 ms (or a Consul too slow to
/// answer in that time) is `Ok(None)`.
#[consul_lock(
    key = "send/user-<user_id>/welcome-email",
    acquire_timeout_ms = 500,
    fail_soft,
    guard = lock,
    client = app.consul
)]
pub async fn send_welcome_email(user_id: u64, app: &App) -> Result<Option<Sent>, AppError> {
    if !app.outbox.mails(user_id).is_empty() {
        return Ok(Some(Sent::Before));
    }
    tokio::time::sleep(app.send_time).await; // the mailer
    app.outbox
        .deliver(user_id, lock.fencing_token(), "Welcome!")
        .map_err(AppError::Stale)?;
    Ok(Some(Sent::Now))
}
// ANCHOR_END: signup

// ANCHOR: audit
/// `POST /audit/{user_id}`: a sync function under the lock, run on tokio's blocking pool so
/// that it does not hold up the runtime.
async fn audit(State(app): State<App>, Path(user_id): Path<u64>) -> Result<String, AppError> {
    let audited = tokio::task::spawn_blocking(move || audit_user(user_id, &app.consul))
        .await
        .map_err(AppError::Task)??;
    Ok(match audited {
        Some(n) => format!("audited {n} records\n"),
        None => "another instance is auditing this user\n".to_owned(),
    })
}

/// A blocking function: the attribute takes the lock with the blocking API.
#[consul_lock(key = "audit/user-<user_id>", fail_soft, client = consul)]
pub fn audit_user(user_id: u64, consul: &Client) -> Result<Option<u64>, consul_lock::Error> {
    Ok(Some(user_id % 7))
}
// ANCHOR_END: audit

// ANCHOR: nightly
/// A long job: `renew` keeps the lock past its lock timeout, and the work stops as soon as
/// the lock is lost (the session destroyed from outside, the key taken over, renewals failing
/// until the lease ran out), instead of going on beside the next holder.
pub async fn nightly_report(consul: &Client, work: Duration) -> consul_lock::Result<Report> {
    let lock = Lock::new("reports/nightly")
        .client(consul)
        .lock_timeout(Duration::from_secs(30))
        .renew(true);
    let Some(guard) = lock.try_acquire().await? else {
        return Ok(Report::RunElsewhere);
    };
    let report = tokio::select! {
        reason = guard.lost() => Report::Stopped(reason),
        () = tokio::time::sleep(work) => Report::Done { token: guard.fencing_token() },
    };
    guard.release().await?;
    Ok(report)
}

/// How the nightly report went.
#[derive(Debug, PartialEq, Eq)]
pub enum Report {
    /// Written under the lock acquired with this fencing token.
    Done { token: u64 },
    /// Another instance holds the lock.
    RunElsewhere,
    /// The lock was lost part-way; the work stopped.
    Stopped(LostReason),
}
// ANCHOR_END: nightly

// ANCHOR: fencing
/// The outbox: the store the e-mails are written to. It remembers, per user, the highest
/// fencing token it has seen and refuses writes with a lower one, so a holder that lost its
/// lock without knowing (paused past its TTL) cannot write after the next holder has.
#[derive(Clone, Default)]
pub struct Outbox {
    users: Arc<Mutex<HashMap<u64, Mailbox>>>,
}

/// One user's mail, and the highest fencing token a write for it carried.
#[derive(Default)]
struct Mailbox {
    highest_token: u64,
    mails: Vec<String>,
}

/// A write refused for its stale fencing token.
#[derive(Debug)]
pub struct Stale {
    /// The token of the refused write.
    pub token: u64,
    /// The highest token the outbox has seen for this user.
    pub seen: u64,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fencing token {} is older than {}: the lock was lost",
            self.token, self.seen
        )
    }
}

impl Outbox {
    /// Stores `mail` for `user` if `token` is not older than any token seen for that user.
    pub fn deliver(&self, user: u64, token: u64, mail: &str) -> Result<(), Stale> {
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        let mailbox = users.entry(user).or_default();
        if token < mailbox.highest_token {
            return Err(Stale {
                token,
                seen: mailbox.highest_token,
            });
        }
        mailbox.highest_token = token;
        mailbox.mails.push(mail.to_owned());
        Ok(())
    }

    /// The e-mails stored for `user`.
    pub fn mails(&self, user: u64) -> Vec<String> {
        let users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        users
            .get(&user)
            .map(|m| m.mails.clone())
            .unwrap_or_default()
    }
}
// ANCHOR_END: fencing
