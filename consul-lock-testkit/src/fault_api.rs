//! The fault-injection methods of [`TestServer`]: leaderless periods and elections,
//! latency, forced errors, stalls, dropped connections, lost answers and forced session
//! expiry.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::server::TestServer;

/// The state of the server's node health check (`serfHealth`), for
/// [`TestServer::set_node_health`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeHealth {
    /// The node is alive and reachable (the state a server starts in).
    Passing,
    /// Consul's servers declared the node failed (its agent frozen, crashed or cut off).
    Critical,
}

impl TestServer {
    /// While on, writes, default and consistent reads, sessions and transactions are held
    /// until the leader is back or `leaderless_hold` passes (then `500 No cluster leader`);
    /// `?stale` reads answer at once with `X-Consul-KnownLeader: false`; `/v1/status/leader`
    /// answers `""`. Session TTL timers pause and restart in full when the leader is back.
    ///
    /// ```
    /// # use consul_lock_testkit::{ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, body: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n", body.len());
    /// #     write!(s, "{head}Connection: close\r\n\r\n{body}").unwrap();
    /// #     let mut answer = String::new();
    /// #     let _ = s.read_to_string(&mut answer); // empty when the connection is dropped
    /// #     match answer.split_once("\r\n\r\n") {
    /// #         Some((head, body)) => (head[9..12].parse().unwrap(), body.to_string()),
    /// #         None => (0, String::new()),
    /// #     }
    /// # }
    /// let server = TestServer::start().unwrap();
    /// server.set_leaderless(true);
    /// assert_eq!(call(&server, "GET", "/v1/status/leader", ""), (200, "\"\"\n".into()));
    /// assert_eq!(call(&server, "GET", "/v1/kv/a?stale", "").0, 404); // stale reads still answer
    /// server.set_leaderless(false);
    /// assert_eq!(call(&server, "PUT", "/v1/kv/a", "x").0, 200);
    /// ```
    pub fn set_leaderless(&self, on: bool) {
        self.shared.faults.set_leaderless(on, None);
    }

    /// Leaderless now, with the leader back after `d`.
    ///
    /// ```
    /// # use consul_lock_testkit::{ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, body: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n", body.len());
    /// #     write!(s, "{head}Connection: close\r\n\r\n{body}").unwrap();
    /// #     let mut answer = String::new();
    /// #     let _ = s.read_to_string(&mut answer); // empty when the connection is dropped
    /// #     match answer.split_once("\r\n\r\n") {
    /// #         Some((head, body)) => (head[9..12].parse().unwrap(), body.to_string()),
    /// #         None => (0, String::new()),
    /// #     }
    /// # }
    /// use std::time::{Duration, Instant};
    /// let server = TestServer::start().unwrap();
    /// server.leaderless_for(Duration::from_millis(50));
    /// assert_eq!(call(&server, "GET", "/v1/status/leader", ""), (200, "\"\"\n".into()));
    /// let start = Instant::now();
    /// assert_eq!(call(&server, "PUT", "/v1/kv/a", "x").0, 200); // held until the leader is back
    /// assert!(start.elapsed() >= Duration::from_millis(40));
    /// ```
    pub fn leaderless_for(&self, d: Duration) {
        self.shared
            .faults
            .set_leaderless(true, Some(Instant::now() + d));
    }

    /// Adds `d` to every request.
    ///
    /// ```
    /// # use consul_lock_testkit::{ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, body: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n", body.len());
    /// #     write!(s, "{head}Connection: close\r\n\r\n{body}").unwrap();
    /// #     let mut answer = String::new();
    /// #     let _ = s.read_to_string(&mut answer); // empty when the connection is dropped
    /// #     match answer.split_once("\r\n\r\n") {
    /// #         Some((head, body)) => (head[9..12].parse().unwrap(), body.to_string()),
    /// #         None => (0, String::new()),
    /// #     }
    /// # }
    /// use std::time::{Duration, Instant};
    /// let server = TestServer::start().unwrap();
    /// server.set_latency(Duration::from_millis(20));
    /// let start = Instant::now();
    /// assert_eq!(call(&server, "GET", "/v1/status/leader", "").0, 200);
    /// assert!(start.elapsed() >= Duration::from_millis(20));
    /// server.set_latency(Duration::ZERO); // back to full speed
    /// ```
    pub fn set_latency(&self, d: Duration) {
        self.shared.faults.set_latency(d);
    }

