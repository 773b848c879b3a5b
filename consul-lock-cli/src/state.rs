//! Reading locks from Consul: who holds a key, since when, with which session, and who waits.
//!
//! Built on the runtime's public client API only (`kv_list`, `kv_get`, `sessions`).

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use consul_lock_runtime::{Client, KvEntry, Lock, SessionInfo, SHARED_SESSION_NAME_PREFIX};
use serde::Serialize;

use crate::cli::KeyOptions;
use crate::exit::{Failure, USAGE};
use crate::queue;
use crate::template::{self, Assignment};

/// A key named on the command line, and the Consul key it stands for.
#[derive(Debug, Clone)]
pub struct Target {
    /// As the user wrote it.
    pub key: String,
    /// The Consul key (prefix + key, or the key itself with `--full-key`).
    pub consul_key: String,
    /// The prefix that was put before it (empty with `--full-key`).
    pub prefix: String,
}

impl Target {
    /// Resolves `key` (rendered from a template with `values`) as the library does
    /// (`Lock::full_key`), with the same checks.
    pub fn resolve(
        key: &str,
        options: &KeyOptions,
        values: &[Assignment],
    ) -> Result<Target, Failure> {
        let key = template::expand(key, values)?;
        let key = key.as_str();
        let prefix = if options.full_key {
            String::new()
        } else {
            options.prefix.clone()
        };
        let consul_key = Lock::new(key).key_prefix(prefix.clone()).full_key()?;
        Ok(Target {
            key: key.to_owned(),
            consul_key,
            prefix,
        })
    }

    /// A [`Lock`] on this key, as the library would take it.
    pub fn lock(&self, client: &Client) -> Lock {
        Lock::new(self.key.clone())
            .key_prefix(self.prefix.clone())
            .client(client)
    }
}

/// Who wrote the value: the library's default value is `{"locked_at", "host", "pid"}`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Holder {
    /// The holder's host name.
    pub host: Option<String>,
    /// The holder's process ID.
    pub pid: Option<u64>,
    /// When it took the lock (RFC 3339, UTC).
    pub locked_at: Option<String>,
    /// How long ago that was, by this machine's clock, in milliseconds.
    pub age_ms: Option<u64>,
    /// The value as stored, when it is not the library's default JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl Holder {
    /// Reads a lock value (or a queue entry's value, usually empty).
    fn parse(value: &[u8], now: SystemTime) -> Holder {
        if value.is_empty() {
            return Holder::default();
        }
        let json: Option<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_slice(value).ok();
        let Some(json) = json else {
            return Holder {
                value: Some(shorten(&String::from_utf8_lossy(value))),
                ..Holder::default()
            };
        };
        let text = |name: &str| json.get(name).and_then(|v| v.as_str()).map(str::to_owned);
        // A queue entry that says when it queued would say `queued_at`.
        let locked_at = text("locked_at").or_else(|| text("queued_at"));
        let age_ms = locked_at
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .map(|at| {
                now.duration_since(at)
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                    .unwrap_or(0) // a holder's clock ahead of ours
            });
        let holder = Holder {
            host: text("host"),
            pid: json.get("pid").and_then(serde_json::Value::as_u64),
            locked_at,
            age_ms,
            value: None,
        };
        if holder.host.is_none() && holder.pid.is_none() && holder.locked_at.is_none() {
            return Holder {
                value: Some(shorten(&String::from_utf8_lossy(value))),
                ..Holder::default()
            };
        }
        holder
    }
}

/// At most 200 characters of a value, on one line.
fn shorten(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match one_line.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &one_line[..at]),
        None => one_line,
    }
}

/// A session as the tables show it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SessionView {
    /// The session ID.
    pub id: String,
    /// Its name (`consul-lock: <key> #…` for a lock's own session of this library,
    /// `consul-lock: shared #…` for a client's shared session).
    pub name: Option<String>,
    /// Its TTL as Consul prints it (`180s`); `None` when the session was not listed.
    pub ttl: Option<String>,
    /// The Consul node it belongs to.
    pub node: Option<String>,
    /// Whether it is a client's shared session: every lock that client holds (and its
    /// waiters) may be on it, and its TTL is not the lock's lock timeout.
    pub shared: bool,
}

impl SessionView {
    fn new(id: &str, sessions: &HashMap<String, SessionInfo>) -> SessionView {
        let info = sessions.get(id);
        let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        SessionView {
            id: id.to_owned(),
            name: info.and_then(|i| nonempty(&i.name)),
            ttl: info.and_then(|i| nonempty(&i.ttl)),
            node: info.and_then(|i| nonempty(&i.node)),
            shared: info.is_some_and(|i| i.name.starts_with(SHARED_SESSION_NAME_PREFIX)),
        }
    }
}

/// One waiter in a lock's queue.
#[derive(Debug, Clone, Serialize)]
pub struct Waiter {
    /// 1 for the waiter that gets the lock next.
    pub position: usize,
    /// Its queue entry.
    pub consul_key: String,
    /// The Consul index at which it queued (the order of the queue).
    pub queued_index: u64,
    /// Its session.
    pub session: SessionView,
    /// Who it is and how long it has waited, when its entry says so (the runtime writes an
    /// empty value today, so these are usually unknown).
    pub holder: Holder,
}

/// A held lock.
#[derive(Debug, Clone, Serialize)]
pub struct LockInfo {
    /// The key as written in the attribute (the Consul key without the prefix).
    pub key: String,
    /// The Consul key.
    pub consul_key: String,
    /// The holder, from the value.
    pub holder: Holder,
    /// The holder's session.
    pub session: SessionView,
    /// The fencing token: the `ModifyIndex` of the acquiring write.
    pub fencing_token: u64,
    /// How many times the key was acquired since it was created.
    pub lock_index: u64,
    /// How many waiters are queued.
    pub waiters: usize,
    /// The waiters in order (`show` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<Vec<Waiter>>,
}

