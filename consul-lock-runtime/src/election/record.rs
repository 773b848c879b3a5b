//! The leader's own writes: the leadership record beside the leader key (written once, right
//! after the key is taken) and a proclaim (a new value in the leader key). Both are a fenced
//! write (the lock's [`Fence`](crate::Fence): one transaction that Consul applies only while
//! the leader's session still holds the key), whose operation `lock`s its key with that
//! session, so that the record and the value go when the leadership goes.

use std::time::{Duration, SystemTime};

use super::leader::{record_key, Record};
use crate::api::fenced::{FencedOutcome, WireOp};
use crate::protocol::retry::Backoff;
use crate::value::{txn_body_size, MAX_VALUE_SIZE};
use crate::{Error, LockHandle, Result, GO_LOCK_FLAG};

/// Refuses a value that would make the proclaim's transaction too large, before any request.
pub(crate) fn check_value_size(key: &str, len: usize) -> Result<()> {
    let body = txn_body_size([(key, 0), (key, len)]);
    if body > MAX_VALUE_SIZE {
        return Err(Error::InvalidOption {
            option: "value",
            reason: format!(
                "the value for election key `{key}` is {len} bytes, which makes a {body}-byte \
                 transaction (the value is base64-encoded) over Consul's limit of \
                 {MAX_VALUE_SIZE} bytes (512 KiB); keep the value under about 380 KiB"
            ),
        });
    }
    Ok(())
}

/// `lock`s `key` with `value` and `flags` by the leadership's session, through the lock's
/// fence: applied only while the session holds the leader key; [`Error::LockLost`] otherwise.
async fn lock_fenced(
    handle: &LockHandle,
    key: &str,
    value: &[u8],
    flags: u64,
    timeout: Duration,
) -> Result<()> {
    let fence = handle.fence();
    let op = WireOp {
        verb: "lock",
        key,
        value: Some(value),
        index: None,
        session: Some(handle.session_id()),
        flags: Some(flags),
    };
    let client = handle.client();
    let label = handle.key();
    match client
        .txn_fenced(label, fence.checks(), None, &[op], timeout)
        .await?
    {
        FencedOutcome::Applied(_) => Ok(()),
        FencedOutcome::Refused(errors) => {
            let checks = fence.checks().len();
            if let Some((_, what)) = errors.iter().find(|(i, _)| *i < checks) {
                return Err(Error::LockLost {
                    key: label.to_owned(),
                    message: format!("{what}: this process no longer leads the election"),
                });
            }
            let what = errors
                .iter()
                .map(|(_, what)| what.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            Err(crate::api::txn::refused(
                label,
                "write as the leader (fenced)",
                what,
            ))
        }
    }
}

/// Writes `value` into the leader key, if the leadership's session still holds it. Go's lock
/// flag stays on the key, so Go's `api.Lock` waiting on it goes on waiting.
pub(crate) async fn proclaim(handle: &LockHandle, value: &[u8]) -> Result<()> {
    let timeout = handle.client().request_timeout();
    lock_fenced(handle, handle.key(), value, GO_LOCK_FLAG, timeout).await
}

/// Whether the record was written.
pub(crate) enum Written {
    Yes,
    /// The key was lost before the record could be written.
    NotLeader,
}

/// Writes the leadership record (session, fencing token, since), retrying transient failures
/// while the lease lasts.
pub(crate) async fn write(handle: &LockHandle, since: SystemTime) -> Result<Written> {
    let client = handle.client();
    let record = Record::new(handle.session_id(), handle.fencing_token(), since).to_json();
    let record_key = record_key(handle.key());
    let mut backoff = Backoff::between(Duration::from_millis(10), Duration::from_millis(500));
    loop {
        if !handle.is_held() {
            return Ok(Written::NotLeader);
        }
        let left = handle
            .valid_until()
            .saturating_duration_since(tokio::time::Instant::now());
        let timeout = left
            .min(client.request_timeout())
            .max(Duration::from_millis(1));
        match lock_fenced(handle, &record_key, &record, 0, timeout).await {
            Ok(()) => return Ok(Written::Yes),
            Err(Error::LockLost { .. }) => return Ok(Written::NotLeader),
            Err(e) if e.is_invalid_session() => return Ok(Written::NotLeader),
            Err(e) if e.is_transient() => {
                tracing::debug!(error = %e, "writing the leadership record failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => return Err(e),
        }
    }
}
