//! Who leads an election, as anyone can read it from Consul: the leader key (value and
//! session, as Consul's guide has followers read it), the leadership record beside it (since
//! when, and the fencing token, which a proclaim would otherwise hide), and the session's node.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::{Client, KvEntry, Result};

/// What a leader writes beside the leader key (`<key>` + [`RECORD_SUFFIX`]), held by its
/// session so that it goes with the leadership.
pub const RECORD_SUFFIX: &str = "/.leadership";

/// Who leads an election: [`Election::leader`](crate::Election::leader) reads it, and
/// [`Election::observe`](crate::Election::observe) yields it for each new leader.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// use consul_lock_runtime::Election;
/// let election = Election::new("leader-struct-example").client(&client).value("10.0.0.7:8080");
/// let leadership = election.campaign().await?;
/// let leader = election.leader().await?.expect("someone leads");
/// assert_eq!(leader.value, b"10.0.0.7:8080");
/// assert_eq!(leader.session, leadership.session_id());
/// assert_eq!(leader.fencing_token, leadership.fencing_token());
/// assert!(leader.since.is_some());
/// leadership.resign().await?;
/// assert!(election.leader().await?.is_none());
/// # Ok(()) }
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leader {
    /// The leader key.
    pub key: String,
    /// The leader's value: what it campaigned with, or proclaimed last.
    pub value: Vec<u8>,
    /// The Consul session that holds the leader key.
    pub session: String,
    /// The Consul node of that session (its agent), when Consul still knows the session.
    pub node: Option<String>,
    /// When it became leader, by the leader's clock; `None` for a leader that did not write
    /// a leadership record (Go's `api.Lock` or `consul lock` on the same key), or whose record
    /// was not there yet when read.
    pub since: Option<SystemTime>,
    /// The leadership's fencing token: the `ModifyIndex` of the write that took the key. It
    /// grows with every new leadership, also across restarts of the election.
    pub fencing_token: u64,
}

impl Leader {
    /// The value as text, when it is UTF-8.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let election = consul_lock_runtime::Election::new("value-str-example").client(&client).value("node-a");
    /// let leadership = election.campaign().await?;
    /// assert_eq!(election.leader().await?.expect("leads").value_str(), Some("node-a"));
    /// # leadership.resign().await?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }

    /// How long it has led, by this machine's clock (zero when `since` is in the future or
    /// unknown).
    #[must_use]
    pub fn leading_for(&self) -> Duration {
        self.since
            .and_then(|s| SystemTime::now().duration_since(s).ok())
            .unwrap_or_default()
    }
}

impl fmt::Display for Leader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session {} (token {})", self.session, self.fencing_token)?;
        if let Some(node) = &self.node {
            write!(f, " on node {node}")?;
        }
        if let Some(since) = self.since {
            write!(f, " since {}", humantime::format_rfc3339_millis(since))?;
        }
        Ok(())
    }
}

/// The leadership record, as stored.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Record {
    pub(crate) session: String,
    pub(crate) fencing_token: u64,
    /// RFC 3339, UTC, milliseconds.
    pub(crate) since: String,
}

impl Record {
    pub(crate) fn new(session: &str, fencing_token: u64, since: SystemTime) -> Record {
        Record {
            session: session.to_owned(),
            fencing_token,
            since: humantime::format_rfc3339_millis(since).to_string(),
        }
    }

    pub(crate) fn to_json(&self) -> Vec<u8> {
        // A struct of strings and a number always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }

    fn parse(entry: &KvEntry) -> Option<Record> {
        serde_json::from_slice(&entry.value).ok()
    }
}

/// The record's key for the leader key `key`.
pub(crate) fn record_key(key: &str) -> String {
    format!("{key}{RECORD_SUFFIX}")
}

/// The leader shown by the leader key's `entry` and the record read beside it (if any), or
/// `None` when nobody holds the key. `node` is filled in later.
pub(crate) fn from_entries(entry: Option<&KvEntry>, record: Option<&KvEntry>) -> Option<Leader> {
    let entry = entry?;
    let session = entry.session.clone()?;
    let record = record
        .and_then(Record::parse)
        .filter(|r| r.session == session);
    let (since, fencing_token) = match record {
        Some(r) => (humantime::parse_rfc3339(&r.since).ok(), r.fencing_token),
        // Before its record (or without one) the key's last write is the taking one: a
        // proclaim comes only after the record.
        None => (None, entry.modify_index),
    };
    Some(Leader {
        key: entry.key.clone(),
        value: entry.value.clone(),
        session,
        node: None,
        since,
        fencing_token,
    })
}

/// Whether `record` is the record of the leadership of `session`.
pub(crate) fn record_matches(record: Option<&KvEntry>, session: &str) -> bool {
    record
        .and_then(Record::parse)
        .is_some_and(|r| r.session == session)
}

/// Reads who leads `key` now: the key, the record, and the node of the leader's session.
pub(crate) async fn read(client: &Client, key: &str) -> Result<Option<Leader>> {
    let timeout = client.request_timeout();
    let (entry, _) = client.kv_read(key, timeout).await?;
    if entry.as_ref().and_then(|e| e.session.as_ref()).is_none() {
        return Ok(None);
    }
    let (record, _) = client.kv_read(&record_key(key), timeout).await?;
    let Some(mut leader) = from_entries(entry.as_ref(), record.as_ref()) else {
        return Ok(None);
    };
    leader.node = node_of(client, key, &leader.session).await?;
    Ok(Some(leader))
}

/// The node of `session`, or `None` when Consul no longer knows it.
pub(crate) async fn node_of(client: &Client, key: &str, session: &str) -> Result<Option<String>> {
    let info = client
        .session_info(key, session, client.request_timeout())
        .await?;
    Ok(info.map(|s| s.node).filter(|n| !n.is_empty()))
}

/// A candidate waiting in an election's queue (see
/// [`Election::candidates`](crate::Election::candidates)).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
/// use consul_lock_runtime::{Candidate, Election};
/// let election = Election::new("candidate-example").client(&client);
/// let candidates: Vec<Candidate> = election.candidates().await?;
/// assert!(candidates.is_empty()); // nobody waits
/// # Ok(()) }
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The candidate's Consul session.
    pub session: String,
    /// The node of that session, when Consul still knows it.
    pub node: Option<String>,
    /// The `CreateIndex` of its queue entry: candidates are served in this order.
    pub queued_at_index: u64,
}

/// The live entries of `key`'s queue of waiters, oldest first.
pub(crate) async fn candidates(client: &Client, key: &str) -> Result<Vec<Candidate>> {
    let timeout = client.request_timeout();
    let queue = format!("{key}{}", crate::WAITERS_SUFFIX);
    let (entries, _) = client.kv_read_tree(key, &queue, timeout).await?;
    let mut live: Vec<(u64, String)> = entries
        .into_iter()
        .filter_map(|e| e.session.map(|s| (e.create_index, s)))
        .collect();
    live.sort();
    let mut out = Vec::with_capacity(live.len());
    for (index, session) in live {
        let node = node_of(client, key, &session).await?;
        out.push(Candidate {
            session,
            node,
            queued_at_index: index,
        });
    }
    Ok(out)
}