impl LockInfo {
    fn new(
        entry: &KvEntry,
        prefix: &str,
        sessions: &HashMap<String, SessionInfo>,
        now: SystemTime,
    ) -> Option<LockInfo> {
        let session = entry.session.as_deref()?;
        Some(LockInfo {
            key: entry
                .key
                .strip_prefix(prefix)
                .unwrap_or(&entry.key)
                .to_owned(),
            consul_key: entry.key.clone(),
            holder: Holder::parse(&entry.value, now),
            session: SessionView::new(session, sessions),
            fencing_token: entry.modify_index,
            lock_index: entry.lock_index,
            waiters: 0,
            queue: None,
        })
    }
}

async fn sessions_by_id(
    client: &Client,
) -> consul_lock_runtime::Result<HashMap<String, SessionInfo>> {
    Ok(client
        .sessions()
        .await?
        .into_iter()
        .map(|s| (s.id.clone(), s))
        .collect())
}

/// The lock on `target` with its queue in order, or `None` when the key is not held.
pub async fn read_lock(client: &Client, target: &Target) -> Result<Option<LockInfo>, Failure> {
    let Some(entry) = client.kv_get(&target.consul_key).await? else {
        return Ok(None);
    };
    if entry.session.is_none() {
        return Ok(None);
    }
    let sessions = sessions_by_id(client).await?;
    let now = SystemTime::now();
    let Some(mut info) = LockInfo::new(&entry, &target.prefix, &sessions, now) else {
        return Ok(None);
    };
    info.key.clone_from(&target.key);
    let queue = read_queue(client, &target.consul_key, &sessions, now).await?;
    info.waiters = queue.len();
    info.queue = Some(queue);
    Ok(Some(info))
}

/// The waiters of `consul_key`, oldest first (entries whose session is gone are not waiting).
async fn read_queue(
    client: &Client,
    consul_key: &str,
    sessions: &HashMap<String, SessionInfo>,
    now: SystemTime,
) -> Result<Vec<Waiter>, Failure> {
    let mut entries: Vec<KvEntry> = client
        .kv_list(&queue::queue_prefix(consul_key))
        .await?
        .into_iter()
        .filter(|e| e.session.is_some())
        .collect();
    entries.sort_by_key(|e| (e.create_index, e.key.clone()));
    Ok(entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| Waiter {
            position: i + 1,
            queued_index: e.create_index,
            session: SessionView::new(e.session.as_deref().unwrap_or_default(), sessions),
            holder: Holder::parse(&e.value, now),
            consul_key: e.key,
        })
        .collect())
}

/// The locks held now whose Consul key starts with `prefix` + `filter`, by key.
pub async fn list_locks(
    client: &Client,
    prefix: &str,
    filter: &str,
) -> Result<Vec<LockInfo>, Failure> {
    let under = format!("{prefix}{filter}");
    if under.starts_with('/') {
        return Err(Failure::new(
            USAGE,
            format!("the prefix `{under}` starts with `/`: Consul keys do not; drop it"),
        ));
    }
    // One recursive read of the prefix, values included.
    let mut waiting: BTreeMap<String, usize> = BTreeMap::new();
    let mut held = Vec::new();
    for entry in client.kv_list(&under).await? {
        match queue::lock_of_entry(&entry.key) {
            Some(lock) if entry.session.is_some() => {
                *waiting.entry(lock.to_owned()).or_default() += 1
            }
            Some(_) => {}
            None if entry.session.is_some() => held.push(entry),
            None => {}
        }
    }
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let sessions = sessions_by_id(client).await?;
    let now = SystemTime::now();
    let mut locks: Vec<LockInfo> = held
        .iter()
        .filter_map(|e| LockInfo::new(e, prefix, &sessions, now))
        .collect();
    for lock in &mut locks {
        lock.waiters = waiting.get(&lock.consul_key).copied().unwrap_or(0);
    }
    locks.sort_by(|a, b| a.consul_key.cmp(&b.consul_key));
    Ok(locks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_default_value_names_the_holder() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let value = br#"{"locked_at":"2023-11-14T22:13:20.000Z","host":"web-3","pid":4242}"#;
        let h = Holder::parse(value, at + Duration::from_secs(75));
        assert_eq!(h.host.as_deref(), Some("web-3"));
        assert_eq!(h.pid, Some(4242));
        assert_eq!(h.age_ms, Some(75_000));
        assert!(h.value.is_none());
    }

    #[test]
    fn a_queue_entry_that_says_when_it_queued_has_an_age() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let value = br#"{"queued_at":"2023-11-14T22:13:20.000Z","host":"web-4","pid":7}"#;
        let h = Holder::parse(value, at + Duration::from_secs(3));
        assert_eq!((h.host.as_deref(), h.age_ms), (Some("web-4"), Some(3_000)));
    }

    #[test]
    fn other_values_are_shown_as_they_are() {
        let now = SystemTime::now();
        let h = Holder::parse(b"worker-7\nholds it", now);
        assert_eq!(h.value.as_deref(), Some("worker-7 holds it"));
        let h = Holder::parse(br#"{"owner":"batch"}"#, now);
        assert_eq!(h.value.as_deref(), Some(r#"{"owner":"batch"}"#));
        assert!(Holder::parse(b"", now).value.is_none());
        assert!(shorten(&"x".repeat(300)).ends_with('…'));
    }
}
