//! Observing an election: blocking queries on the leader key alone (a candidate joining or
//! leaving the queue wakes no observer), the record read once per new leader, and a plain
//! [`Observation::NoLeader`] whenever nobody leads.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::BoxStream;
use futures::Stream;

use super::leader::{self, record_key, record_matches, Leader};
use crate::api::Blocking;
use crate::protocol::retry::Backoff;
use crate::{exec, Client, Error, KvEntry, Result};

/// One change an observer sees ([`Election::observe`](crate::Election::observe)).
///
/// ```
/// use consul_lock_runtime::Observation;
/// assert_eq!(Observation::NoLeader.to_string(), "no leader");
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// A new leader (each leadership once, in the order they led).
    Leader(Leader),
    /// The leader proclaimed a new value ([`Leadership::proclaim`](crate::Leadership::proclaim)).
    Proclaimed(Leader),
    /// Nobody leads: the leader key is free. Between two leaders there is always one, also
    /// when the gap was too short to be seen (it then comes right before the new leader).
    NoLeader,
}

impl fmt::Display for Observation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Observation::Leader(l) => write!(f, "new leader: {l}"),
            Observation::Proclaimed(l) => write!(f, "leader proclaimed a new value: {l}"),
            Observation::NoLeader => f.write_str("no leader"),
        }
    }
}

/// The stream returned by [`Election::observe`](crate::Election::observe): the state first
/// (the leader, or [`Observation::NoLeader`]), then every change.
///
/// It watches the leader key alone with blocking queries, so joins and leaves of candidates
/// wake no observer. When Consul cannot be asked (an election among its servers, the agent
/// restarting) it retries with backoff (100 ms up to 5 s), first with a read that does not
/// block (an agent that restarted without its state starts its index over, and a blocking
/// query at the old index would wait its whole minute), then goes on watching. An error that retrying cannot
/// cure (an invalid key, a token that may not read the key) is yielded once and ends the
/// stream.
///
/// A new leader is yielded once its leadership record is there (written right after it took
/// the key), or after a second without one (a leader of Go's `api.Lock` writes none; its
/// `since` is then `None`). A process that took the key for a moment only to give it back to
/// an older candidate is never yielded.
pub struct Observe {
    inner: BoxStream<'static, Result<Observation>>,
}

impl Observe {
    pub(crate) fn new(target: Result<(String, Client)>) -> Observe {
        let state = match target {
            Ok((key, client)) => Ok(State::new(client, key)),
            Err(e) => Err(Some(e)),
        };
        let inner = futures::stream::unfold(state, |state| async move {
            match state {
                Ok(mut state) => {
                    let item = state.next().await?;
                    Some((item, Ok(state)))
                }
                Err(Some(e)) => Some((Err(e), Err(None))),
                Err(None) => None,
            }
        });
        Observe {
            inner: Box::pin(inner),
        }
    }
}

impl Stream for Observe {
    type Item = Result<Observation>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl fmt::Debug for Observe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Observe")
    }
}

/// A blocking query's longest wait (Consul's default): an idle observer costs one read a
/// minute.
const WAIT: Duration = Duration::from_secs(60);
/// How long a new holder's record is waited for before it is yielded without one.
const RECORD_WAIT: Duration = Duration::from_secs(1);

/// What the observer said last.
enum Last {
    Nothing,
    NoLeader,
    Leader(Leader),
}

struct State {
    client: Client,
    key: String,
    index: u64,
    last: Last,
    queue: VecDeque<Observation>,
    backoff: Backoff,
    ended: bool,
    /// Whether the next read must not block: a read failed (the agent may have restarted, its
    /// index started over, and a blocking query at the old index would wait its whole time).
    reread: bool,
}

impl State {
    fn new(client: Client, key: String) -> State {
        State {
            client,
            key,
            index: 0,
            last: Last::Nothing,
            queue: VecDeque::new(),
            backoff: Backoff::between(Duration::from_millis(100), Duration::from_secs(5)),
            ended: false,
            reread: false,
        }
    }