    /// The next `n` requests answer `status` with `body` (text/plain).
    ///
    /// ```
    /// # use consul_lock_testkit::{ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, body: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n", body.len());
    /// #     write!(s, "{head}Connection: close\r\n\r\n{body}").unwrap();
    /// #     let mut answer = String::new();
    /// #     let _ = s.read_to_string(&mut answer); // empty when the connection is dropped
    /// #     match answer.split_once("\r\n\r\n") {
    /// #         Some((head, body)) => (head[9..12].parse().unwrap(), body.to_string()),
    /// #         None => (0, String::new()),
    /// #     }
    /// # }
    /// let server = TestServer::start().unwrap();
    /// server.fail_next(2, 500, "No cluster leader");
    /// assert_eq!(call(&server, "PUT", "/v1/kv/a", "x"), (500, "No cluster leader".into()));
    /// assert_eq!(call(&server, "PUT", "/v1/kv/a", "x").0, 500);
    /// assert_eq!(call(&server, "PUT", "/v1/kv/a", "x"), (200, "true\n".into()));
    /// ```
    pub fn fail_next(&self, n: usize, status: u16, body: &str) {
        self.shared.faults.set_fail_next(n, status, body);
    }

    /// While on, requests are accepted but not answered until it is turned off.
    ///
    /// ```
    /// # use consul_lock_testkit::{ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, body: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n", body.len());
    /// #     write!(s, "{head}Connection: close\r\n\r\n{body}").unwrap();
    /// #     let mut answer = String::new();
    /// #     let _ = s.read_to_string(&mut answer); // empty when the connection is dropped
    /// #     match answer.split_once("\r\n\r\n") {
    /// #         Some((head, body)) => (head[9..12].parse().unwrap(), body.to_string()),
    /// #         None => (0, String::new()),
    /// #     }
    /// # }
    /// use std::time::Duration;
    /// let server = TestServer::start().unwrap();
    /// server.set_stalled(true);
    /// std::thread::scope(|scope| {
    ///     let waiting = scope.spawn(|| call(&server, "GET", "/v1/status/leader", "").0);
    ///     std::thread::sleep(Duration::from_millis(50));
    ///     assert!(!waiting.is_finished()); // accepted, not answered
    ///     server.set_stalled(false);
    ///     assert_eq!(waiting.join().unwrap(), 200);
    /// });
    /// ```
    pub fn set_stalled(&self, on: bool) {
        self.shared.faults.stalled.send_replace(on);
    }

    /// Closes every open connection now (requests in flight get no answer).
    ///
    /// ```
    /// # use std::io::{Read, Write};
    /// # use std::net::TcpStream;
    /// # fn request(s: &mut TcpStream) -> String { // one keep-alive exchange
    /// #     s.write_all(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    /// #     let (mut answer, mut buf) = (Vec::new(), [0; 1024]);
    /// #     while !answer.ends_with(b"8300\"\n") {
    /// #         let n = s.read(&mut buf).unwrap();
    /// #         assert!(n > 0, "closed early");
    /// #         answer.extend_from_slice(&buf[..n]);
    /// #     }
    /// #     String::from_utf8(answer).unwrap()
    /// # }
    /// let server = consul_lock_testkit::TestServer::start().unwrap();
    /// let mut conn = TcpStream::connect(server.addr()).unwrap();
    /// assert!(request(&mut conn).starts_with("HTTP/1.1 200 OK")); // the connection stays open
    /// server.set_stalled(true); // so that the next request is still in flight
    /// conn.write_all(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    /// server.drop_connections();
    /// assert!(matches!(conn.read(&mut [0; 64]), Ok(0) | Err(_)), "closed, no answer");
    /// server.set_stalled(false);
    /// ```
    pub fn drop_connections(&self) {
        self.shared.faults.drop_all_now();
    }

