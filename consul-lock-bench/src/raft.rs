//! Raft writes, counted from the server's Raft index: the one place the bench reads it.
//!
//! Against a Consul server agent, the index is `Stats.raft.commit_index` of `GET
//! /v1/agent/self` (reading it is not a write). The embedded test server reports no
//! `Stats.raft`, but it allocates one Raft index per write exactly as Consul does (session
//! create and destroy, KV writes, transactions with a write, failed applies too; renewals
//! and reads none), so there the reader makes one probe write (`PUT` of a key of its own)
//! and reads back that key's `ModifyIndex`: the index of the probe itself, which the count
//! then leaves out. A client agent (no `Stats.raft`) gets no count, and says why.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Deserialize;

use crate::server::{Kind, Target};

/// Where the index comes from.
#[derive(Clone, Debug)]
enum Source {
    /// `Stats.raft.commit_index` of `/v1/agent/self` (a server agent).
    CommitIndex,
    /// The `ModifyIndex` of a probe key written for each reading (the embedded test server).
    Probe { key: String },
    /// No Raft index can be read; why.
    None(String),
}

/// Reads the server's Raft index before and after a measurement.
pub struct RaftIndex {
    http: reqwest::Client,
    url: String,
    token: Option<String>,
    source: Source,
    /// Makes each probe's value new: a write of the same value changes no `ModifyIndex`.
    probes: AtomicU64,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "ModifyIndex")]
    modify_index: u64,
}

impl RaftIndex {
    /// A reader for `target`; `probe_key` (a full KV key, under this run's prefix) is the key
    /// written for each reading where the server reports no commit index (the embedded
    /// server). Never fails: when no index can be read, every count is `None` and
    /// [`RaftIndex::describe`] says why.
    pub async fn new(target: &Target, probe_key: String) -> RaftIndex {
        let token = std::env::var("CONSUL_HTTP_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty());
        let http = match reqwest::Client::builder().no_proxy().build() {
            Ok(h) => h,
            Err(e) => {
                return RaftIndex {
                    http: reqwest::Client::new(),
                    url: target.url.clone(),
                    token,
                    source: Source::None(format!("cannot build the HTTP client: {e}")),
                    probes: AtomicU64::new(0),
                }
            }
        };
        let mut r = RaftIndex {
            http,
            url: target.url.trim_end_matches('/').to_owned(),
            token,
            source: Source::CommitIndex,
            probes: AtomicU64::new(0),
        };
        r.source = match (r.commit_index().await, target.kind) {
            (Ok(_), _) => Source::CommitIndex,
            (Err(_), Kind::Embedded) => {
                r.source = Source::Probe { key: probe_key };
                match r.read().await {
                    Ok(_) => r.source.clone(),
                    Err(e) => Source::None(e),
                }
            }
            (Err(e), Kind::Agent) => Source::None(e),
        };
        r
    }

    /// Where the counts come from, for the report.
    pub fn describe(&self) -> String {
        match &self.source {
            Source::CommitIndex => "the agent's `Stats.raft.commit_index` (`/v1/agent/self`) before and after".into(),
            Source::Probe { .. } => "the embedded test server reports no `Stats.raft`; it allocates one Raft index per write as Consul does, so a probe write before and after each measurement gives the index (its `ModifyIndex`), the probe left out".into(),
            Source::None(why) => format!("n/a: {why}"),
        }
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.get(format!("{}{path}", self.url));
        match &self.token {
            Some(t) => req.header("X-Consul-Token", t),
            None => req,
        }
    }

    async fn commit_index(&self) -> Result<u64, String> {
        let reply = self
            .get("/v1/agent/self")
            .send()
            .await
            .map_err(|e| format!("cannot read /v1/agent/self: {e}"))?;
        let status = reply.status();
        if !status.is_success() {
            return Err(format!(
                "/v1/agent/self answered HTTP {status} (the token needs agent:read)"
            ));
        }
        let json: serde_json::Value = reply
            .json()
            .await
            .map_err(|e| format!("cannot read /v1/agent/self: {e}"))?;
        json["Stats"]["raft"]["commit_index"]
            .as_str()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| {
                "the agent reports no Stats.raft.commit_index (not a server agent, or the \
                 embedded test server)"
                    .to_owned()
            })
    }

