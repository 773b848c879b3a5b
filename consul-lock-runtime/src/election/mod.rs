//! Leader election, as Consul's guide describes it (a session takes `service/<name>/leader`
//! with `?acquire`, followers watch the key), built on the lock: a campaign is a renewed lock
//! acquisition that waits herd-free in the key's queue; the leader writes a leadership record
//! beside the key (since when, fencing token); observers watch the key alone.
//!
//! - [`Election`] (this file): the options, [`campaign`](Election::campaign),
//!   [`leader`](Election::leader), [`candidates`](Election::candidates);
//! - [`leadership`]: a won election ([`Leadership`]) and the watchdog that tells its work to
//!   stop;
//! - [`leader`]: who leads, as read from Consul ([`Leader`], [`Candidate`], the record);
//! - [`record`]: the leader's fenced writes (the record, a proclaim);
//! - [`observe`]: the stream of leaders and no-leader gaps;
//! - [`run`]: campaign, run the work while leading, stop it within the grace, again.

mod leader;
mod leadership;
mod observe;
mod record;
mod run;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

pub use leader::{Candidate, Leader, RECORD_SUFFIX};
pub use leadership::{Leadership, StopCause, Stopping};
pub use observe::{Observation, Observe};
pub use run::{RunEvent, Runner};

use crate::error::DisplayDuration;
use crate::protocol::retry::Backoff;
use crate::{defaults, exec, key, metrics, Client, Error, Lock, Result};

/// The key prefix of an election: its key is `service/<name>/leader`, as in Consul's guide.
pub const DEFAULT_ELECTION_PREFIX: &str = "service/";

/// What follows the name in an election's key.
pub const LEADER_SUFFIX: &str = "/leader";

/// The lease of a leadership (the session TTL) unless set: 15 s, as client-go's
/// `LeaseDuration`. A dead leader is replaced within 1–2 × this.
pub const DEFAULT_ELECTION_TTL: Duration = Duration::from_secs(15);

/// How long one lock acquisition of a campaign without a timeout waits before it starts over
/// (a new session, at the back of the queue): long enough never to matter.
const CAMPAIGN_ROUND: Duration = Duration::from_secs(24 * 60 * 60);

/// A leader election on one Consul key: one process at a time leads.
///
/// Every candidate creates the same `Election` (same name or key) and
/// [campaigns](Self::campaign); the one that takes the key leads until it resigns, stops
/// renewing, or loses the key. Candidates wait in the key's queue (each watching only its
/// predecessor), so a resignation wakes one candidate, not all. [`run`](Self::run) does the
/// whole loop: campaign, run the work while leading, stop it within the grace when the
/// leadership ends, campaign again. Anyone can ask [`leader`](Self::leader) or
/// [`observe`](Self::observe) who leads.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// use consul_lock_runtime::Election;
/// let election = Election::new("scheduler").client(&client).value("worker-7");
/// assert_eq!(election.full_key()?, "service/scheduler/leader");
/// let leadership = election.campaign().await?;
/// println!("leading with token {}", leadership.fencing_token());
/// let leader = election.leader().await?.expect("this process leads");
/// assert_eq!(leader.value_str(), Some("worker-7"));
/// leadership.resign().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Election {
    name: String,
    key: Option<String>,
    key_prefix: Option<String>,
    client: Option<Client>,
    ttl: Duration,
    value: Option<Arc<str>>,
    grace: Option<Duration>,
    campaign_timeout: Option<Duration>,
}

impl fmt::Debug for Election {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Election")
            .field("name", &self.name)
            .field("key", &self.full_key().ok())
            .field("client", &self.client)
            .field("ttl", &self.ttl)
            .field("grace", &self.grace)
            .field("campaign_timeout", &self.campaign_timeout)
            .finish_non_exhaustive()
    }
}

/// An election's options, resolved and checked before any request.
#[derive(Clone)]
pub(crate) struct Plan {
    pub(crate) name: Arc<str>,
    pub(crate) key: String,
    pub(crate) client: Client,
    pub(crate) grace: Duration,
    pub(crate) lock: Lock,
    pub(crate) campaign_timeout: Option<Duration>,
}