    /// The next `n` requests have their connection closed without an answer.
    ///
    /// ```
    /// # use consul_lock_testkit::{ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, body: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n", body.len());
    /// #     write!(s, "{head}Connection: close\r\n\r\n{body}").unwrap();
    /// #     let mut answer = String::new();
    /// #     let _ = s.read_to_string(&mut answer); // empty when the connection is dropped
    /// #     match answer.split_once("\r\n\r\n") {
    /// #         Some((head, body)) => (head[9..12].parse().unwrap(), body.to_string()),
    /// #         None => (0, String::new()),
    /// #     }
    /// # }
    /// let server = TestServer::start().unwrap();
    /// server.drop_next(1);
    /// assert_eq!(call(&server, "GET", "/v1/status/leader", ""), (0, String::new())); // no answer
    /// assert_eq!(call(&server, "GET", "/v1/status/leader", "").0, 200);
    /// ```
    pub fn drop_next(&self, n: usize) {
        self.shared.faults.drop_next.store(n, Ordering::SeqCst);
    }

    /// Invalidates a session now as its TTL expiring would (its `Behavior` and `LockDelay`
    /// apply). Returns whether it existed.
    ///
    /// ```
    /// # use consul_lock_testkit::{ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, body: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n", body.len());
    /// #     write!(s, "{head}Connection: close\r\n\r\n{body}").unwrap();
    /// #     let mut answer = String::new();
    /// #     let _ = s.read_to_string(&mut answer); // empty when the connection is dropped
    /// #     match answer.split_once("\r\n\r\n") {
    /// #         Some((head, body)) => (head[9..12].parse().unwrap(), body.to_string()),
    /// #         None => (0, String::new()),
    /// #     }
    /// # }
    /// let server = TestServer::start().unwrap();
    /// let (_, created) = call(&server, "PUT", "/v1/session/create", "{}");
    /// let id = created.split('"').nth(3).unwrap(); // {"ID": "…"}
    /// assert_eq!(call(&server, "PUT", &format!("/v1/kv/lock?acquire={id}"), "me").1, "true\n");
    /// assert!(server.expire_session(id));
    /// assert!(!server.expire_session(id)); // already gone
    /// assert!(!call(&server, "GET", "/v1/kv/lock", "").1.contains(id)); // the lock is released
    /// ```
    pub fn expire_session(&self, id: &str) -> bool {
        self.shared
            .write(|st| st.invalidate_session(id, Instant::now()))
    }

    /// A leader election for `d`, as a client agent sees one when the leader dies: every
    /// write (KV `PUT`/`DELETE`, session create/destroy/renew, `/v1/txn`) and every default
    /// or `?consistent` read fails **at once** with HTTP 500 and one of Consul's RPC error
    /// texts, alternating between `rpc error making call: EOF` and
    /// `rpc error getting client: failed to get conn: dial tcp 127.0.0.1:8300: connect:
    /// connection refused`. `?stale` reads still answer (with `X-Consul-KnownLeader:
    /// false`), and `/v1/status/leader` answers `""`. Session TTL timers pause; when the
    /// period ends every session's timer restarts, as Consul's new leader does, so a session
    /// is then valid for its TTL from the end of the election.
    ///
    /// Unlike [`set_leaderless`](Self::set_leaderless) (no leader at all: requests are held
    /// about 7 s, then `500 No cluster leader`), nothing is held. A later call replaces the
    /// end of a running election.
    ///
    /// ```
    /// # use consul_lock_testkit::{ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, body: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n", body.len());
    /// #     write!(s, "{head}Connection: close\r\n\r\n{body}").unwrap();
    /// #     let mut answer = String::new();
    /// #     let _ = s.read_to_string(&mut answer); // empty when the connection is dropped
    /// #     match answer.split_once("\r\n\r\n") {
    /// #         Some((head, body)) => (head[9..12].parse().unwrap(), body.to_string()),
    /// #         None => (0, String::new()),
    /// #     }
    /// # }
    /// use std::time::Duration;
    /// let server = TestServer::start().unwrap();
    /// server.election_for(Duration::from_secs(60));
    /// assert_eq!(call(&server, "PUT", "/v1/kv/a", "x"), (500, "rpc error making call: EOF".into()));
    /// let (status, body) = call(&server, "GET", "/v1/kv/a", "");
    /// assert_eq!(status, 500);
    /// assert!(body.starts_with("rpc error getting client: failed to get conn"));
    /// assert_eq!(call(&server, "GET", "/v1/kv/a?stale", "").0, 404); // stale reads answer
    /// assert_eq!(call(&server, "GET", "/v1/status/leader", ""), (200, "\"\"\n".into()));
    /// server.election_for(Duration::ZERO); // a new leader now
    /// assert_eq!(call(&server, "PUT", "/v1/kv/a", "x").0, 200);
    /// ```
    pub fn election_for(&self, d: Duration) {
        self.shared.faults.set_election(Instant::now() + d);
    }

