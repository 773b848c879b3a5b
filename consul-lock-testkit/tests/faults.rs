//! Fault injection, TTLs, restarts, TLS, ACL tokens and the harness, each proven by a test.

mod common;

use std::time::{Duration, Instant};

use common::{client, request};
use consul_lock_testkit::{Access, AclConfig, AclToken, ServerConfig, TestConsul, TestServer};

fn fast_config() -> ServerConfig {
    ServerConfig::default()
        .session_ttl_min(Duration::from_secs(1))
        .leaderless_hold(Duration::from_millis(300))
}

fn create_session(s: &TestServer, body: &str) -> String {
    let a = request(s.addr(), "PUT", "/v1/session/create", body, None);
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()["ID"].as_str().expect("ID").to_string()
}

#[test]
fn works_from_a_sync_test() {
    let s = TestServer::start().unwrap();
    let a = request(s.addr(), "GET", "/v1/agent/self", "", None);
    assert_eq!(a.json()["Config"]["Version"], "1.10.12");
    assert_eq!(a.json()["Config"]["Datacenter"], "dc1");
    assert_eq!(
        request(s.addr(), "GET", "/v1/status/peers", "", None).status,
        200
    );
    assert_eq!(s.request_count(), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn works_and_drops_inside_a_current_thread_runtime() {
    let s = TestServer::start().unwrap();
    let r = client()
        .get(format!("{}/v1/status/leader", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "\"127.0.0.1:8300\"\n");
    drop(s); // must not panic inside a runtime
}

#[test]
fn leaderless_holds_writes_then_fails_and_serves_stale_reads() {
    let s = TestServer::start_with(fast_config()).unwrap();
    s.set_leaderless(true);
    let t = Instant::now();
    let a = request(s.addr(), "PUT", "/v1/kv/k", "v", None);
    let held = t.elapsed();
    assert_eq!((a.status, a.body.as_str()), (500, "No cluster leader"));
    assert!(
        held >= Duration::from_millis(300) && held < Duration::from_millis(1000),
        "{held:?}"
    );
    let t = Instant::now();
    let a = request(s.addr(), "GET", "/v1/kv/k?stale", "", None);
    assert!(t.elapsed() < Duration::from_millis(200));
    assert_eq!(a.status, 404);
    assert_eq!(a.header("X-Consul-KnownLeader"), Some("false"));
    assert_eq!(
        request(s.addr(), "GET", "/v1/status/leader", "", None).body,
        "\"\"\n"
    );
    assert_eq!(
        request(s.addr(), "PUT", "/v1/session/create", "{}", None).status,
        500
    );
    s.set_leaderless(false);
    assert_eq!(request(s.addr(), "PUT", "/v1/kv/k", "v", None).status, 200);
}

#[test]
fn leaderless_for_releases_held_requests_when_the_leader_returns() {
    let s = TestServer::start_with(ServerConfig::default()).unwrap(); // default 7 s hold
    s.leaderless_for(Duration::from_millis(250));
    let t = Instant::now();
    let a = request(s.addr(), "PUT", "/v1/kv/k", "v", None);
    assert_eq!(a.status, 200);
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_millis(1500),
        "{took:?}"
    );
}

#[test]
fn latency_is_added_to_every_request() {
    let s = TestServer::start().unwrap();
    s.set_latency(Duration::from_millis(150));
    let t = Instant::now();
    assert_eq!(
        request(s.addr(), "GET", "/v1/status/leader", "", None).status,
        200
    );
    assert!(t.elapsed() >= Duration::from_millis(150));
    s.set_latency(Duration::ZERO);
    let t = Instant::now();
    request(s.addr(), "GET", "/v1/status/leader", "", None);
    assert!(t.elapsed() < Duration::from_millis(150));
}

#[test]
fn fail_next_answers_the_given_error_n_times() {
    let s = TestServer::start().unwrap();
    s.fail_next(2, 503, "injected");
    for _ in 0..2 {
        let a = request(s.addr(), "GET", "/v1/kv/x", "", None);
        assert_eq!((a.status, a.body.as_str()), (503, "injected"));
    }
    assert_eq!(request(s.addr(), "GET", "/v1/kv/x", "", None).status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_requests_are_answered_when_the_stall_ends() {
    let s = TestServer::start().unwrap();
    s.set_stalled(true);
    let url = format!("{}/v1/status/leader", s.url());
    let pending =
        tokio::spawn(async move { client().get(url).send().await.map(|r| r.status().as_u16()) });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!pending.is_finished(), "answered while stalled");
    s.set_stalled(false);
    let status = tokio::time::timeout(Duration::from_secs(2), pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_connections_closes_open_connections() {
    let s = TestServer::start().unwrap();
    let idx = client()
        .get(format!("{}/v1/kv/w", s.url()))
        .send()
        .await
        .unwrap();
    let idx = idx.headers()["x-consul-index"]
        .to_str()
        .unwrap()
        .to_string();
    let url = format!("{}/v1/kv/w?index={idx}&wait=30s", s.url());
    // The first client is gone: wait for its connection task to end (listener + TTL task).
    let t = Instant::now();
    while s.live_tasks() > 2 {
        assert!(t.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let blocked = tokio::spawn(async move { client().get(url).send().await });
    // Wait until the blocking query's connection is open.
    let t = Instant::now();
    while s.live_tasks() < 3 {
        assert!(t.elapsed() < Duration::from_secs(5));
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let t = Instant::now();
    s.drop_connections();
    let r = tokio::time::timeout(Duration::from_secs(2), blocked)
        .await
        .unwrap()
        .unwrap();
    assert!(
        r.is_err(),
        "the blocking query should have lost its connection"
    );
    assert!(t.elapsed() < Duration::from_secs(1));
    // The server keeps serving.
    let ok = client()
        .get(format!("{}/v1/status/leader", s.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[test]
fn drop_next_closes_without_an_answer() {
    let s = TestServer::start().unwrap();
    s.drop_next(1);
    let raw = common::raw_exchange(
        s.addr(),
        b"GET /v1/status/leader HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .unwrap_or_default();
    assert!(
        raw.is_empty(),
        "got an answer: {:?}",
        String::from_utf8_lossy(&raw)
    );
    assert_eq!(
        request(s.addr(), "GET", "/v1/status/leader", "", None).status,
        200
    );
}

#[test]
fn expire_session_releases_locks_and_starts_the_lock_delay() {
    let s = TestServer::start().unwrap();
    let id = create_session(&s, r#"{"LockDelay": "1s"}"#);
    assert_eq!(
        request(
            s.addr(),
            "PUT",
            &format!("/v1/kv/l?acquire={id}"),
            "v",
            None
        )
        .body,
        "true\n"
    );
    assert!(s.expire_session(&id));
    assert!(!s.expire_session(&id));
    let a = request(s.addr(), "GET", "/v1/kv/l", "", None);
    assert!(a.json()[0].get("Session").is_none());
    let other = create_session(&s, r#"{"LockDelay": "0s"}"#);
    // Within the lock-delay the key cannot be acquired.
    assert_eq!(
        request(
            s.addr(),
            "PUT",
            &format!("/v1/kv/l?acquire={other}"),
            "v",
            None
        )
        .body,
        "false\n"
    );
}

#[test]
fn session_ttl_invalidates_between_ttl_and_twice_ttl() {
    let s = TestServer::start_with(fast_config()).unwrap();
    let id = create_session(
        &s,
        r#"{"TTL": "1s", "LockDelay": "0s", "Behavior": "delete"}"#,
    );
    let start = Instant::now();
    request(
        s.addr(),
        "PUT",
        &format!("/v1/kv/ttl?acquire={id}"),
        "v",
        None,
    );
    // Block on the key: it is deleted when the session expires (Behavior=delete).
    let idx = request(s.addr(), "GET", "/v1/kv/ttl", "", None);
    let idx = idx.header("X-Consul-Index").unwrap().to_string();
    let a = request(
        s.addr(),
        "GET",
        &format!("/v1/kv/ttl?index={idx}&wait=10s"),
        "",
        None,
    );
    let took = start.elapsed();
    assert_eq!(a.status, 404);
    assert!(
        took >= Duration::from_secs(1) && took <= Duration::from_millis(2200),
        "{took:?}"
    );
    // Below the minimum: Consul's text with the configured minimum.
    let a = request(
        s.addr(),
        "PUT",
        "/v1/session/create",
        r#"{"TTL": "500ms"}"#,
        None,
    );
    assert_eq!(
        a.body,
        "Invalid Session TTL '500000000', must be between [1s=24h0m0s]"
    );
}

#[test]
fn renewing_keeps_a_session_alive() {
    let s = TestServer::start_with(fast_config()).unwrap();
    let id = create_session(&s, r#"{"TTL": "1s"}"#);
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(400)); // the client's renew period
        assert_eq!(
            request(
                s.addr(),
                "PUT",
                &format!("/v1/session/renew/{id}"),
                "",
                None
            )
            .status,
            200
        );
    }
    assert_eq!(
        request(s.addr(), "GET", &format!("/v1/session/info/{id}"), "", None)
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn restart_keeps_or_loses_state_on_the_same_port() {
    let mut s = TestServer::start().unwrap();
    let addr = s.addr();
    request(addr, "PUT", "/v1/kv/keep", "v", None);
    s.restart(true).unwrap();
    assert_eq!(s.addr(), addr);
    assert_eq!(request(addr, "GET", "/v1/kv/keep", "", None).status, 200);
    s.restart(false).unwrap();
    assert_eq!(request(addr, "GET", "/v1/kv/keep", "", None).status, 404);
}

#[test]
fn stop_leaves_no_task_running() {
    let s = TestServer::start().unwrap();
    let tasks = s.live_tasks_handle();
    request(s.addr(), "GET", "/v1/status/leader", "", None);
    assert!(tasks.get() >= 2);
    s.stop();
    assert_eq!(tasks.get(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_https_with_the_generated_ca() {
    let s = TestServer::start_with(ServerConfig::default().tls(true)).unwrap();
    let ca = reqwest::Certificate::from_pem(s.ca_cert_pem().unwrap().as_bytes()).unwrap();
    let c = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .no_proxy()
        .build()
        .unwrap();
    for host in [s.url(), format!("https://localhost:{}", s.addr().port())] {
        let r = c
            .get(format!("{host}/v1/status/leader"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Without the CA the certificate is refused.
    assert!(client()
        .get(format!("{}/v1/status/leader", s.url()))
        .send()
        .await
        .is_err());
}

#[test]
fn acl_tokens_from_header_and_query() {
    let acl = AclConfig::deny_by_default()
        .management_token("mgmt")
        .token(
            AclToken::new("app")
                .key_prefix("locks/", Access::Write)
                .session_prefix("", Access::Write),
        )
        .token(AclToken::new("reader").key_prefix("", Access::Read));
    let s = TestServer::start_with(ServerConfig::default().acl(acl)).unwrap();
    let a = s.addr();
    assert_eq!(request(a, "PUT", "/v1/kv/locks/x", "v", None).status, 403);
    assert_eq!(
        request(a, "PUT", "/v1/kv/locks/x", "v", Some("app")).status,
        200
    );
    assert_eq!(
        request(a, "PUT", "/v1/kv/locks/x?token=app", "v", None).status,
        200
    );
    assert_eq!(
        request(a, "PUT", "/v1/kv/other", "v", Some("app")).body,
        "Permission denied"
    );
    assert_eq!(
        request(a, "GET", "/v1/kv/locks/x", "", Some("reader")).status,
        200
    );
    assert_eq!(
        request(a, "PUT", "/v1/kv/locks/x", "v", Some("reader")).status,
        403
    );
    assert_eq!(
        request(a, "GET", "/v1/kv/locks/x", "", Some("nope")).body,
        "ACL not found"
    );
    assert_eq!(
        request(a, "DELETE", "/v1/kv/?recurse", "", Some("mgmt")).status,
        200
    );
    let d = request(a, "GET", "/v1/status/leader", "", None);
    assert_eq!(d.header("X-Consul-Default-Acl-Policy"), Some("deny"));
}

#[test]
fn harness_starts_an_embedded_server_or_uses_the_agent() {
    let c = TestConsul::from_env_or_start().unwrap();
    if std::env::var("CONSUL_HTTP_ADDR").is_ok() {
        assert!(!c.is_embedded());
        assert!(c.server().is_none());
        eprintln!("skipping the embedded checks: running against a real agent");
        return;
    }
    assert!(c.is_embedded());
    assert_eq!(c.session_ttl_min(), Duration::from_secs(1));
    let s = c.server().unwrap();
    assert_eq!(c.url(), s.url());
    assert_eq!(
        request(
            s.addr(),
            "PUT",
            "/v1/session/create",
            r#"{"TTL": "1s"}"#,
            None
        )
        .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_query_wakes_within_milliseconds_of_a_write() {
    let s = TestServer::start().unwrap();
    let c = client();
    let r = c
        .get(format!("{}/v1/kv/wake", s.url()))
        .send()
        .await
        .unwrap();
    let idx = r.headers()["x-consul-index"].to_str().unwrap().to_string();
    let url = format!("{}/v1/kv/wake?index={idx}&wait=20s", s.url());
    let c2 = c.clone();
    let waiter = tokio::spawn(async move {
        let r = c2.get(url).send().await.unwrap();
        (Instant::now(), r.status().as_u16())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let wrote = Instant::now();
    c.put(format!("{}/v1/kv/wake", s.url()))
        .body("x")
        .send()
        .await
        .unwrap();
    let (woke, status) = waiter.await.unwrap();
    assert_eq!(status, 200);
    assert!(woke.duration_since(wrote) < Duration::from_millis(50));
}

const ELECTION_TEXTS: [&str; 2] = [
    "rpc error making call: EOF",
    "rpc error getting client: failed to get conn: dial tcp 127.0.0.1:8300: connect: connection refused",
];

#[test]
fn an_election_fails_writes_and_consistent_reads_at_once_and_serves_stale_reads() {
    let s = TestServer::start_with(fast_config()).unwrap();
    let sid = create_session(&s, r#"{"TTL": "10s"}"#);
    assert_eq!(request(s.addr(), "PUT", "/v1/kv/k", "v", None).status, 200);
    s.election_for(Duration::from_secs(30));
    let txn = r#"[{"KV": {"Verb": "set", "Key": "k", "Value": "eA=="}}]"#;
    let read_txn = r#"[{"KV": {"Verb": "get", "Key": "k"}}]"#;
    let renew = format!("/v1/session/renew/{sid}");
    let destroy = format!("/v1/session/destroy/{sid}");
    let info = format!("/v1/session/info/{sid}");
    let failing: Vec<(&str, &str, &str)> = vec![
        ("PUT", "/v1/kv/k", "w"),
        ("DELETE", "/v1/kv/k", ""),
        ("PUT", "/v1/session/create", "{}"),
        ("PUT", &renew, ""),
        ("PUT", &destroy, ""),
        ("PUT", "/v1/txn", txn),
        ("PUT", "/v1/txn", read_txn),
        ("GET", "/v1/kv/k", ""),
        ("GET", "/v1/kv/k?consistent", ""),
        ("GET", &info, ""),
        ("GET", "/v1/session/list", ""),
    ];
    let mut seen = Vec::new();
    for (method, path, body) in failing {
        let t = Instant::now();
        let a = request(s.addr(), method, path, body, None);
        assert!(
            t.elapsed() < Duration::from_millis(250),
            "{method} {path} was held"
        );
        assert_eq!(a.status, 500, "{method} {path}: {}", a.body);
        assert!(
            ELECTION_TEXTS.contains(&a.body.as_str()),
            "{method} {path}: {}",
            a.body
        );
        seen.push(a.body);
    }
    // The two texts alternate.
    assert!(seen.windows(2).all(|w| w[0] != w[1]), "{seen:?}");
    let a = request(s.addr(), "GET", "/v1/kv/k?stale", "", None);
    assert_eq!(a.status, 200);
    assert_eq!(a.header("X-Consul-KnownLeader"), Some("false"));
    let a = request(s.addr(), "GET", "/v1/status/leader", "", None);
    assert_eq!(a.body, "\"\"\n");
    // Nothing was written during the election.
    s.election_for(Duration::ZERO);
    let a = request(s.addr(), "GET", "/v1/kv/k?raw", "", None);
    assert_eq!((a.status, a.body.as_str()), (200, "v"));
    let a = request(s.addr(), "GET", &info, "", None);
    assert_eq!(a.json()[0]["ID"], sid.as_str());
}

#[test]
fn after_an_election_every_session_is_valid_for_its_ttl_from_its_end() {
    // TTL 1 s: the server invalidates it 2 s after the last renewal (Consul allows 2 x TTL).
    let s = TestServer::start_with(fast_config()).unwrap();
    let created = Instant::now();
    let sid = create_session(&s, r#"{"TTL": "1s"}"#);
    let info = format!("/v1/session/info/{sid}");
    s.election_for(Duration::from_millis(1500));
    let end = created + Duration::from_millis(1500);
    // Past the session's original deadline (created + 2 s), it is still there: its timer
    // restarted when the election ended.
    std::thread::sleep(
        (created + Duration::from_millis(2600)).saturating_duration_since(Instant::now()),
    );
    let a = request(s.addr(), "GET", &info, "", None);
    assert_eq!(a.json().as_array().map(Vec::len), Some(1), "{}", a.body);
    // And it runs out 2 x TTL after the end of the election.
    std::thread::sleep(
        (end + Duration::from_millis(2300)).saturating_duration_since(Instant::now()),
    );
    let a = request(s.addr(), "GET", &info, "", None);
    assert_eq!(a.json().as_array().map(Vec::len), Some(0), "{}", a.body);
}

#[test]
fn apply_then_fail_next_applies_the_write_and_loses_the_answer() {
    let s = TestServer::start().unwrap();
    s.apply_then_fail_next(2);
    // A request refused before it writes does not count.
    assert_eq!(
        request(s.addr(), "PUT", "/v1/kv/k?cas=x", "v", None).status,
        500
    );
    let a = request(
        s.addr(),
        "PUT",
        "/v1/session/create",
        r#"{"TTL": "10s"}"#,
        None,
    );
    assert_eq!(
        (a.status, a.body.as_str()),
        (500, "rpc error making call: EOF")
    );
    let list = request(s.addr(), "GET", "/v1/session/list", "", None).json();
    let sid = list[0]["ID"]
        .as_str()
        .expect("the session was created")
        .to_string();
    let a = request(
        s.addr(),
        "PUT",
        &format!("/v1/kv/k?acquire={sid}"),
        "v",
        None,
    );
    assert_eq!(
        (a.status, a.body.as_str()),
        (500, "rpc error making call: EOF")
    );
    let a = request(s.addr(), "GET", "/v1/kv/k", "", None);
    assert_eq!(a.json()[0]["Session"], sid.as_str(), "the lock was taken");
    // Only two: the next write answers normally.
    let a = request(
        s.addr(),
        "PUT",
        &format!("/v1/kv/k?release={sid}"),
        "v",
        None,
    );
    assert_eq!((a.status, a.body.as_str()), (200, "true\n"));
    s.apply_then_fail_next(1);
    let txn = r#"[{"KV": {"Verb": "set", "Key": "t", "Value": "eA=="}}]"#;
    assert_eq!(request(s.addr(), "PUT", "/v1/txn", txn, None).status, 500);
    let a = request(s.addr(), "GET", "/v1/kv/t?raw", "", None);
    assert_eq!((a.status, a.body.as_str()), (200, "x"));
}

/// Opens `n` connections and then one more; returns what the last one read.
fn one_over(addr: std::net::SocketAddr, n: usize) -> (Vec<std::net::TcpStream>, String) {
    use std::io::Read;
    let open: Vec<std::net::TcpStream> = (0..n)
        .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
        .collect();
    let mut last = std::net::TcpStream::connect(addr).expect("connect");
    last.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut out = Vec::new();
    let _ = last.read_to_end(&mut out); // a timeout leaves what was read
    (open, String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn the_201st_connection_from_one_ip_is_refused_with_429() {
    let c = TestConsul::from_env_or_start().unwrap();
    if !c.is_embedded() {
        eprintln!("running against a real agent (its default http_max_conns_per_client is 200)");
    }
    let url = c.url();
    let Some(addr) = url
        .strip_prefix("http://")
        .and_then(|a| a.trim_end_matches('/').parse().ok())
    else {
        eprintln!("skipped: the agent at {url} is not a plain http://IP:PORT address");
        return;
    };
    let (open, answer) = one_over(addr, 200);
    assert_eq!(
        answer,
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nContent-Length: 81\r\nConnection: close\r\n\r\nYour IP is issuing too many concurrent connections, please rate limit your calls\n"
    );
    drop(open);
}

#[test]
fn the_connection_limit_is_a_setting_and_zero_turns_it_off() {
    let s = TestServer::start_with(ServerConfig::default().http_max_conns_per_client(0)).unwrap();
    let (open, answer) = one_over(s.addr(), 200);
    assert_eq!(
        answer, "",
        "the 201st connection is served (waits for a request)"
    );
    drop(open);
    let s = TestServer::start_with(ServerConfig::default().http_max_conns_per_client(3)).unwrap();
    let (open, answer) = one_over(s.addr(), 3);
    assert!(
        answer.starts_with("HTTP/1.1 429 Too Many Requests"),
        "{answer}"
    );
    drop(open);
}
