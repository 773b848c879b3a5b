//! Ending sessions for sure, through leader elections and lost answers.
//!
//! During a leader election Consul answers writes at once with 500 (`rpc error making call:
//! EOF`, `failed to get conn … connection refused`) for one to several seconds, and a write
//! answered `EOF` may still have been applied. A release that gave up after a few quick tries
//! left the key held until its TTL, and every waiter stalled that long. So:
//!
//! - a session is destroyed with retries (jittered backoff up to 1 s) until Consul confirms it,
//!   or until Consul has certainly ended the session on its own ([`SessionEnd`]). A new leader
//!   restarts every session's TTL timer, so each failure that shows Consul without a leader
//!   moves that moment to 2 × TTL after it: with the leader killed more often than 2 × TTL,
//!   a session given up on by its last renewal lived on, held its key, and stalled every
//!   waiter until the elections stopped;
//! - a session create that failed in a way Consul may still have carried out (a 5xx, or no
//!   answer) is looked for by its unique name once Consul answers again, and destroyed.
//!
//! Both run where the caller runs them; handed to the [`Background`] (`Drop`, a cancelled
//! acquire) they are counted, so [`flush_releases`](crate::flush_releases) waits for them.

use std::time::Duration;

use tokio::time::Instant;

use super::retry::Backoff;
use super::Background;
use crate::{Client, Error, Result};

/// Consul's leader ends a session whose TTL ran out 2 × TTL after its last renewal (it allows
/// up to twice the TTL), and a new leader restarts the timer. So the moment past which there
/// is nothing left to destroy starts at 2 × TTL after the last renewal, and moves to 2 × TTL
/// after each failure that shows Consul without a leader ([`SessionEnd::saw`]), up to
/// [`MAX_ELECTIONS`] past the first bound.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SessionEnd {
    at: Instant,
    ttl: Duration,
    limit: Instant,
}

/// How long elections may push a session's end past 2 × TTL after its last renewal before the
/// retries give up all the same (and the TTL frees the key once Consul has a leader): so that
/// a clean-up, and [`flush_releases`](crate::flush_releases), returns against a cluster
/// that has lost its quorum for good.
pub(crate) const MAX_ELECTIONS: Duration = Duration::from_secs(60);

impl SessionEnd {
    /// The end of a session last renewed at `last_renewal` (sent then) with `ttl`.
    pub(crate) fn after(last_renewal: Instant, ttl: Duration) -> SessionEnd {
        let at = last_renewal + ttl * 2;
        SessionEnd {
            at,
            ttl,
            limit: at + MAX_ELECTIONS,
        }
    }

    /// Never sooner than `at` (a request timeout from now, for a lease that looks over).
    pub(crate) fn not_before(mut self, at: Instant) -> SessionEnd {
        self.at = self.at.max(at);
        self.limit = self.limit.max(at);
        self
    }

    /// The moment past which Consul has ended the session on its own.
    pub(crate) fn at(&self) -> Instant {
        self.at
    }

    /// Notes a failure `e`: one that shows Consul without a leader means the next leader
    /// restarts the session's timer, so it may live 2 × TTL after now.
    pub(crate) fn saw(&mut self, e: &Error) {
        if e.shows_no_leader() {
            self.at = self.at.max(Instant::now() + self.ttl * 2).min(self.limit);
        }
    }
}

/// Retries start at 10 ms (an election's refusals are quick to clear) and stay under 1 s (a
/// release that waits longer stalls every waiter of the key).
fn retry_policy() -> Backoff {
    Backoff::between(Duration::from_millis(10), Duration::from_secs(1))
}

/// Whether to try again after `e`: a transient failure before `give_up_at`. A local agent
/// that refuses connections gets one request timeout (from `started`) to come back: it may be
/// restarting, but if it is down for good Consul ends its node's sessions on its own.
fn retry_after(e: &Error, client: &Client, started: Instant, give_up_at: Instant) -> bool {
    let now = Instant::now();
    e.is_transient()
        && now < give_up_at
        && (e.may_have_reached_consul() || now < started + client.request_timeout())
}

/// Destroys a session, retrying transient failures until Consul confirms (destroying an
/// unknown session is confirmed too), a non-transient error, or the session's `end`, which
/// each failure that shows Consul without a leader moves on ([`SessionEnd::saw`]).
///
/// Returns the last error when it gives up; the caller logs it. `on_retry` is called before
/// each request sent again (the release counts them in its metrics).
pub(crate) async fn destroy_until_confirmed(
    client: &Client,
    key: &str,
    session: &str,
    end: SessionEnd,
    on_retry: impl FnMut(),
) -> Result<()> {
    until_confirmed(client, end, on_retry, |timeout| {
        client.session_destroy(key, session, timeout)
    })
    .await
}