impl Election {
    /// An election named `name`, on the key `service/<name>/leader` (Consul's guide); the
    /// name may hold `/` (`billing/scheduler`). Checked when it is used.
    ///
    /// ```
    /// use consul_lock_runtime::{Election, Error};
    /// assert_eq!(Election::new("billing/scheduler").full_key()?, "service/billing/scheduler/leader");
    /// assert!(matches!(Election::new("").full_key(), Err(Error::InvalidKey { .. })));
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    pub fn new(name: impl Into<String>) -> Election {
        Election {
            name: name.into(),
            key: None,
            key_prefix: None,
            client: None,
            ttl: DEFAULT_ELECTION_TTL,
            value: None,
            grace: None,
            campaign_timeout: None,
        }
    }

    /// The prefix before `<name>/leader`, instead of `service/`.
    ///
    /// ```
    /// let election = consul_lock_runtime::Election::new("scheduler").key_prefix("apps/billing/");
    /// assert_eq!(election.full_key()?, "apps/billing/scheduler/leader");
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Election {
        self.key_prefix = Some(prefix.into());
        self
    }

    /// The whole leader key, instead of `<prefix><name>/leader`: for a key another program
    /// already uses (Go's `api.Lock` on the same key excludes this election and the other way
    /// round; for `consul lock PREFIX …` the key is `PREFIX/.lock`).
    ///
    /// ```
    /// let election = consul_lock_runtime::Election::new("reindex").key("jobs/reindex/.lock");
    /// assert_eq!(election.full_key()?, "jobs/reindex/.lock");
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    #[must_use]
    pub fn key(mut self, key: impl Into<String>) -> Election {
        self.key = Some(key.into());
        self
    }

    /// The client to use instead of [`defaults::client`].
    ///
    /// ```
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let election = consul_lock_runtime::Election::new("client-example").client(&client);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn client(mut self, client: impl Into<Client>) -> Election {
        self.client = Some(client.into());
        self
    }

    /// The lease of a leadership, the session TTL (default 15 s; Consul allows 10 s..24 h):
    /// a leader that stops renewing (killed, paused, cut off) is replaced 1–2 × this later.
    ///
    /// ```
    /// use std::time::Duration;
    /// let election = consul_lock_runtime::Election::new("ttl-example").ttl(Duration::from_secs(30));
    /// assert_eq!(election.resolved_grace()?, Duration::from_secs(6)); // a fifth of it
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Election {
        self.ttl = ttl;
        self
    }

    /// The value the leader writes into the key (what followers of Consul's guide read: an
    /// address, a host name). By default the library's JSON (`locked_at`, `host`, `pid`).
    ///
    /// ```
    /// let election = consul_lock_runtime::Election::new("value-example").value("10.0.0.7:8080");
    /// ```
    #[must_use]
    pub fn value(mut self, value: impl Into<String>) -> Election {
        self.value = Some(Arc::from(value.into()));
        self
    }

    /// How long before its lease would run out without a renewal the leader's work is told to
    /// stop ([`StopCause::Expiring`]), and how long [`run`](Self::run) lets the work finish
    /// once told; default a fifth of the TTL (3 s of 15 s), at most a third of it (so that
    /// the renewal at half the TTL comes first).
    ///
    /// ```
    /// use std::time::Duration;
    /// let election = consul_lock_runtime::Election::new("grace-example").grace(Duration::from_secs(2));
    /// assert_eq!(election.resolved_grace()?, Duration::from_secs(2));
    /// assert!(consul_lock_runtime::Election::new("x").grace(Duration::from_secs(6)).resolved_grace().is_err());
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Election {
        self.grace = Some(grace);
        self
    }

