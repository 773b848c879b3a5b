//! 1,000 blocking queries open at once against one server: all answered when a write wakes
//! them, or at their `wait`; memory stays bounded; no task survives the server.
//!
//! Client and server share this process, so each query holds two descriptors: the test
//! raises its soft open-files limit up to the hard limit, and runs fewer queries (saying so)
//! only when the hard limit is too low.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use consul_lock_testkit::{ServerConfig, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const N: usize = 1000;
/// Descriptors besides the queries' two each: the runtime, the listener, stdio, the
/// requests made between rounds.
const SPARE_FDS: usize = 64;

/// How many queries this process can hold open: `N`, or fewer (printed) under a hard
/// open-files limit below `2 * N + SPARE_FDS`.
fn queries() -> usize {
    let want = 2 * N + SPARE_FDS;
    let limit = consul_lock_testkit::raise_open_files_limit(want as u64) as usize;
    if limit >= want {
        return N;
    }
    let n = limit.saturating_sub(SPARE_FDS) / 2;
    println!(
        "scaled down: {n} blocking queries instead of {N}; the open-files hard limit is \
         {limit} (raise it with `ulimit -Hn {want}` to run all {N})"
    );
    n
}

fn rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn blocking_get(addr: SocketAddr, path: String) -> (u16, Option<u64>, Instant) {
    blocking_get_timed(addr, path).await.1
}

/// Returns when the request was sent and (status, index, when it was answered).
async fn blocking_get_timed(
    addr: SocketAddr,
    path: String,
) -> (Instant, (u16, Option<u64>, Instant)) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let sent = Instant::now();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let a = common::parse_answer(&out).expect("well-formed answer");
    let idx = a.header("X-Consul-Index").and_then(|v| v.parse().ok());
    (sent, (a.status, idx, Instant::now()))
}

async fn open_all(
    server: &TestServer,
    path: &str,
    n: usize,
) -> Vec<tokio::task::JoinHandle<(u16, Option<u64>, Instant)>> {
    // Earlier `Connection: close` exchanges end first: the listener and the TTL task remain.
    let t = Instant::now();
    while server.live_tasks() > 2 {
        assert!(t.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = 2;
    let handles: Vec<_> = (0..n)
        .map(|_| tokio::spawn(blocking_get(server.addr(), path.to_string())))
        .collect();
    // Every query has its connection task on the server.
    let t = Instant::now();
    while server.live_tasks() < before + n {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "only {} connections for {path}",
            server.live_tasks().saturating_sub(before)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    handles
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_blocking_queries() {
    let n = queries();
    // A thousand waiting blocking queries hold a thousand connections from one IP; like a
    // real agent, the server refuses more than 200 per client IP by default
    // (`http_max_conns_per_client`), so this load test raises the limit.
    let config = ServerConfig::default().http_max_conns_per_client(2000);
    let server = TestServer::start_with(config).unwrap();
    let tasks = server.live_tasks_handle();
    let a = common::request(server.addr(), "PUT", "/v1/kv/load/k", "v0", None);
    assert_eq!(a.status, 200);
    let a = common::request(server.addr(), "GET", "/v1/kv/load/k", "", None);
    let idx: u64 = a.header("X-Consul-Index").unwrap().parse().unwrap();
    let rss_before = rss_kib();

    // Round 1: a write wakes all of them.
    let handles = open_all(&server, &format!("/v1/kv/load/k?index={idx}&wait=30s"), n).await;
    let rss_open = rss_kib();
    let wrote = Instant::now();
    let a = common::request(server.addr(), "PUT", "/v1/kv/load/k", "v1", None);
    assert_eq!(a.status, 200);
    for h in handles {
        let (status, new_idx, at) = h.await.unwrap();
        assert_eq!(status, 200);
        assert!(new_idx.unwrap() > idx);
        assert!(at.duration_since(wrote) < Duration::from_secs(5));
    }

    // Round 2: nothing changes; all return at their 1 s wait (+ up to 1/16 jitter).
    let a = common::request(server.addr(), "GET", "/v1/kv/load/k", "", None);
    let idx2: u64 = a.header("X-Consul-Index").unwrap().parse().unwrap();
    let path = format!("/v1/kv/load/k?index={idx2}&wait=1s");
    let handles: Vec<_> = (0..n)
        .map(|_| tokio::spawn(blocking_get_timed(server.addr(), path.clone())))
        .collect();
    for h in handles {
        let (sent, (status, same, at)) = h.await.unwrap();
        assert_eq!((status, same), (200, Some(idx2)));
        let took = at.duration_since(sent);
        assert!(
            took >= Duration::from_millis(1000) && took < Duration::from_secs(6),
            "{took:?}"
        );
    }

    if let (Some(b), Some(o)) = (rss_before, rss_open) {
        // Client and server share this process; 1,000 open queries stay well under 100 MiB.
        assert!(
            o.saturating_sub(b) < 100 * 1024,
            "RSS grew by {} KiB",
            o - b
        );
    }
    drop(server);
    assert_eq!(
        tasks.get(),
        0,
        "tasks left running after the server was dropped"
    );
}