    async fn probe(&self, key: &str) -> Result<u64, String> {
        let path = format!("/v1/kv/{key}");
        let n = self.probes.fetch_add(1, Ordering::Relaxed);
        let mut put = self
            .http
            .put(format!("{}{path}", self.url))
            .body(format!("probe {n}"));
        if let Some(t) = &self.token {
            put = put.header("X-Consul-Token", t);
        }
        let reply = put
            .send()
            .await
            .map_err(|e| format!("Raft index probe: PUT {path}: {e}"))?;
        if !reply.status().is_success() {
            return Err(format!(
                "Raft index probe: PUT {path}: HTTP {}",
                reply.status()
            ));
        }
        let reply = self
            .get(&path)
            .send()
            .await
            .map_err(|e| format!("Raft index probe: GET {path}: {e}"))?;
        let entries: Vec<Entry> = reply
            .json()
            .await
            .map_err(|e| format!("Raft index probe: GET {path}: {e}"))?;
        entries
            .first()
            .map(|e| e.modify_index)
            .ok_or_else(|| format!("Raft index probe: {key} is gone right after its PUT"))
    }

    /// The index now (`Err` when it cannot be read).
    pub async fn read(&self) -> Result<u64, String> {
        match &self.source {
            Source::CommitIndex => self.commit_index().await,
            Source::Probe { key } => self.probe(key).await,
            Source::None(why) => Err(why.clone()),
        }
    }

    /// The index now, or `None` when it cannot be read (then the measurement has no count).
    pub async fn mark(&self) -> Option<u64> {
        self.read().await.ok()
    }

    /// Raft writes between two readings, the reader's own left out.
    pub fn writes_between(&self, before: Option<u64>, after: Option<u64>) -> Option<u64> {
        let own = match self.source {
            Source::Probe { .. } => 1,
            _ => 0,
        };
        match (before, after) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a).saturating_sub(own)),
            _ => None,
        }
    }
}

/// Raft writes per operation, when counted.
pub fn per(writes: Option<u64>, ops: u64) -> Option<f64> {
    writes.filter(|_| ops > 0).map(|w| w as f64 / ops as f64)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::bare::Bare;

    /// On the embedded server the reader counts exactly the writes made between two readings:
    /// 3 for a 3-call cycle, 2 per 2-call cycle (plus its session's creation once), 1 per
    /// plain KV write, none for its own probes.
    #[test]
    fn counts_the_writes_between_two_readings_on_the_embedded_server() {
        let server = consul_lock_testkit::TestServer::start().unwrap();
        let target = Target::embedded_at(server.url());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let raft = rt.block_on(RaftIndex::new(&target, "bench-test/raft-probe".into()));
        assert!(
            raft.describe().contains("probe write"),
            "{}",
            raft.describe()
        );
        let bare = Bare::new(&server.url()).unwrap();
        let count = |f: &dyn Fn() -> Result<(), String>| {
            let before = rt.block_on(raft.mark());
            f().unwrap();
            raft.writes_between(before, rt.block_on(raft.mark()))
        };
        assert_eq!(count(&|| Ok(())), Some(0));
        let three = || rt.block_on(bare.cycle("bench-test/three", b"v"));
        assert_eq!(count(&three), Some(3));
        let first_two = || rt.block_on(bare.cycle_reused("bench-test/two", b"v"));
        assert_eq!(
            count(&first_two),
            Some(3),
            "session create + take + give back"
        );
        let ten_cycles = || {
            for _ in 0..10 {
                rt.block_on(bare.cycle_reused("bench-test/two", b"v"))?;
            }
            Ok(())
        };
        assert_eq!(count(&ten_cycles), Some(20));
        rt.block_on(bare.end_session()).unwrap();
        let c = crate::ceiling::run(
            &server.url(),
            &raft,
            &rt,
            "bench-test/ceiling",
            4,
            Duration::from_millis(100),
        )
        .unwrap();
        assert!(c.writes > 0);
        assert_eq!(c.raft_writes_per_write, Some(1.0));
        assert_eq!(raft.writes_between(None, Some(5)), None);
        assert_eq!(per(Some(6), 3), Some(2.0));
        assert_eq!(per(Some(6), 0), None);
    }
}
