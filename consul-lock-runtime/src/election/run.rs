//! The leader's loop: campaign, run the work while leading, tell it to stop when the
//! leadership ends (or is about to), give it at most the grace (never more than the lease has
//! left), give the leadership up, campaign again; until the work returns or the caller says
//! stop. Events say when this process started and stopped leading, and who leads.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use futures::StreamExt as _;
use tokio::time::Instant;

use super::{campaign, Election, Leader, Leadership, Observation, StopCause};
use crate::{exec, Error, LostReason};

/// What a [`Runner`] reports to its [`on_event`](Runner::on_event) callback.
///
/// `Started` and `Stopped` come in pairs: a process that never led is never told it stopped.
///
/// ```
/// use consul_lock_runtime::RunEvent;
/// let event = RunEvent::Started { fencing_token: 42 };
/// assert_eq!(event.to_string(), "started leading (fencing token 42)");
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunEvent {
    /// This process was elected; its work starts now.
    Started {
        /// The leadership's fencing token.
        fencing_token: u64,
    },
    /// This process stopped leading: its work has stopped (or was cancelled) and the
    /// leadership is given up.
    Stopped {
        /// The leadership's fencing token.
        fencing_token: u64,
        /// Why: the leadership lost, its lease about to run out, or given up (the work
        /// returned, or the runner was told to stop).
        cause: StopCause,
        /// Whether the work had to be cancelled (dropped) because it did not stop within the
        /// time it had: the grace, or nothing once the leadership was lost.
        cancelled: bool,
        /// From the moment the work was told to stop until it was stopped.
        took: Duration,
    },
    /// A new leader, this process or another, as an observer sees it (only when a callback is
    /// set: the runner then observes the election).
    NewLeader(Leader),
    /// Nobody leads (only when a callback is set).
    NoLeader,
}

impl fmt::Display for RunEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunEvent::Started { fencing_token } => {
                write!(f, "started leading (fencing token {fencing_token})")
            }
            RunEvent::Stopped {
                fencing_token,
                cause,
                cancelled,
                took,
            } => write!(
                f,
                "stopped leading (fencing token {fencing_token}) after {:.0} ms{}: {cause}",
                took.as_secs_f64() * 1000.0,
                if *cancelled { ", work cancelled" } else { "" }
            ),
            RunEvent::NewLeader(leader) => write!(f, "new leader: {leader}"),
            RunEvent::NoLeader => f.write_str("no leader"),
        }
    }
}

type Callback = Box<dyn FnMut(RunEvent) + Send>;

/// [`Election::run`] with events and a stop signal: get one from [`Election::runner`].
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// use consul_lock_runtime::{Election, Error, RunEvent};
/// use std::sync::{Arc, Mutex};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let log = seen.clone();
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let runner = Election::new("runner-example")
///     .client(&client)
///     .runner()
///     .on_event(move |event| log.lock().unwrap().push(event))
///     .until(async move { let _ = stopped.await; });
/// let running = tokio::spawn(runner.run(|leadership| async move {
///     leadership.stopping().await; // work until told to stop
///     Ok::<(), Error>(())
/// }));
/// # while !seen.lock().unwrap().iter().any(|e| matches!(e, RunEvent::Started { .. })) { tokio::time::sleep(std::time::Duration::from_millis(5)).await; }
/// // … once it leads:
/// stop.send(()).unwrap();
/// assert_eq!(running.await??, None); // stopped, not returned by the work
/// let events = seen.lock().unwrap();
/// assert!(events.iter().any(|e| matches!(e, RunEvent::Stopped { cancelled: false, .. })));
/// # Ok(()) }
/// ```
pub struct Runner {
    election: Election,
    on_event: Option<Callback>,
    until: Option<BoxFuture<'static, ()>>,
}

impl fmt::Debug for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner")
            .field("election", &self.election)
            .field("on_event", &self.on_event.is_some())
            .field("until", &self.until.is_some())
            .finish()
    }
}

/// How the work's turn ended.
enum Turn<T, E> {
    Returned(Result<T, E>),
    Stop(StopCause),
}

impl Runner {
    pub(crate) fn new(election: Election) -> Runner {
        Runner {
            election,
            on_event: None,
            until: None,
        }
    }

    /// Calls `callback` with each [`RunEvent`], from the runner's own task (keep it short).
    /// With a callback the runner also observes the election, for `NewLeader` and `NoLeader`.
    #[must_use]
    pub fn on_event(mut self, callback: impl FnMut(RunEvent) + Send + 'static) -> Runner {
        self.on_event = Some(Box::new(callback));
        self
    }

    /// Stops the runner when `signal` completes (a shutdown signal): a campaign is withdrawn
    /// at once; a leader's work is told to stop ([`StopCause::Resigned`]), given the grace,
    /// and the leadership given up; then [`run`](Self::run) returns `Ok(None)`.
    #[must_use]
    pub fn until(mut self, signal: impl Future<Output = ()> + Send + 'static) -> Runner {
        self.until = Some(signal.boxed());
        self
    }