    /// The next `n` writes (KV `PUT`/`DELETE`, session create/destroy/renew, a `/v1/txn`
    /// that writes and succeeds) are **applied** and then answered
    /// `500 rpc error making call: EOF`, as when Consul's leader applies a write and the
    /// answer is lost. Requests refused before they write (bad input, ACLs) do not count.
    /// A later call replaces the count; `0` cancels it.
    ///
    /// ```
    /// # use consul_lock_testkit::{ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, body: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n", body.len());
    /// #     write!(s, "{head}Connection: close\r\n\r\n{body}").unwrap();
    /// #     let mut answer = String::new();
    /// #     let _ = s.read_to_string(&mut answer); // empty when the connection is dropped
    /// #     match answer.split_once("\r\n\r\n") {
    /// #         Some((head, body)) => (head[9..12].parse().unwrap(), body.to_string()),
    /// #         None => (0, String::new()),
    /// #     }
    /// # }
    /// let server = TestServer::start().unwrap();
    /// server.apply_then_fail_next(1);
    /// assert_eq!(call(&server, "PUT", "/v1/kv/a", "x"), (500, "rpc error making call: EOF".into()));
    /// assert_eq!(call(&server, "GET", "/v1/kv/a?raw", ""), (200, "x".into())); // it was written
    /// assert_eq!(call(&server, "PUT", "/v1/kv/a", "y").0, 200); // only the next one failed
    /// ```
    pub fn apply_then_fail_next(&self, n: usize) {
        self.shared
            .faults
            .apply_then_fail
            .store(n, Ordering::SeqCst);
    }

    /// Sets the node's `serfHealth` check, as Consul's servers do when they declare the
    /// agent's node failed (its agent frozen, killed or cut off from them) and when it is back.
    /// Going [`NodeHealth::Critical`] invalidates at once, in one write, every session that
    /// carries the check (Consul's default for a session created without `NodeChecks`), with
    /// its `Behavior` and `LockDelay`; sessions created with no checks (`"NodeChecks": []`)
    /// live on until their TTL. While critical, a session naming the check cannot be created
    /// (`500 apply failed: Check 'serfHealth' is in critical state`). Returns how many sessions
    /// were invalidated.
    ///
    /// ```
    /// # use consul_lock_testkit::{ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, body: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n", body.len());
    /// #     write!(s, "{head}Connection: close\r\n\r\n{body}").unwrap();
    /// #     let mut answer = String::new();
    /// #     let _ = s.read_to_string(&mut answer); // empty when the connection is dropped
    /// #     match answer.split_once("\r\n\r\n") {
    /// #         Some((head, body)) => (head[9..12].parse().unwrap(), body.to_string()),
    /// #         None => (0, String::new()),
    /// #     }
    /// # }
    /// use consul_lock_testkit::NodeHealth;
    /// let server = TestServer::start().unwrap();
    /// let id = |created: String| created.split('"').nth(3).unwrap().to_string(); // {"ID": "…"}
    /// let tied = id(call(&server, "PUT", "/v1/session/create", "{}").1); // Consul's default checks
    /// let free = id(call(&server, "PUT", "/v1/session/create", r#"{"NodeChecks": []}"#).1);
    /// assert_eq!(server.set_node_health(NodeHealth::Critical), 1);
    /// assert_eq!(call(&server, "GET", &format!("/v1/session/info/{tied}"), "").1, "[]\n"); // gone
    /// assert!(call(&server, "GET", &format!("/v1/session/info/{free}"), "").1.contains(&free));
    /// let refused = call(&server, "PUT", "/v1/session/create", "{}");
    /// assert_eq!(refused, (500, "apply failed: Check 'serfHealth' is in critical state".into()));
    /// server.set_node_health(NodeHealth::Passing);
    /// assert_eq!(call(&server, "PUT", "/v1/session/create", "{}").0, 200);
    /// ```
    pub fn set_node_health(&self, health: NodeHealth) -> usize {
        let node = self.shared.config.node_name.clone();
        let critical = health == NodeHealth::Critical;
        self.shared
            .write(|st| st.set_node_health(&node, critical, Instant::now()))
    }