    /// How long [`campaign`](Self::campaign) waits to be elected before it gives up with
    /// [`Error::NotAcquired`]; without it, a campaign waits until elected (through Consul
    /// outages too). [`run`](Self::run) ignores it: it campaigns until stopped.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// # let other = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::{Election, Error};
    /// use std::time::Duration;
    /// let election = Election::new("timeout-example");
    /// let leadership = election.clone().client(&client).campaign().await?;
    /// let patient = election.client(&other).campaign_timeout(Duration::from_millis(100));
    /// assert!(matches!(patient.campaign().await, Err(Error::NotAcquired { .. })));
    /// # leadership.resign().await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn campaign_timeout(mut self, timeout: Duration) -> Election {
        self.campaign_timeout = Some(timeout);
        self
    }

    /// The election's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The leader key, checked.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] for an empty name or a key Consul cannot serve.
    ///
    /// ```
    /// assert_eq!(consul_lock_runtime::Election::new("scheduler").full_key()?, "service/scheduler/leader");
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    pub fn full_key(&self) -> Result<String> {
        if let Some(key) = &self.key {
            key::validate(key)?;
            return Ok(key.clone());
        }
        if self.name.is_empty() {
            return Err(Error::InvalidKey {
                key: String::new(),
                reason: "an election needs a name (its key is service/<name>/leader); give one, \
                         or the whole key with .key(...)"
                    .into(),
            });
        }
        let prefix = self
            .key_prefix
            .clone()
            .unwrap_or_else(|| DEFAULT_ELECTION_PREFIX.to_owned());
        key::validate_prefix(&prefix)?;
        let full = format!("{prefix}{}{LEADER_SUFFIX}", self.name);
        key::validate(&full)?;
        Ok(full)
    }

    /// The grace (see [`grace`](Self::grace)), checked against the TTL.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] when it is longer than a third of the TTL.
    ///
    /// ```
    /// let election = consul_lock_runtime::Election::new("resolved-grace-example");
    /// assert_eq!(election.resolved_grace()?, std::time::Duration::from_secs(3));
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    pub fn resolved_grace(&self) -> Result<Duration> {
        let max = self.ttl / 3;
        match self.grace {
            None => Ok(self.ttl / 5),
            Some(grace) if grace <= max => Ok(grace),
            Some(grace) => Err(Error::InvalidOption {
                option: "grace",
                reason: format!(
                    "a grace of {} is more than a third of the election's TTL of {}: the work \
                     would be told to stop before the renewal at half the TTL could keep the \
                     lease; give at most {}, or a longer TTL",
                    DisplayDuration(grace),
                    DisplayDuration(self.ttl),
                    DisplayDuration(max)
                ),
            }),
        }
    }

    /// Everything resolved and checked, before any request.
    pub(crate) fn plan(&self) -> Result<Plan> {
        let key = self.full_key()?;
        let grace = self.resolved_grace()?;
        // A session of its own: a proclaim rewrites the key (its index moves), which a give-back
        // of a lock on the shared session would take for another lock's; and the leadership
        // record goes with the session.
        let mut lock = Lock::new(key.clone())
            .key_prefix("")
            .lock_timeout(self.ttl)
            .renew(true)
            .own_session(true)
            .metrics_name(self.name.clone());
        if let Some(client) = &self.client {
            lock = lock.client(client);
        }
        if let Some(value) = &self.value {
            let value = value.clone();
            lock = lock.value_generator(move |_| value.to_string());
        }
        // Checks the TTL against the client's bounds, and the value's size.
        let (client, _ttl) = lock.client_and_ttl("election", &key)?;
        lock.plan()?;
        Ok(Plan {
            name: Arc::from(self.name.as_str()),
            key,
            client,
            grace,
            lock,
            campaign_timeout: self.campaign_timeout,
        })
    }

    /// Waits until this process leads: takes the leader key (waiting in its queue behind
    /// the other candidates, each watching only its predecessor), writes the leadership
    /// record, and returns the [`Leadership`]. Without a
    /// [campaign timeout](Self::campaign_timeout) it waits until elected, through Consul
    /// outages too. Dropping the future withdraws the candidacy (its session is destroyed in
    /// the background).
    ///
    /// # Errors
    ///
    /// - [`Error::NotAcquired`]: not elected within the campaign timeout;
    /// - [`Error::InvalidKey`] / [`Error::InvalidOption`]: before any request;
    /// - [`Error::Reentrant`]: this task already leads this election;
    /// - [`Error::PermissionDenied`]: the ACL token may not create sessions or write the key;
    /// - with a campaign timeout, [`Error::ConsulRefused`] / [`Error::Unreachable`] when
    ///   Consul failed for the whole timeout.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// # let other = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Election;
    /// let election = Election::new("campaign-example");
    /// let first = election.clone().client(&client).campaign().await?;
    /// // Another process (here another client) waits in the queue until the first resigns.
    /// let standby = election.clone().client(&other);
    /// let second = tokio::spawn(async move { standby.campaign().await });
    /// let first_token = first.fencing_token();
    /// first.resign().await?;
    /// let second = second.await??;
    /// assert!(second.fencing_token() > first_token);
    /// # second.resign().await?;
    /// # Ok(()) }
    /// ```
    pub async fn campaign(&self) -> Result<Leadership> {
        let plan = self.plan()?;
        exec::run(campaign(plan)).await
    }

    /// Who leads now: the leader key's holder, value, node, since when and fencing token;
    /// `None` when nobody leads.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidKey`] before any request; [`Error::PermissionDenied`],
    /// [`Error::ConsulRefused`] or [`Error::Unreachable`] naming the key.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let election = consul_lock_runtime::Election::new("leader-example").client(&client);
    /// assert!(election.leader().await?.is_none());
    /// let leadership = election.campaign().await?;
    /// let leader = election.leader().await?.expect("leads");
    /// assert_eq!(leader.fencing_token, leadership.fencing_token());
    /// assert!(leader.node.is_some());
    /// # leadership.resign().await?;
    /// # Ok(()) }
    /// ```
    pub async fn leader(&self) -> Result<Option<Leader>> {
        let key = self.full_key()?;
        let client = self.client_or_default()?;
        exec::run(async move { leader::read(&client, &key).await }).await
    }

    /// The candidates waiting to lead, oldest first (the leader is not among them; a process
    /// with several campaigning tasks shows once: its tasks take turns before Consul).
    ///
    /// # Errors
    ///
    /// As [`leader`](Self::leader).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// # let other = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::Election;
    /// let election = Election::new("candidates-example").client(&client);
    /// let leadership = election.campaign().await?;
    /// let standby = election.clone().client(&other);
    /// let waiting = tokio::spawn(async move { standby.campaign().await });
    /// # while election.candidates().await?.is_empty() { tokio::time::sleep(std::time::Duration::from_millis(5)).await; }
    /// let candidates = election.candidates().await?; // once the standby has queued
    /// assert_eq!(candidates.len(), 1);
    /// leadership.resign().await?;
    /// # waiting.await??.resign().await?;
    /// # Ok(()) }
    /// ```
    pub async fn candidates(&self) -> Result<Vec<Candidate>> {
        let key = self.full_key()?;
        let client = self.client_or_default()?;
        exec::run(async move { leader::candidates(&client, &key).await }).await
    }

    /// A stream of who leads: the current state first, then each new leader once, each new
    /// value a leader proclaims, and [`Observation::NoLeader`] whenever nobody leads. See
    /// [`Observe`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::{Election, Observation};
    /// use futures::StreamExt as _;
    /// let election = Election::new("observe-example").client(&client);
    /// let mut observer = election.observe();
    /// assert_eq!(observer.next().await.transpose()?, Some(Observation::NoLeader));
    /// let leadership = election.campaign().await?;
    /// match observer.next().await.transpose()? {
    ///     Some(Observation::Leader(leader)) => assert_eq!(leader.session, leadership.session_id()),
    ///     other => panic!("expected the new leader, got {other:?}"),
    /// }
    /// leadership.resign().await?;
    /// assert_eq!(observer.next().await.transpose()?, Some(Observation::NoLeader));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn observe(&self) -> Observe {
        let target = self
            .full_key()
            .and_then(|key| Ok((key, self.client_or_default()?)));
        Observe::new(target)
    }

    /// Campaigns, runs `work` while leading, and when the leadership ends tells the work to
    /// stop, waits for it at most the grace (never longer than the lease has left), and
    /// campaigns again; returns what the work returns once it returns by itself (after
    /// resigning). Use [`runner`](Self::runner) for events (started, stopped, new leader)
    /// and a way to stop it.
    ///
    /// The work is a future made anew for each leadership, given the [`Leadership`]: watch
    /// [`Leadership::stopping`] to stop in time; it is dropped (cancelled at its next
    /// `.await`) when the grace has passed, or at once when the leadership is lost.
    ///
    /// # Errors
    ///
    /// The work's own error (after resigning), or, converted into it, an [`Error`] of the
    /// election that campaigning again cannot cure: [`Error::InvalidKey`],
    /// [`Error::InvalidOption`], [`Error::PermissionDenied`], [`Error::Reentrant`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::{Election, Error};
    /// let election = Election::new("run-example").client(&client);
    /// let token = election
    ///     .run(|leadership| async move {
    ///         // … the leader's work, stopping when `leadership.stopping()` completes …
    ///         Ok::<u64, Error>(leadership.fencing_token())
    ///     })
    ///     .await?;
    /// assert!(token > 0);
    /// assert!(election.leader().await?.is_none()); // resigned when the work returned
    /// # Ok(()) }
    /// ```
    pub async fn run<F, Fut, T, E>(&self, work: F) -> std::result::Result<T, E>
    where
        F: FnMut(Leadership) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, E>>,
        E: From<Error>,
    {
        match self.runner().run(work).await? {
            Some(value) => Ok(value),
            // Without `until` the runner ends only when the work returns.
            None => Err(E::from(Error::Runtime {
                reason: "the election's runner stopped without a stop signal".into(),
            })),
        }
    }

    /// A [`Runner`]: [`run`](Self::run) with events and a stop signal.
    #[must_use]
    pub fn runner(&self) -> Runner {
        Runner::new(self.clone())
    }

    fn client_or_default(&self) -> Result<Client> {
        match &self.client {
            Some(c) => Ok(c.clone()),
            None => defaults::client(),
        }
    }
}

