//! Ending sessions for sure, through leader elections and lost answers.
//!
//! During a leader election Consul answers writes at once with 500 (`rpc error making call:
//! EOF`, `failed to get conn … connection refused`) for one to several seconds, and a write
//! answered `EOF` may still have been applied. A release that gave up after a few quick tries
//! left the key held until its TTL, and every waiter stalled that long. So:
//!
//! - a session is destroyed with retries (jittered backoff up to 1 s) until Consul confirms it,
//!   or until Consul has certainly ended the session on its own ([`session_end_bound`]);
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
/// up to twice the TTL; a new leader restarts the timer). Past this bound from the last
/// renewal, there is nothing left to destroy.
pub(crate) fn session_end_bound(last_renewal: Instant, ttl: Duration) -> Instant {
    last_renewal + ttl * 2
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
/// unknown session is confirmed too), a non-transient error, or `give_up_at`.
///
/// Returns the last error when it gives up; the caller logs it. `on_retry` is called before
/// each request sent again (the release counts them in its metrics).
pub(crate) async fn destroy_until_confirmed(
    client: &Client,
    key: &str,
    session: &str,
    give_up_at: Instant,
    mut on_retry: impl FnMut(),
) -> Result<()> {
    let started = Instant::now();
    let mut backoff = retry_policy();
    let mut attempt = 1u32;
    loop {
        let now = Instant::now();
        let timeout = client
            .request_timeout()
            .min(give_up_at.saturating_duration_since(now))
            // Below 100 ms a destroy cannot complete even on loopback under load.
            .max(Duration::from_millis(100));
        match client.session_destroy(key, session, timeout).await {
            Ok(()) => return Ok(()),
            Err(e) if retry_after(&e, client, started, give_up_at) => {
                tracing::debug!(error = %e, attempt, "destroying the session failed; retrying");
                attempt += 1;
                on_retry();
                let delay = backoff.next_delay();
                tokio::time::sleep_until((Instant::now() + delay).min(give_up_at)).await;
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
        let give_up_at = session_end_bound(started, ttl) + client.request_timeout();
        let mut backoff = retry_policy();
        loop {
            let timeout = client.request_timeout();
            match client.session_list(&key, timeout).await {
                Ok(sessions) => {
                    for session in sessions.into_iter().filter(|s| s.name == name) {
                        tracing::debug!(key = %key, session = %session.id, "destroying a session whose create answer was lost");
                        if let Err(e) =
                            destroy_until_confirmed(&client, &key, &session.id, give_up_at, || {})
                                .await
                        {
                            tracing::warn!(key = %key, error = %e, "could not destroy a session whose create answer was lost; its TTL will end it");
                        }
                    }
                    return;
                }
                Err(e) if retry_after(&e, &client, started, give_up_at) => {
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

/// A unique session name for a lock on `key`: `consul-lock: <key> #<16 hex digits>`. The
/// suffix lets a create whose answer was lost be found again.
pub(crate) fn session_name(key: &str) -> String {
    format!("consul-lock: {key} #{:016x}", fastrand::u64(..))
}
