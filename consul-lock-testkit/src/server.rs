//! The listener, connection tasks, the TTL timer task, shutdown and the [`TestServer`]
//! handle with its fault-injection methods.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{oneshot, Notify};

use crate::config::ServerConfig;
use crate::error::Error;
use crate::resp::Resp;
use crate::shared::{Shared, TaskGuard};
use crate::store::Store;
use crate::tls::Tls;

/// A Consul-compatible HTTP server running on its own thread and tokio runtime.
///
/// It works from plain `#[test]`s and from `#[tokio::test]` of any flavour; dropping it
/// stops it and leaves no task running.
///
/// ```
/// use std::io::{Read, Write};
/// use consul_lock_testkit::TestServer;
///
/// let server = TestServer::start().unwrap();
/// let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
/// s.write_all(b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
/// let mut answer = String::new();
/// s.read_to_string(&mut answer).unwrap();
/// assert!(answer.starts_with("HTTP/1.1 200 OK"));
/// assert!(answer.ends_with("\"127.0.0.1:8300\"\n"));
/// ```
pub struct TestServer {
    pub(crate) shared: Arc<Shared>,
    addr: SocketAddr,
    tls: Option<Tls>,
    running: Option<Running>,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("url", &self.url())
            .finish()
    }
}

struct Running {
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A handle on the number of live server tasks, readable after the server is gone.
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct LiveTasks(Arc<AtomicUsize>);

impl LiveTasks {
    /// Tasks alive now (listener, TTL timer, one per connection).
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

impl TestServer {
    /// Starts a server on a free loopback port with [`ServerConfig::default()`].
    ///
    /// ```
    /// let server = consul_lock_testkit::TestServer::start().unwrap();
    /// assert!(server.url().starts_with("http://127.0.0.1:"));
    /// ```
    pub fn start() -> Result<TestServer, Error> {
        TestServer::start_with(ServerConfig::default())
    }

    /// Starts a server with `config`; the socket is bound before this returns.
    ///
    /// ```
    /// use consul_lock_testkit::{ServerConfig, TestServer};
    /// let server = TestServer::start_with(ServerConfig::default().tls(true)).unwrap();
    /// assert!(server.url().starts_with("https://"));
    /// assert!(server.ca_cert_pem().unwrap().contains("BEGIN CERTIFICATE"));
    /// ```
    pub fn start_with(config: ServerConfig) -> Result<TestServer, Error> {
        let tls = if config.tls {
            Some(crate::tls::generate()?)
        } else {
            None
        };
        let listener = bind(config.listen)?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        let mut config = config;
        config.listen = addr;
        let shared = Arc::new(Shared::new(config, Store::default()));
        let running = spawn(shared.clone(), listener, tls.clone())?;
        Ok(TestServer {
            shared,
            addr,
            tls,
            running: Some(running),
        })
    }

    /// The address it listens on.
    ///
    /// ```
    /// let server = consul_lock_testkit::TestServer::start().unwrap();
    /// assert!(server.addr().ip().is_loopback());
    /// assert_ne!(server.addr().port(), 0); // the free port it was given
    /// std::net::TcpStream::connect(server.addr()).unwrap();
    /// ```
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, or `https://…` with TLS.
    ///
    /// ```
    /// let server = consul_lock_testkit::TestServer::start().unwrap();
    /// assert_eq!(server.url(), format!("http://{}", server.addr()));
    /// ```
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The generated CA certificate (PEM) when TLS is on.
    ///
    /// ```
    /// use consul_lock_testkit::{ServerConfig, TestServer};
    /// assert_eq!(TestServer::start().unwrap().ca_cert_pem(), None);
    /// let server = TestServer::start_with(ServerConfig::default().tls(true)).unwrap();
    /// let pem = server.ca_cert_pem().unwrap(); // trust this in the client under test
    /// assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    /// ```
    pub fn ca_cert_pem(&self) -> Option<String> {
        self.tls.as_ref().map(|t| t.ca_pem.clone())
    }

    /// The configuration it runs with (the port filled in).
    ///
    /// ```
    /// use consul_lock_testkit::{Error, ServerConfig, TestServer};
    /// let server = TestServer::start_with(ServerConfig::default().datacenter("dc2")).unwrap();
    /// assert!(format!("{:?}", server.config()).contains("dc2"));
    /// // The port is filled in, so the same config cannot start a second server.
    /// let again = TestServer::start_with(server.config().clone());
    /// assert!(matches!(again, Err(Error::Bind { addr, .. }) if addr == server.addr()));
    /// ```
    pub fn config(&self) -> &ServerConfig {
        &self.shared.config
    }

