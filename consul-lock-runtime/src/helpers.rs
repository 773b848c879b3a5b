//! The public KV and session helpers: read a key, watch it, list keys or entries under a
//! prefix (and watch them), list sessions, destroy a session. For operators' tools and tests; each is one plain
//! [`api`](crate::api) call, run where the caller runs ([`exec::run`]).

use std::future::Future;
use std::time::Duration;

use crate::api::Blocking;
use crate::exec;
use crate::{Client, KvEntry, Result, SessionInfo};

impl Client {
    /// Runs `op` on a clone of this client, where the caller's async code should run.
    async fn run<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        exec::run(op(self.clone())).await
    }

    /// Reads one key.
    ///
    /// # Errors
    ///
    /// [`Error::PermissionDenied`](crate::Error::PermissionDenied),
    /// [`Error::ConsulRefused`](crate::Error::ConsulRefused) or
    /// [`Error::Unreachable`](crate::Error::Unreachable), naming the key.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let guard = consul_lock_runtime::Lock::new("report").client(&client).acquire().await?;
    /// let entry = client.kv_get("locks/ephemeral/report").await?.expect("held");
    /// assert_eq!(entry.session.as_deref(), Some(guard.session_id()));
    /// assert_eq!(entry.modify_index, guard.fencing_token());
    /// guard.release().await?;
    /// assert!(client.kv_get("locks/ephemeral/report").await?.is_none());
    /// # Ok(()) }
    /// ```
    pub async fn kv_get(&self, key: &str) -> Result<Option<KvEntry>> {
        let key = key.to_owned();
        self.run(|client| async move {
            let timeout = client.request_timeout();
            client.kv_read(&key, timeout).await.map(|(e, _)| e)
        })
        .await
    }

    /// Waits (a Consul blocking query) until the key changes past `index` or `wait` passes,
    /// and returns the entry and the new index. Start with index 0 to read at once.
    ///
    /// # Errors
    ///
    /// As [`kv_get`](Self::kv_get).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use std::time::Duration;
    /// let (entry, index) = client.kv_watch("config/x", 0, Duration::ZERO).await?;
    /// assert!(entry.is_none());
    /// // Nothing changes: the blocking query returns after its wait with the same index.
    /// let (_, same) = client.kv_watch("config/x", index, Duration::from_millis(50)).await?;
    /// assert_eq!(same, index);
    /// # Ok(()) }
    /// ```
    pub async fn kv_watch(
        &self,
        key: &str,
        index: u64,
        wait: Duration,
    ) -> Result<(Option<KvEntry>, u64)> {
        let key = key.to_owned();
        self.run(|client| async move {
            let blocking = Blocking {
                index,
                wait,
                until: None,
            };
            let (entries, next) = client.kv_block(&key, &key, false, blocking).await?;
            Ok((entries.into_iter().next(), next))
        })
        .await
    }

    /// Lists the keys under a prefix (`GET /v1/kv/<prefix>?keys`).
    ///
    /// # Errors
    ///
    /// As [`kv_get`](Self::kv_get).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let guard = consul_lock_runtime::Lock::new("jobs/a").client(&client).acquire().await?;
    /// let held = client.kv_keys("locks/ephemeral/jobs/").await?;
    /// assert!(held.contains(&"locks/ephemeral/jobs/a".to_owned()));
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn kv_keys(&self, prefix: &str) -> Result<Vec<String>> {
        let prefix = prefix.to_owned();
        self.run(|client| async move {
            let timeout = client.request_timeout();
            client.kv_key_names(&prefix, timeout).await
        })
        .await
    }

    /// Reads every entry under a prefix, with its value and holder, in one request
    /// (`GET /v1/kv/<prefix>?recurse`); none when nothing is there.
    ///
    /// # Errors
    ///
    /// As [`kv_get`](Self::kv_get).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let lock = consul_lock_runtime::Lock::new("jobs/d").client(&client);
    /// let guard = lock.value_generator(|_| "worker-7".into()).acquire().await?;
    /// let entries = client.kv_list("locks/ephemeral/jobs/").await?;
    /// let held = entries.iter().find(|e| e.key == guard.key()).expect("listed");
    /// assert_eq!((held.value.as_slice(), held.session.as_deref()), (&b"worker-7"[..], Some(guard.session_id())));
    /// guard.release().await?;
    /// assert!(client.kv_list("locks/ephemeral/jobs/").await?.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn kv_list(&self, prefix: &str) -> Result<Vec<KvEntry>> {
        let prefix = prefix.to_owned();
        self.run(|client| async move {
            let timeout = client.request_timeout();
            let (entries, _) = client.kv_read_tree(&prefix, &prefix, timeout).await?;
            Ok(entries)
        })
        .await
    }

    /// Waits (a Consul blocking query) until anything under a prefix changes past `index` or
    /// `wait` passes, and returns every entry under it and the new index: a way to watch a
    /// lock's queue of waiters (`<key>/.waiters/`) or a semaphore's prefix. Start with index 0
    /// to read at once.
    ///
    /// # Errors
    ///
    /// As [`kv_get`](Self::kv_get).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use std::time::Duration;
    /// let (entries, index) = client.kv_watch_list("jobs/", 0, Duration::ZERO).await?;
    /// assert!(entries.is_empty());
    /// let guard = consul_lock_runtime::Lock::new("jobs/e").key_prefix("").client(&client).acquire().await?;
    /// // Something changed under the prefix: the query answers at once with it.
    /// let (entries, later) = client.kv_watch_list("jobs/", index, Duration::from_secs(5)).await?;
    /// assert!(later > index);
    /// assert_eq!(entries[0].key, guard.key());
    /// # guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn kv_watch_list(
        &self,
        prefix: &str,
        index: u64,
        wait: Duration,
    ) -> Result<(Vec<KvEntry>, u64)> {
        let prefix = prefix.to_owned();
        self.run(|client| async move {
            let blocking = Blocking {
                index,
                wait,
                until: None,
            };
            client.kv_block(&prefix, &prefix, true, blocking).await
        })
        .await
    }

    /// Lists every session of the datacenter (`GET /v1/session/list`).
    ///
    /// # Errors
    ///
    /// [`Error::PermissionDenied`](crate::Error::PermissionDenied),
    /// [`Error::ConsulRefused`](crate::Error::ConsulRefused) or
    /// [`Error::Unreachable`](crate::Error::Unreachable).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let guard = consul_lock_runtime::Lock::new("jobs/b").client(&client).acquire().await?;
    /// let sessions = client.sessions().await?;
    /// assert!(sessions.iter().any(|s| s.id == guard.session_id() && s.behavior == "delete"));
    /// guard.release().await?;
    /// # Ok(()) }
    /// ```
    pub async fn sessions(&self) -> Result<Vec<SessionInfo>> {
        self.run(|client| async move {
            let timeout = client.request_timeout();
            client.session_list("", timeout).await
        })
        .await
    }

    /// Destroys a session (`PUT /v1/session/destroy/<id>`); keys it held with
    /// `Behavior: delete` are deleted. Destroying an unknown session succeeds.
    ///
    /// # Errors
    ///
    /// [`Error::PermissionDenied`](crate::Error::PermissionDenied),
    /// [`Error::ConsulRefused`](crate::Error::ConsulRefused) or
    /// [`Error::Unreachable`](crate::Error::Unreachable).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// let guard = consul_lock_runtime::Lock::new("jobs/c").client(&client).acquire().await?;
    /// // An operator ends the holder's session: the key is deleted with it.
    /// client.destroy_session(guard.session_id()).await?;
    /// assert!(client.kv_get(guard.key()).await?.is_none());
    /// # Ok(()) }
    /// ```
    pub async fn destroy_session(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.run(|client| async move {
            let timeout = client.request_timeout();
            client.session_destroy("", &id, timeout).await
        })
        .await
    }

    /// Deletes `key` only while session `session` holds it (one transaction: `check-session`
    /// and `delete`; nothing happens when another session, or none, holds it): how an operator
    /// takes one lock away from a client's shared session
    /// ([`SHARED_SESSION_NAME_PREFIX`](crate::SHARED_SESSION_NAME_PREFIX)) without ending it,
    /// which would end every other lock on it. The holder is told as for any deleted key
    /// (`lost()` says [`KeyTakenOver`](crate::LostReason::KeyTakenOver)).
    ///
    /// # Errors
    ///
    /// [`Error::PermissionDenied`](crate::Error::PermissionDenied) when the token may not
    /// write the key, [`Error::Unreachable`](crate::Error::Unreachable).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).agent_is_server(false).build()?;
    /// use consul_lock_runtime::Lock;
    /// let a = Lock::new("jobs/d").client(&client).acquire().await?;
    /// let b = Lock::new("jobs/e").client(&client).acquire().await?;
    /// assert_eq!(a.session_id(), b.session_id()); // the client's shared session
    /// client.delete_held_key(a.key(), a.session_id()).await?;
    /// assert!(client.kv_get(a.key()).await?.is_none());
    /// assert!(client.kv_get(b.key()).await?.is_some()); // the other lock is kept
    /// # Ok(()) }
    /// ```
    pub async fn delete_held_key(&self, key: &str, session: &str) -> Result<()> {
        let (key, session) = (key.to_owned(), session.to_owned());
        self.run(|client| async move {
            let timeout = client.request_timeout();
            client.txn_give_back(&key, &session, timeout).await
        })
        .await
    }
}
