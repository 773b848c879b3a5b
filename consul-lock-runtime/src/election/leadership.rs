//! A won election: the lock that makes this process the leader, the signal that tells its
//! work to stop (the leadership lost, or its lease about to run out without a renewal, or a
//! resign), and the leader's fenced writes.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::record;
use crate::{exec, metrics, LockGuard, LockHandle, Lost, LostReason, Result};

/// Why a leader's work must stop ([`Leadership::stopping`]).
///
/// ```
/// use consul_lock_runtime::{LostReason, StopCause};
/// let cause = StopCause::Lost(LostReason::SessionInvalidated);
/// assert!(cause.to_string().contains("no longer leads"));
/// assert!(StopCause::Expiring.to_string().contains("grace"));
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopCause {
    /// The leadership is lost: another process may lead from now on. Stop at once.
    Lost(LostReason),
    /// Renewals have failed until less than the grace is left of the lease: the work has the
    /// rest of the lease (at most the grace) to stop before another process may lead.
    Expiring,
    /// This process resigned ([`Leadership::resign`]), or the [`Runner`](crate::Runner) was
    /// told to stop: the work has the grace to stop, then the leadership is given up.
    Resigned,
}

impl fmt::Display for StopCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopCause::Lost(reason) => write!(f, "this process no longer leads: {reason}"),
            StopCause::Expiring => f.write_str(
                "renewals failed until less than the grace was left of the lease; the work must \
                 stop before the lease runs out",
            ),
            StopCause::Resigned => f.write_str("the leadership is being given up (resign or stop)"),
        }
    }
}

/// Leadership of an [`Election`](crate::Election), from a won
/// [`campaign`](crate::Election::campaign) or handed to the work of
/// [`run`](crate::Election::run).
///
/// It is a lease: [`is_leader`](Self::is_leader) says whether this process still leads (never
/// `true` once another process may lead), [`stopping`](Self::stopping) completes when the work
/// must stop (lost, or the lease about to run out within the grace), and the
/// [fencing token](Self::fencing_token) lets the systems the leader writes to refuse a leader
/// that lost the election without knowing.
///
/// Clones share one leadership. Dropping the last clone resigns in the background;
/// [`resign`](Self::resign) resigns and waits for Consul's confirmation (and ends it for every
/// clone).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// use consul_lock_runtime::Election;
/// let election = Election::new("compactor").client(&client);
/// let leadership = election.campaign().await?;
/// assert!(leadership.is_leader());
/// assert_eq!(leadership.key(), "service/compactor/leader");
/// tokio::select! {
///     cause = leadership.stopping() => eprintln!("stopping: {cause}"),
///     () = tokio::time::sleep(std::time::Duration::from_millis(20)) => println!("compacted"),
/// }
/// leadership.resign().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Leadership {
    inner: Arc<Inner>,
}

struct Inner {
    /// The election's name: the metrics label.
    name: Arc<str>,
    handle: LockHandle,
    /// The lock; taken out by `resign`.
    guard: Mutex<Option<LockGuard>>,
    since: SystemTime,
    elected_at: Instant,
    grace: Duration,
    stop: watch::Sender<Option<StopCause>>,
    watchdog: Option<AbortHandle>,
    ended: AtomicBool,
}

impl Inner {
    fn end(&self) {
        if !self.ended.swap(true, Ordering::SeqCst) {
            metrics::leadership_ended(&self.name, self.elected_at.elapsed());
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(watchdog) = &self.watchdog {
            watchdog.abort();
        }
        self.end();
        // Dropping the guard releases the lock in the background.
    }
}

impl Leadership {
    /// The leadership held by `guard`, taken at `since`; its work is told to stop `grace`
    /// before the lease would run out without a renewal.
    pub(crate) fn new(
        name: Arc<str>,
        guard: LockGuard,
        since: SystemTime,
        grace: Duration,
    ) -> Leadership {
        let handle = guard.handle();
        let stop = watch::channel(None).0;
        let watchdog = exec::spawn_task(watchdog(handle.clone(), grace, stop.clone())).ok();
        metrics::elected(&name);
        Leadership {
            inner: Arc::new(Inner {
                name,
                handle,
                guard: Mutex::new(Some(guard)),
                since,
                elected_at: Instant::now(),
                grace,
                stop,
                watchdog,
                ended: AtomicBool::new(false),
            }),
        }
    }