/// Sends `write` (given each request's timeout) until Consul confirms it, as
/// [`destroy_until_confirmed`] does: the release of a lock on a shared session gives its keys
/// back this way, bounded by the shared session's end.
pub(crate) async fn until_confirmed<F: std::future::Future<Output = Result<()>>>(
    client: &Client,
    mut end: SessionEnd,
    mut on_retry: impl FnMut(),
    mut write: impl FnMut(Duration) -> F,
) -> Result<()> {
    let started = Instant::now();
    let mut backoff = retry_policy();
    let mut attempt = 1u32;
    loop {
        let now = Instant::now();
        let timeout = client
            .request_timeout()
            .min(end.at().saturating_duration_since(now))
            // Below 100 ms a destroy cannot complete even on loopback under load.
            .max(Duration::from_millis(100));
        match write(timeout).await {
            Ok(()) => return Ok(()),
            Err(e) if retry_after(&e, client, started, end.at()) => {
                tracing::debug!(error = %e, attempt, "the release was not confirmed; retrying");
                end.saw(&e);
                attempt += 1;
                on_retry();
                let delay = backoff.next_delay();
                tokio::time::sleep_until((Instant::now() + delay).min(end.at())).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether a failed session create may have been carried out by Consul all the same: it
/// answered 5xx (during an election, `EOF` after the write was applied), or the request went
/// out and no answer came back.
pub(crate) fn create_may_have_happened(e: &Error) -> bool {
    match e {
        Error::ConsulRefused { status, .. } => *status >= 500,
        Error::Unreachable { .. } => e.may_have_reached_consul(),
        _ => false,
    }
}

/// Hands to the background the search for a session created under `name` whose create answer was
/// lost: once Consul lists sessions again, every session with that name is destroyed. Gives
/// up when Consul would have ended such a session on its own.
pub(crate) fn sweep_unconfirmed_create(
    bg: impl Background,
    client: Client,
    key: String,
    name: String,
    ttl: Duration,
) {
    bg.detach(async move {
        let started = Instant::now();
        let mut end = SessionEnd::after(started, ttl).not_before(started + client.request_timeout());
        let mut backoff = retry_policy();
        loop {
            let timeout = client.request_timeout();
            // A consistent list: a new leader answers it only once it has applied what the
            // last one left in the log, where a create answered `EOF` may still be.
            match client.session_list_consistent(&key, timeout).await {
                Ok(sessions) => {
                    for session in sessions.into_iter().filter(|s| s.name == name) {
                        tracing::debug!(key = %key, session = %session.id, "destroying a session whose create answer was lost");
                        if let Err(e) =
                            destroy_until_confirmed(&client, &key, &session.id, end, || {})
                                .await
                        {
                            tracing::warn!(key = %key, error = %e, "could not destroy a session whose create answer was lost; its TTL will end it");
                        }
                    }
                    return;
                }
                Err(e) if retry_after(&e, &client, started, end.at()) => {
                    end.saw(&e);
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "could not look for a session whose create answer was lost; its TTL will end it");
                    return;
                }
            }
        }
    });
}

/// How the name of a client's shared session starts: `consul-lock: shared #`, then 16 hex
/// digits that make it unique (a lock's own session is named `consul-lock: <key> #…`).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).agent_is_server(false).build()?;
/// use consul_lock_runtime::{Lock, SHARED_SESSION_NAME_PREFIX};
/// let guard = Lock::new("jobs/f").client(&client).acquire().await?;
/// let sessions = client.sessions().await?;
/// let session = sessions.iter().find(|s| s.id == guard.session_id()).expect("listed");
/// assert!(session.name.starts_with(SHARED_SESSION_NAME_PREFIX));
/// # Ok(()) }
/// ```
pub const SHARED_SESSION_NAME_PREFIX: &str = "consul-lock: shared #";

/// A unique name for a client's shared session ([`SHARED_SESSION_NAME_PREFIX`]).
pub(crate) fn shared_session_name() -> String {
    format!("{SHARED_SESSION_NAME_PREFIX}{:016x}", fastrand::u64(..))
}

/// A unique session name for a lock on `key`: `consul-lock: <key> #<16 hex digits>`. The
/// suffix lets a create whose answer was lost be found again.
pub(crate) fn session_name(key: &str) -> String {
    format!("consul-lock: {key} #{:016x}", fastrand::u64(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16, message: &str) -> Error {
        Error::ConsulRefused {
            key: "k".into(),
            operation: "destroy the session",
            status,
            message: message.into(),
        }
    }

    #[test]
    fn elections_move_a_sessions_end_up_to_a_limit() {
        let ttl = Duration::from_secs(10);
        let start = Instant::now() - Duration::from_secs(30);
        let mut end = SessionEnd::after(start, ttl);
        assert_eq!(end.at(), start + ttl * 2);
        // Not a sign of an election: the end stays.
        end.saw(&refused(403, "Permission denied"));
        assert_eq!(end.at(), start + ttl * 2);
        // No leader: the next one restarts the timer, so 2 × TTL from now.
        let before = Instant::now();
        end.saw(&refused(500, "rpc error making call: EOF"));
        assert!(end.at() >= before + ttl * 2 && end.at() <= Instant::now() + ttl * 2);
        // Never past the limit, however long the elections go on.
        let long_ago = Instant::now() - Duration::from_secs(100);
        let mut end = SessionEnd::after(long_ago, ttl);
        end.saw(&refused(500, "No cluster leader"));
        assert_eq!(end.at(), long_ago + ttl * 2 + MAX_ELECTIONS);
    }
}
