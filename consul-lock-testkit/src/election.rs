//! The election faults of a [`TestServer`]: a leader election (writes and consistent reads
//! fail at once with Consul's RPC error texts) and writes whose answer is lost after they
//! were applied.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::server::TestServer;

impl TestServer {
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
}