    /// The leader key.
    #[must_use]
    pub fn key(&self) -> &str {
        self.inner.handle.key()
    }

    /// The Consul session that holds the leader key.
    #[must_use]
    pub fn session_id(&self) -> &str {
        self.inner.handle.session_id()
    }

    /// The fencing token of this leadership: the `ModifyIndex` of the write that took the
    /// leader key. Every later leadership has a greater one; hand it to the systems the leader
    /// writes to, so that they refuse writes of a deposed leader.
    #[must_use]
    pub fn fencing_token(&self) -> u64 {
        self.inner.handle.fencing_token()
    }

    /// When this process became leader (its own clock).
    #[must_use]
    pub fn since(&self) -> SystemTime {
        self.inner.since
    }

    /// How long before the lease would run out without a renewal the work is told to stop
    /// (see [`Election::grace`](crate::Election::grace)).
    #[must_use]
    pub fn grace(&self) -> Duration {
        self.inner.grace
    }

    /// Whether this process still leads: not resigned, no loss seen, and the lease has not run
    /// out. Never `true` after the moment another process may have become leader (it is the
    /// lock's [`is_held`](LockHandle::is_held)).
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.inner.handle.is_held()
    }

    /// A future that completes when the leadership is lost (or resigned), with the reason.
    pub fn lost(&self) -> Lost {
        self.inner.handle.lost()
    }

    /// A future that completes when the leader's work must stop, with the cause: the
    /// leadership is lost ([`StopCause::Lost`]: stop at once), renewals have failed until less
    /// than the [grace](Self::grace) is left of the lease ([`StopCause::Expiring`]), or this
    /// process is resigning ([`StopCause::Resigned`]). Work that stops within the grace of
    /// `Expiring` or `Resigned` stops before another process can lead.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::{Election, LostReason, StopCause};
    /// let leadership = Election::new("stopping-example").client(&client).campaign().await?;
    /// client.destroy_session(leadership.session_id()).await?; // an operator ends it
    /// let cause = leadership.stopping().await;
    /// assert!(matches!(cause, StopCause::Lost(LostReason::SessionInvalidated)));
    /// assert!(!leadership.is_leader());
    /// # Ok(()) }
    /// ```
    pub fn stopping(&self) -> Stopping {
        let mut rx = self.inner.stop.subscribe();
        Stopping {
            inner: Box::pin(async move {
                match rx.wait_for(Option::is_some).await {
                    Ok(cause) => cause.clone().unwrap_or(StopCause::Resigned),
                    Err(_) => StopCause::Resigned,
                }
            }),
        }
    }

    /// Why the work must stop, or `None` while it may go on.
    #[must_use]
    pub fn stop_cause(&self) -> Option<StopCause> {
        self.inner.stop.borrow().clone()
    }

    /// Writes that Consul applies only while this process still leads (the lock's
    /// [`Fence`](crate::Fence)): a deposed leader, knowing it or not, is refused with
    /// [`Error::LockLost`](crate::Error::LockLost) and nothing is written.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::{Election, Error};
    /// let leadership = Election::new("fence-example").client(&client).campaign().await?;
    /// let fence = leadership.fence();
    /// fence.put("jobs/schedule/next", "02:00").await?;
    /// client.destroy_session(leadership.session_id()).await?; // deposed
    /// assert!(matches!(fence.put("jobs/schedule/next", "03:00").await, Err(Error::LockLost { .. })));
    /// assert_eq!(client.kv_get("jobs/schedule/next").await?.expect("kept").value, b"02:00");
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn fence(&self) -> crate::Fence {
        self.inner.handle.fence()
    }

    /// A cloneable view of the lock behind this leadership, for code that takes a
    /// [`LockHandle`].
    #[must_use]
    pub fn handle(&self) -> LockHandle {
        self.inner.handle.clone()
    }

    /// The time left until the lease would run out without another renewal (zero once it is
    /// not held).
    pub(crate) fn lease_left(&self) -> Duration {
        if !self.is_leader() {
            return Duration::ZERO;
        }
        self.inner
            .handle
            .valid_until()
            .saturating_duration_since(Instant::now())
    }

    /// Tells the work to stop (the first cause wins).
    pub(crate) fn signal_stop(&self, cause: StopCause) {
        signal(&self.inner.stop, cause);
    }