    async fn next(&mut self) -> Option<Result<Observation>> {
        loop {
            if let Some(observation) = self.queue.pop_front() {
                return Some(Ok(observation));
            }
            if self.ended {
                return None;
            }
            match self.step().await {
                Ok(()) => self.backoff.reset(),
                Err(e) if e.is_transient() => {
                    tracing::debug!(key = %self.key, error = %e, "observing the election failed; retrying");
                    self.reread = true;
                    let delay = self.backoff.next_delay();
                    let _ = exec::run(async move {
                        tokio::time::sleep(delay).await;
                        Ok(())
                    })
                    .await;
                }
                Err(e) => {
                    self.ended = true;
                    return Some(Err(e));
                }
            }
        }
    }

    /// One blocking read of the leader key, and what it shows.
    async fn step(&mut self) -> Result<()> {
        let index = if std::mem::take(&mut self.reread) {
            0
        } else {
            self.index
        };
        let (client, key) = (self.client.clone(), self.key.clone());
        let (entry, new_index) = exec::run(async move {
            // The one blocking query (index 0 reads at once), timed by Consul's rules.
            let blocking = Blocking {
                index,
                wait: WAIT,
                until: None,
            };
            let (entries, next) = client.kv_block(&key, &key, false, blocking).await?;
            Ok((entries.into_iter().next(), next))
        })
        .await?;
        // Consul's rule: an index that goes backwards (a restarted agent) resets the watch; a
        // read after a failure takes the index it finds.
        self.index = if index == 0 || new_index >= self.index {
            new_index
        } else {
            0
        };
        let holder = entry.as_ref().and_then(|e| e.session.clone());
        let Some(session) = holder else {
            if !matches!(self.last, Last::NoLeader) {
                self.queue.push_back(Observation::NoLeader);
                self.last = Last::NoLeader;
            }
            return Ok(());
        };
        if let Last::Leader(last) = &mut self.last {
            if last.session == session {
                if let Some(e) = entry.as_ref().filter(|e| e.value != last.value) {
                    last.value = e.value.clone();
                    self.queue.push_back(Observation::Proclaimed(last.clone()));
                }
                return Ok(());
            }
        }
        let Some(leader) = self.new_leader(&session, entry).await? else {
            // Taken and given back at once: not a leader. Read again at once.
            self.index = 0;
            return Ok(());
        };
        if matches!(self.last, Last::Leader(_)) {
            // Two sessions never hold the key at once: nobody led in between.
            self.queue.push_back(Observation::NoLeader);
        }
        self.queue.push_back(Observation::Leader(leader.clone()));
        self.last = Last::Leader(leader);
        Ok(())
    }

    /// The leader that `session` (now holding the key, as `entry` shows) is, once its record
    /// is there or a second has passed; `None` when it gave the key up meanwhile.
    async fn new_leader(&self, session: &str, entry: Option<KvEntry>) -> Result<Option<Leader>> {
        let (client, key, session) = (self.client.clone(), self.key.clone(), session.to_owned());
        exec::run(async move {
            let timeout = client.request_timeout();
            let record_key = record_key(&key);
            let (mut record, index) = client.kv_read(&record_key, timeout).await?;
            let mut entry = entry;
            if !record_matches(record.as_ref(), &session) {
                let blocking = Blocking {
                    index: index.max(1),
                    wait: RECORD_WAIT,
                    until: None,
                };
                let (r, _) = client
                    .kv_block(&record_key, &record_key, false, blocking)
                    .await?;
                record = r.into_iter().next();
                if !record_matches(record.as_ref(), &session) {
                    let (now, _) = client.kv_read(&key, timeout).await?;
                    if now.as_ref().and_then(|e| e.session.as_deref()) != Some(session.as_str()) {
                        return Ok(None);
                    }
                    entry = now;
                }
            }
            let Some(mut leader) = leader::from_entries(entry.as_ref(), record.as_ref()) else {
                return Ok(None);
            };
            leader.node = leader::node_of(&client, &key, &leader.session).await?;
            Ok::<_, Error>(Some(leader))
        })
        .await
    }
}
