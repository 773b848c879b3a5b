//! The steps every acquire loop shares (a lock, a lock on several keys, a semaphore's slot):
//! the session a round starts with, and what follows an attempt that neither took the key nor
//! waited for it (a lock-delay, or an error).

use std::time::Duration;

use super::outcome::Outcome;
use super::pending::PendingSession;
use super::retry::Backoff;
use super::Background;
use crate::{Blocker, Client, Error, Result};

/// A round's session.
pub(crate) struct RoundSession<B: Background> {
    pub(crate) session: PendingSession<B>,
}

/// Step 1 of a round: the session kept from the last round (`kept`), renewed when half its
/// TTL has passed, or a new one for `key`.
///
/// `Ok(None)`: start the round again (the kept session was gone, or a transient failure was
/// waited out; a kept session is then back in `kept`). `Err`: give up with this error.
pub(crate) async fn session<B: Background>(
    kept: &mut Option<PendingSession<B>>,
    bg: B,
    client: &Client,
    key: &str,
    ttl: Duration,
    out: &mut Outcome,
    backoff: &mut Backoff,
) -> Result<Option<RoundSession<B>>> {
    let Some(timeout) = out.deadline.request_timeout(client.request_timeout()) else {
        return Err(out.not_acquired());
    };
    match kept.take() {
        Some(mut s) => match s.refresh(timeout).await {
            Ok(true) => Ok(Some(RoundSession { session: s })),
            Ok(false) => {
                s.forget();
                Ok(None)
            }
            Err(e) if e.is_transient() && out.retry_after(&e, backoff).await => {
                *kept = Some(s);
                Ok(None)
            }
            Err(e) => Err(out.give_up(e)),
        },
        None => match PendingSession::create(bg, client, key, ttl, timeout).await {
            Ok(created) => Ok(Some(RoundSession { session: created })),
            Err(e) if e.is_transient() && out.retry_after(&e, backoff).await => Ok(None),
            Err(e) => Err(out.give_up(e)),
        },
    }
}

/// What an attempt ended with when it neither took the key nor waited for it.
pub(crate) enum Miss {
    /// The key is free but a lock-delay runs.
    LockDelay,
    /// The attempt failed.
    Failed(Error),
}

/// After a [`Miss`]: keeps `pending` for the next round in `kept` when it is still good, and
/// waits out a lock-delay or a transient failure. `Err`: give up with this error (the deadline
/// allows no retry, or the failure is not one to retry).
pub(crate) async fn after_miss<B: Background>(
    miss: Miss,
    pending: PendingSession<B>,
    kept: &mut Option<PendingSession<B>>,
    out: &mut Outcome,
    backoff: &mut Backoff,
) -> Result<()> {
    match miss {
        Miss::LockDelay => {
            out.blocked_by = Some(Blocker::LockDelay);
            *kept = Some(pending);
            if backoff.wait(&out.deadline).await {
                Ok(())
            } else {
                Err(out.not_acquired())
            }
        }
        Miss::Failed(e) if e.is_invalid_session() => {
            // Consul ended the session (its TTL ran out, or it was destroyed): start over.
            pending.forget();
            if out.deadline.can_retry() {
                Ok(())
            } else {
                Err(out.give_up(e))
            }
        }
        Miss::Failed(e) if e.is_transient() => {
            *kept = Some(pending);
            if out.retry_after(&e, backoff).await {
                Ok(())
            } else {
                Err(out.give_up(e))
            }
        }
        Miss::Failed(e) => Err(out.give_up(e)),
    }
}