    /// Runs the loop (see [`Election::run`]): `Ok(Some(value))` when the work returned
    /// `Ok(value)` by itself, `Ok(None)` when stopped by [`until`](Self::until).
    ///
    /// # Errors
    ///
    /// As [`Election::run`].
    pub async fn run<F, Fut, T, E>(mut self, mut work: F) -> Result<Option<T>, E>
    where
        F: FnMut(Leadership) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<Error>,
    {
        let mut plan = self.election.plan().map_err(E::from)?;
        plan.campaign_timeout = None;
        let mut events = self.on_event.take();
        let mut observer = events.as_ref().map(|_| self.election.observe().fuse());
        let mut until = self.until.take().map(FutureExt::fuse);
        let mut emit = |event: RunEvent| {
            if let Some(callback) = events.as_mut() {
                callback(event);
            }
        };
        loop {
            // Campaign, until elected or told to stop.
            let mut campaigning = Box::pin(exec::run(campaign(plan.clone())).fuse());
            let leadership = loop {
                tokio::select! {
                    biased;
                    () = signal(&mut until) => return Ok(None),
                    elected = &mut campaigning => break elected.map_err(E::from)?,
                    observed = next(&mut observer) => emit_observed(&mut emit, observed),
                }
            };
            drop(campaigning);
            let token = leadership.fencing_token();
            emit(RunEvent::Started {
                fencing_token: token,
            });

            // Lead, until the work returns or must stop.
            let mut stopping_requested = false;
            let mut turn = Box::pin(work(leadership.clone()));
            let outcome = loop {
                tokio::select! {
                    biased;
                    cause = leadership.stopping() => break Turn::Stop(cause),
                    () = signal(&mut until) => {
                        stopping_requested = true;
                        leadership.signal_stop(StopCause::Resigned);
                    }
                    returned = &mut turn => break Turn::Returned(returned),
                    observed = next(&mut observer) => emit_observed(&mut emit, observed),
                }
            };

            match outcome {
                Turn::Returned(result) => {
                    drop(turn);
                    let told = Instant::now();
                    if let Err(e) = leadership.clone().resign().await {
                        tracing::warn!(key = %plan.key, error = %e, "resigning after the work returned failed; the lease ends by itself");
                    }
                    emit(RunEvent::Stopped {
                        fencing_token: token,
                        cause: StopCause::Resigned,
                        cancelled: false,
                        took: told.elapsed(),
                    });
                    return result.map(Some);
                }
                Turn::Stop(cause) => {
                    let told = Instant::now();
                    // Never longer than the lease has left; nothing once it is lost.
                    let allowed = match cause {
                        StopCause::Lost(_) => Duration::ZERO,
                        _ => plan.grace.min(leadership.lease_left()),
                    };
                    let finished = tokio::select! {
                        biased;
                        returned = &mut turn => Some(returned),
                        () = sleep(allowed) => None,
                    };
                    let cancelled = finished.is_none();
                    drop(turn);
                    if let Some(Err(_)) = finished {
                        tracing::debug!(key = %plan.key, "the work returned an error after it was told to stop");
                    }
                    let took = told.elapsed();
                    // Given up, or taken away while Consul answers: the release is awaited, so
                    // that the next campaign knows this process just left and queues behind
                    // the candidates that waited (a deposed leader does not win again at once).
                    // Renewals failing (Consul unreachable): the release goes on in the
                    // background.
                    let await_release = matches!(
                        cause,
                        StopCause::Resigned
                            | StopCause::Lost(
                                LostReason::KeyTakenOver { .. } | LostReason::SessionInvalidated
                            )
                    );
                    if await_release {
                        if let Err(e) = leadership.clone().resign().await {
                            tracing::warn!(key = %plan.key, error = %e, "resigning failed; the lease ends by itself");
                        }
                    } else {
                        drop(leadership);
                    }
                    emit(RunEvent::Stopped {
                        fencing_token: token,
                        cause,
                        cancelled,
                        took,
                    });
                    if stopping_requested {
                        return Ok(None);
                    }
                }
            }
        }
    }
}

/// Completes when the stop signal does (never without one).
async fn signal(until: &mut Option<futures::future::Fuse<BoxFuture<'static, ()>>>) {
    match until {
        Some(f) => f.await,
        None => futures::future::pending().await,
    }
}

/// The observer's next item (never without an observer, or once it has ended).
async fn next(
    observer: &mut Option<futures::stream::Fuse<super::Observe>>,
) -> Option<crate::Result<Observation>> {
    match observer {
        Some(o) if !o.is_done() => o.next().await,
        _ => futures::future::pending().await,
    }
}

fn emit_observed(emit: &mut impl FnMut(RunEvent), observed: Option<crate::Result<Observation>>) {
    match observed {
        Some(Ok(Observation::Leader(leader))) => emit(RunEvent::NewLeader(leader)),
        Some(Ok(Observation::NoLeader)) => emit(RunEvent::NoLeader),
        Some(Ok(_)) | None => {}
        Some(Err(e)) => {
            tracing::warn!(error = %e, "observing the election failed; no more leader events")
        }
    }
}

/// A sleep that works on any executor (on the worker when the caller is not on tokio).
async fn sleep(duration: Duration) {
    let _ = exec::run(async move {
        tokio::time::sleep(duration).await;
        Ok(())
    })
    .await;
}