    /// Replaces the leader's value with `value`, as one write that Consul applies only while
    /// this process still leads: followers reading the key (as Consul's guide has them do)
    /// and [observers](crate::Election::observe) see it. The fencing token does not change.
    ///
    /// # Errors
    ///
    /// [`Error::LockLost`](crate::Error::LockLost) when this process no longer leads (Consul
    /// refused it: nothing was written); [`Error::InvalidOption`](crate::Error::InvalidOption)
    /// for a value over Consul's size limit, before any request;
    /// [`Error::PermissionDenied`](crate::Error::PermissionDenied),
    /// [`Error::ConsulRefused`](crate::Error::ConsulRefused) (5xx) or
    /// [`Error::Unreachable`](crate::Error::Unreachable) when Consul refused or could not be
    /// asked (then it may or may not have been applied).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Election;
    /// let election = Election::new("proclaim-example").client(&client).value("starting");
    /// let leadership = election.campaign().await?;
    /// leadership.proclaim("serving on 10.0.0.7:8080").await?;
    /// let leader = election.leader().await?.expect("leads");
    /// assert_eq!(leader.value_str(), Some("serving on 10.0.0.7:8080"));
    /// assert_eq!(leader.fencing_token, leadership.fencing_token());
    /// # leadership.resign().await?;
    /// # Ok(()) }
    /// ```
    pub async fn proclaim(&self, value: impl Into<Vec<u8>>) -> Result<()> {
        let value = value.into();
        record::check_value_size(self.key(), value.len())?;
        let handle = self.inner.handle.clone();
        exec::run(async move { record::proclaim(&handle, &value).await }).await
    }

    /// Gives up the leadership and waits for Consul to confirm it (up to the client's request
    /// timeout; past that the release goes on in the background, see
    /// [`flush_releases`](crate::flush_releases)). The next candidate is elected at once.
    /// Every clone of this leadership sees it end.
    ///
    /// # Errors
    ///
    /// As [`LockGuard::release`]: Consul could not confirm the release in time; the lease
    /// then ends by itself within its TTL.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let election = consul_lock_runtime::Election::new("resign-example").client(&client);
    /// let leadership = election.campaign().await?;
    /// let view = leadership.clone();
    /// leadership.resign().await?;
    /// assert!(!view.is_leader());
    /// assert!(election.leader().await?.is_none());
    /// # Ok(()) }
    /// ```
    pub async fn resign(self) -> Result<()> {
        self.signal_stop(StopCause::Resigned);
        let guard = self
            .inner
            .guard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.inner.end();
        match guard {
            Some(guard) => guard.release().await,
            None => Ok(()),
        }
    }
}

impl fmt::Debug for Leadership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leadership")
            .field("election", &self.inner.name)
            .field("key", &self.key())
            .field("session_id", &self.session_id())
            .field("fencing_token", &self.fencing_token())
            .field("leader", &self.is_leader())
            .field("stop_cause", &self.stop_cause())
            .finish()
    }
}

/// The future returned by [`Leadership::stopping`].
#[must_use = "futures do nothing unless awaited"]
pub struct Stopping {
    inner: BoxFuture<'static, StopCause>,
}

impl Future for Stopping {
    type Output = StopCause;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<StopCause> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for Stopping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Stopping")
    }
}

fn signal(stop: &watch::Sender<Option<StopCause>>, cause: StopCause) {
    stop.send_if_modified(|state| {
        if state.is_some() {
            return false;
        }
        *state = Some(cause);
        true
    });
}

/// Tells the work to stop when the leadership is lost, or when less than `grace` is left of
/// the lease and no renewal came meanwhile.
async fn watchdog(handle: LockHandle, grace: Duration, stop: watch::Sender<Option<StopCause>>) {
    let mut lost = handle.lost();
    loop {
        let until = handle.valid_until();
        let alarm = until.checked_sub(grace).unwrap_or(until);
        tokio::select! {
            biased;
            reason = &mut lost => {
                signal(&stop, StopCause::Lost(reason));
                return;
            }
            () = tokio::time::sleep_until(alarm) => {}
        }
        if handle.valid_until() > until {
            continue; // renewed meanwhile
        }
        if !handle.is_held() {
            let reason = handle.lost_reason().unwrap_or(LostReason::Expired);
            signal(&stop, StopCause::Lost(reason));
            return;
        }
        signal(&stop, StopCause::Expiring);
        // Report the loss itself too, for `stop_cause` readers that come later.
        let reason = lost.await;
        tracing::debug!(%reason, "leadership ended after its work was told to stop");
        return;
    }
}