/// The campaign: acquire the leader key (in rounds when there is no timeout), write the
/// record, and start the leadership; a key lost before its record was written is campaigned
/// for again.
pub(crate) async fn campaign(plan: Plan) -> Result<Leadership> {
    let started = Instant::now();
    let result = campaign_loop(&plan, started).await;
    let outcome = match &result {
        Ok(_) => "elected",
        Err(Error::NotAcquired { .. }) => "not_elected",
        Err(e) => metrics::outcome::<()>(&Err(e.clone())),
    };
    metrics::campaign_finished(&plan.name, outcome);
    result
}

async fn campaign_loop(plan: &Plan, started: Instant) -> Result<Leadership> {
    let deadline = plan.campaign_timeout.map(|t| started + t);
    let mut backoff = Backoff::between(Duration::from_millis(100), Duration::from_secs(5));
    loop {
        let round = match deadline {
            Some(at) => at.saturating_duration_since(Instant::now()),
            None => CAMPAIGN_ROUND,
        };
        let lock = plan
            .lock
            .clone()
            .client(&plan.client)
            .acquire_timeout(round);
        let guard = match lock.acquire().await {
            Ok(guard) => guard,
            Err(e) if deadline.is_some() => return Err(e),
            // Without a timeout a campaign outlasts Consul's outages: the round gave up only
            // after failing for a whole day, or at once on a one-off refusal.
            Err(e) if e.is_transient() || matches!(e, Error::NotAcquired { .. }) => {
                tracing::warn!(key = %plan.key, error = %e, "campaign round failed; campaigning again");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let since = SystemTime::now();
        match record::write(&guard.handle(), since).await? {
            record::Written::Yes => {
                return Ok(Leadership::new(plan.name.clone(), guard, since, plan.grace));
            }
            record::Written::NotLeader => {
                tracing::info!(key = %plan.key, "the leader key was lost right after it was taken; campaigning again");
                drop(guard);
            }
        }
    }
}
