//! The leader's own writes: the leadership record beside the leader key (written once, right
//! after the key is taken) and a proclaim (a new value in the leader key). Both are one
//! transaction that Consul applies only while the leader's session still holds the key, and
//! both `lock` their key with that session, so that they go when the leadership goes.
//!
//! SEAM (issue 18): the transaction is [`Client::txn_relock`]; once issue 18's fenced writes
//! are on `main`, it goes through their `Fence` (the one fenced write) and a refusal becomes
//! their `Error::LockLost`.

use std::time::{Duration, SystemTime};

use super::leader::{record_key, Record};
use crate::api::relock::Relocked;
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

/// The error for a leader write refused because the session no longer holds the key.
fn not_leader(key: &str, what: &str) -> Error {
    Error::ConsulRefused {
        key: key.to_owned(),
        operation: "write as the leader (fenced)",
        status: 409,
        message: format!(
            "{what}: this process no longer leads the election, so nothing was written; \
             campaign again"
        ),
    }
}

/// Writes `value` into the leader key, if the leadership's session still holds it.
pub(crate) async fn proclaim(handle: &LockHandle, value: &[u8]) -> Result<()> {
    let client = handle.client();
    let key = handle.key();
    let locks = [(key, value, GO_LOCK_FLAG)];
    match client
        .txn_relock(key, handle.session_id(), &locks, client.request_timeout())
        .await?
    {
        Relocked::Applied(_) => Ok(()),
        Relocked::NotHeld(what) => Err(not_leader(key, &what)),
    }
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
    let key = handle.key();
    let record = Record::new(handle.session_id(), handle.fencing_token(), since).to_json();
    let record_key = record_key(key);
    let locks = [(record_key.as_str(), record.as_slice(), 0)];
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
        match client
            .txn_relock(key, handle.session_id(), &locks, timeout)
            .await
        {
            Ok(Relocked::Applied(_)) => return Ok(Written::Yes),
            Ok(Relocked::NotHeld(_)) => return Ok(Written::NotLeader),
            Err(e) if e.is_transient() => {
                tracing::debug!(error = %e, "writing the leadership record failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) if e.is_invalid_session() => return Ok(Written::NotLeader),
            Err(e) => return Err(e),
        }
    }
}