    /// Deletes an ACL token, as an operator's `consul acl token delete` does: from now on every
    /// request carrying it is answered `403 ACL not found`. The sessions it created live on (a
    /// token's deletion ends no session), so a lock taken with it stays held until its TTL runs
    /// out, and can no longer be renewed or released with that token. Returns whether the
    /// server has ACLs (without them every token is accepted and this does nothing).
    ///
    /// ```
    /// # use std::io::{Read, Write};
    /// use consul_lock_testkit::{Access, AclConfig, AclToken, ServerConfig, TestServer};
    /// # fn call(server: &TestServer, path: &str, token: &str) -> u16 {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nX-Consul-Token: {token}\r\nConnection: close\r\n\r\n").unwrap();
    /// #     let mut answer = String::new();
    /// #     s.read_to_string(&mut answer).unwrap();
    /// #     answer[9..12].parse().unwrap()
    /// # }
    /// let acl = AclConfig::deny_by_default().token(AclToken::new("app").key_prefix("", Access::Read));
    /// let server = TestServer::start_with(ServerConfig::default().acl(acl)).unwrap();
    /// assert_eq!(call(&server, "/v1/kv/a", "app"), 404); // allowed: the key does not exist
    /// assert!(server.revoke_token("app"));
    /// assert_eq!(call(&server, "/v1/kv/a", "app"), 403); // ACL not found
    /// ```
    pub fn revoke_token(&self, secret: &str) -> bool {
        let mut revoked = self
            .shared
            .revoked
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        revoked.push(secret.to_owned());
        self.shared.config.acl.is_some()
    }

    /// Deregisters the server's node from the catalog, as `PUT /v1/catalog/deregister`, an
    /// operator's `consul force-leave`, a client agent's graceful leave (`consul leave`, or
    /// `SIGTERM` with Consul's default `leave_on_terminate` for clients), Consul's reaping of a
    /// node failed for `reconnect_timeout`, or the leader's removal of a failed server do:
    /// every session of the node ends at once, in one write, whatever its checks (their
    /// `Behavior` and `LockDelay` apply), and until [`register_node`](Self::register_node) a
    /// session create answers `500 apply failed: Missing node registration`. Returns how many
    /// sessions ended.
    ///
    /// ```
    /// # use consul_lock_testkit::TestServer;
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, body: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n", body.len());
    /// #     write!(s, "{head}Connection: close\r\n\r\n{body}").unwrap();
    /// #     let mut answer = String::new();
    /// #     let _ = s.read_to_string(&mut answer);
    /// #     match answer.split_once("\r\n\r\n") {
    /// #         Some((head, body)) => (head[9..12].parse().unwrap(), body.to_string()),
    /// #         None => (0, String::new()),
    /// #     }
    /// # }
    /// let server = TestServer::start().unwrap();
    /// let created = call(&server, "PUT", "/v1/session/create", r#"{"NodeChecks": []}"#).1;
    /// let id = created.split('"').nth(3).unwrap().to_string();
    /// assert_eq!(server.deregister_node(), 1); // check-less, and still ended
    /// assert_eq!(call(&server, "GET", &format!("/v1/session/info/{id}"), "").1, "[]\n");
    /// let refused = call(&server, "PUT", "/v1/session/create", "{}");
    /// assert_eq!(refused, (500, "apply failed: Missing node registration".into()));
    /// server.register_node(); // as the agent's anti-entropy sync does a minute later
    /// assert_eq!(call(&server, "PUT", "/v1/session/create", "{}").0, 200);
    /// ```
    pub fn deregister_node(&self) -> usize {
        let node = self.shared.config.node_name.clone();
        self.shared
            .write(|st| st.set_node_registered(&node, false, Instant::now()))
    }

    /// Registers the node again after [`deregister_node`](Self::deregister_node) (its
    /// `serfHealth` passing), as the agent's anti-entropy sync does about a minute later.
    pub fn register_node(&self) {
        let node = self.shared.config.node_name.clone();
        self.shared
            .write(|st| st.set_node_registered(&node, true, Instant::now()));
    }
}
