//! The one entry path of every kind of lock ([`Lock`](crate::Lock),
//! [`MultiLock`](crate::MultiLock), [`Semaphore`](crate::Semaphore)): re-entry is checked
//! where the caller is, the protocol's acquire (local turns, the round, metrics) runs where it
//! should ([`exec::run`] / [`exec::run_blocking`]), and what it took becomes a [`Lease`] and a
//! [`LockGuard`], started where the acquire ran (so that a guard whose caller went away is
//! dropped, and released, there). Each kind's guard wraps that [`LockGuard`].

use std::future::Future;

use crate::exec::{self, Exec};
use crate::guard::LockGuard;
use crate::protocol::acquire::{self, Plan};
use crate::protocol::key_state::Caller;
use crate::protocol::kind::Kind;
use crate::protocol::lease::Lease;
use crate::{Error, Result};

/// The whole acquisition of `plan` as one piece of work, `wrap`ping the guard for the kind.
///
/// # Errors
///
/// [`Error::Reentrant`] when the calling task or thread holds one of the lock's keys through
/// the same client, before any request; the work itself fails as the acquire does.
pub(crate) fn acquisition<K: Kind, G>(
    plan: Plan<K>,
    renew: bool,
    wrap: impl FnOnce(LockGuard) -> G + Send + 'static,
) -> Result<impl Future<Output = Result<G>> + Send + 'static> {
    // The holder: the caller's task or thread, here (the acquisition may run elsewhere).
    let (keys, slots) = plan.kind.records();
    let caller = Caller::check(&plan.client, keys, slots).map_err(|e| match e {
        Error::Reentrant { key } => Error::Reentrant {
            key: plan.kind.name_of(&key),
        },
        e => e,
    })?;
    Ok(async move {
        // What kind of agent this is decides what can end the lease (learnt once per client).
        let client = plan.client.clone();
        let taken = client
            .acquire_learning(
                plan.kind.label(),
                acquire::acquire(&plan, caller.records(), Exec),
            )
            .await?;
        let Plan {
            client,
            kind,
            ttl,
            metrics_name,
            ..
        } = plan;
        let label = kind.label().to_owned();
        let mut lease = Lease::new(
            client,
            label,
            taken.keys,
            taken.session_id,
            ttl,
            taken.renewed,
        )
        .with_metrics_name(metrics_name)
        .with_turns(taken.turns, caller.records().clone());
        if let Some(shared) = taken.shared {
            // On the shared session the lock ends a lock timeout after the write that took it,
            // unless it renews (the shared session's renewals keep it then).
            let deadline = (!renew).then_some(taken.sent + ttl);
            lease = lease.with_shared(shared, deadline);
        }
        Ok(wrap(LockGuard::start(lease, renew, caller)))
    })
}

/// Runs an acquisition from async code (the entry points' `acquire`).
pub(crate) async fn run<G: Send + 'static>(
    work: Result<impl Future<Output = Result<G>> + Send + 'static>,
) -> Result<G> {
    exec::run(work?).await
}

/// Runs an acquisition, blocking the calling thread (`acquire_blocking`).
pub(crate) fn run_blocking<G: Send + 'static>(
    work: Result<impl Future<Output = Result<G>> + Send + 'static>,
) -> Result<G> {
    exec::run_blocking(work?)
}

/// "Not acquired in time" as `None` (the try and fail-soft forms).
pub(crate) fn not_acquired_as_none<G>(result: Result<G>) -> Result<Option<G>> {
    match result {
        Ok(guard) => Ok(Some(guard)),
        Err(Error::NotAcquired { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}