    /// Stops and starts again on the same port. With `keep_state` the data survives (and
    /// session TTL timers restart in full, as after a leader election); without it the
    /// server comes back empty, its index starting over.
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
    /// let mut server = TestServer::start().unwrap();
    /// let addr = server.addr();
    /// call(&server, "PUT", "/v1/kv/a", "x");
    /// server.restart(true).unwrap();
    /// assert_eq!(call(&server, "GET", "/v1/kv/a?raw", ""), (200, "x".into()));
    /// server.restart(false).unwrap();
    /// assert_eq!(call(&server, "GET", "/v1/kv/a?raw", "").0, 404);
    /// assert_eq!(server.addr(), addr); // same port
    /// ```
    pub fn restart(&mut self, keep_state: bool) -> Result<(), Error> {
        if let Some(mut r) = self.running.take() {
            r.stop();
        }
        let now = Instant::now();
        if keep_state {
            self.shared.write(|st| st.reset_session_timers(now));
        } else {
            self.shared.replace_store(Store::default());
        }
        let mut last = None;
        for _ in 0..50 {
            match bind(self.addr) {
                Ok(l) => {
                    self.running = Some(spawn(self.shared.clone(), l, self.tls.clone())?);
                    return Ok(());
                }
                Err(e) => {
                    last = Some(e);
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        Err(last.unwrap_or(Error::Runtime(std::io::Error::other("cannot rebind"))))
    }

    /// Stops the server (as dropping it does).
    ///
    /// ```
    /// let server = consul_lock_testkit::TestServer::start().unwrap();
    /// let addr = server.addr();
    /// server.stop();
    /// assert!(std::net::TcpStream::connect(addr).is_err());
    /// ```
    pub fn stop(mut self) {
        if let Some(mut r) = self.running.take() {
            r.stop();
        }
    }

    /// HTTP requests answered so far.
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
    /// assert_eq!(server.request_count(), 0);
    /// call(&server, "PUT", "/v1/kv/a", "x");
    /// call(&server, "GET", "/v1/kv/a", "");
    /// assert_eq!(server.request_count(), 2);
    /// ```
    pub fn request_count(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Live server tasks: the listener, the TTL timer and one per open connection.
    #[doc(hidden)]
    pub fn live_tasks(&self) -> usize {
        self.shared.live_tasks.load(Ordering::SeqCst)
    }

    /// A counter of live tasks that stays readable after the server is stopped.
    #[doc(hidden)]
    pub fn live_tasks_handle(&self) -> LiveTasks {
        LiveTasks(self.shared.live_tasks.clone())
    }
}

fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, Error> {
    let l = std::net::TcpListener::bind(addr).map_err(|source| Error::Bind { addr, source })?;
    l.set_nonblocking(true)
        .map_err(|source| Error::Bind { addr, source })?;
    Ok(l)
}

fn spawn(
    shared: Arc<Shared>,
    listener: std::net::TcpListener,
    tls: Option<Tls>,
) -> Result<Running, Error> {
    let (tx, rx) = oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), std::io::Error>>();
    let thread = std::thread::Builder::new()
        .name("consul-lock-testkit".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("consul-lock-testkit-worker")
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                tokio::spawn(accept_loop(shared.clone(), listener, tls));
                tokio::spawn(ttl_loop(shared));
                let _ = ready_tx.send(Ok(()));
                let _ = rx.await;
            });
            rt.shutdown_timeout(Duration::from_secs(5));
        })
        .map_err(Error::Runtime)?;
    let mut running = Running {
        shutdown: Some(tx),
        thread: Some(thread),
    };
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(running),
        Ok(Err(e)) => {
            running.stop();
            Err(Error::Runtime(e))
        }
        Err(_) => {
            running.stop();
            Err(Error::Runtime(std::io::Error::other(
                "server thread exited",
            )))
        }
    }
}

async fn accept_loop(shared: Arc<Shared>, listener: tokio::net::TcpListener, tls: Option<Tls>) {
    let _guard = TaskGuard::new(&shared.live_tasks);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(_) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        let Some(conn_guard) = crate::connlimit::ConnGuard::admit(&shared, peer.ip()) else {
            tokio::spawn(crate::connlimit::refuse(stream, shared.live_tasks.clone()));
            continue;
        };
        tokio::spawn(async move {
            let _guard = TaskGuard::new(&shared.live_tasks);
            let _conn_guard = conn_guard;
            match tls {
                None => serve(shared, TokioIo::new(stream)).await,
                Some(t) => {
                    let hs =
                        tokio::time::timeout(Duration::from_secs(10), t.acceptor.accept(stream))
                            .await;
                    if let Ok(Ok(s)) = hs {
                        serve(shared, TokioIo::new(s)).await;
                    }
                }
            }
        });
    }
}

async fn serve<I>(shared: Arc<Shared>, io: I)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let kill = Arc::new(Notify::new());
    let mut drop_rx = shared.faults.drop_all.subscribe();
    let svc_shared = shared.clone();
    let svc_kill = kill.clone();
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let shared = svc_shared.clone();
        let kill = svc_kill.clone();
        async move { Ok::<_, Infallible>(answer(&shared, req, &kill).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .half_close(true)
        .serve_connection(io, svc);
    tokio::select! {
        _ = conn => {}
        _ = kill.notified() => {}
        _ = drop_rx.changed() => {}
    }
}

async fn answer(shared: &Shared, req: Request<Incoming>, kill: &Notify) -> Response<Full<Bytes>> {
    let start = Instant::now();
    let method = req.method().clone();
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    if shared.faults.take_drop() {
        kill.notify_one();
        std::future::pending::<()>().await;
    }
    let resp = if let Some((status, body)) = shared.faults.take_fail() {
        Resp::text(status, body)
    } else {
        let mut stalled = shared.faults.stalled.subscribe();
        while *stalled.borrow_and_update() {
            if stalled.changed().await.is_err() {
                break;
            }
        }
        let latency = shared.faults.latency();
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        let resp = crate::request::handle(shared, req).await;
        if resp.applied && shared.faults.take_apply_then_fail() {
            // Applied, but the answer is lost on the way back, as after a leader loss.
            Resp::text(500, crate::faults::ELECTION_ERRORS[0])
        } else {
            resp
        }
    };
    shared.count_request();
    if shared.config.log_requests {
        eprintln!(
            "{method} {target} {} {:.1}ms",
            resp.status,
            start.elapsed().as_secs_f64() * 1000.0
        );
    }
    into_hyper(resp, shared)
}

fn into_hyper(r: Resp, shared: &Shared) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut builder = Response::builder().status(status);
    for (name, value) in &r.headers {
        if let Ok(v) = hyper::header::HeaderValue::from_str(value) {
            builder = builder.header(*name, v);
        }
    }
    if r.consul_headers {
        let policy = match &shared.config.acl {
            Some(a) if !a.default_allow => "deny",
            _ => "allow",
        };
        builder = builder
            .header("Vary", "Accept-Encoding")
            .header("X-Consul-Default-Acl-Policy", policy);
    }
    builder
        .body(Full::new(Bytes::from(r.body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// Invalidates sessions whose TTL ran out; pauses while there is no leader and restarts
/// every timer in full when the leader is back, as Consul's new leader does.
async fn ttl_loop(shared: Arc<Shared>) {
    let _guard = TaskGuard::new(&shared.live_tasks);
    let mut leader_rx = shared.faults.leader.subscribe();
    let mut was_leaderless = false;
    let mut election_handled: Option<Instant> = None;
    loop {
        let ls = *leader_rx.borrow_and_update();
        let now = Instant::now();
        // An election that ended (however short): timers restart from its end.
        if let Some(end) = ls.election_until.filter(|u| *u <= now) {
            if election_handled != Some(end) {
                election_handled = Some(end);
                shared.write(|st| st.reset_session_timers(end));
            }
        }
        if !ls.has_leader(now) {
            was_leaderless = true;
            let wake = ls
                .next_change(now)
                .unwrap_or(now + Duration::from_secs(3600));
            tokio::select! {
                r = leader_rx.changed() => { if r.is_err() { return; } }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            continue;
        }
        if was_leaderless {
            shared.write(|st| st.reset_session_timers(now));
            was_leaderless = false;
        }
        let notified = shared.ttl_notify.notified();
        let next = shared.write(|st| {
            st.expire_due(now);
            st.next_deadline()
        });
        let wake = next.unwrap_or(now + Duration::from_secs(3600));
        tokio::select! {
            _ = notified => {}
            _ = tokio::time::sleep_until(wake.into()) => {}
            r = leader_rx.changed() => { if r.is_err() { return; } }
        }
    }
}
