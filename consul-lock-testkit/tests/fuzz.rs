//! Thousands of malformed requests (random methods, paths, query strings, bodies, headers,
//! raw bytes): every one gets a well-formed HTTP answer (or, for bytes that are not HTTP,
//! at most a well-formed error before the close) and the server keeps serving. Seeded, so a
//! failure can be replayed.

mod common;

use std::time::Duration;

use common::{parse_answer, parse_answer_to, raw_exchange, request};
use consul_lock_testkit::{ServerConfig, TestServer};

const SEED: u64 = 0x5eed_c0de;

fn pick<'a>(rng: &mut fastrand::Rng, xs: &[&'a str]) -> &'a str {
    xs[rng.usize(..xs.len())]
}

fn random_text(rng: &mut fastrand::Rng, max: usize, charset: &[u8]) -> String {
    let n = rng.usize(..=max);
    (0..n)
        .map(|_| charset[rng.usize(..charset.len())] as char)
        .collect()
}

const PATH_CHARS: &[u8] = b"abcxyz0123456789-_./%2F~!$&'()*+,;=:@";
const QUERY_CHARS: &[u8] = b"abcxyz0123456789-_.%+=&;/?";

fn random_path(rng: &mut fastrand::Rng) -> String {
    let base = pick(
        rng,
        &[
            "/v1/kv/",
            "/v1/kv",
            "/v1/session/create",
            "/v1/session/destroy/",
            "/v1/session/info/",
            "/v1/session/renew/",
            "/v1/session/list",
            "/v1/session/node/",
            "/v1/txn",
            "/v1/status/leader",
            "/v1/agent/self",
            "/v1/acl/token",
            "/v1/catalog/nodes",
            "/",
            "/v2/x",
            "//v1//kv//",
            "/v1/kv/%",
            "/v1/kv/%zz",
            "/v1/session/info/00000000-0000-0000-0000-000000000000",
        ],
    );
    format!("{base}{}", random_text(rng, 40, PATH_CHARS))
}

fn random_query(rng: &mut fastrand::Rng) -> String {
    let mut parts = Vec::new();
    for _ in 0..rng.usize(..5) {
        let k = pick(
            rng,
            &[
                "recurse",
                "keys",
                "separator",
                "raw",
                "cas",
                "flags",
                "acquire",
                "release",
                "stale",
                "consistent",
                "token",
                "dc",
                "x",
            ],
        );
        let v = match rng.u8(..4) {
            0 => String::new(),
            1 => rng.u64(..).to_string(),
            2 => "00000000-0000-0000-0000-000000000000".to_string(),
            _ => random_text(rng, 12, QUERY_CHARS),
        };
        parts.push(format!("{k}={v}"));
    }
    if rng.bool() {
        // Blocking queries stay short so the test stays fast (a bare `wait=` would mean
        // Consul's default of 5 minutes, so `wait` only comes with `index`).
        parts.push(format!("index={}&wait={}ms", rng.u64(..100), rng.u64(..30)));
    }
    parts.join("&")
}

fn random_body(rng: &mut fastrand::Rng) -> Vec<u8> {
    match rng.u8(..8) {
        0 => Vec::new(),
        1 => (0..rng.usize(..200)).map(|_| rng.u8(..)).collect(),
        2 => br#"{"TTL": "#.to_vec(),
        3 => format!(
            r#"{{"TTL": "{}", "LockDelay": {}, "Behavior": "{}", "NodeChecks": {}}}"#,
            pick(rng, &["10s", "1s", "abc", "-5s", "90000s", "", "1h"]),
            pick(rng, &["1", "\"2s\"", "true", "null", "-1", "1e30", "[]"]),
            pick(rng, &["release", "delete", "x"]),
            pick(rng, &["[]", "null", "[1]", "\"x\"", "[\"serfHealth\"]"]),
        )
        .into_bytes(),
        4 => format!(
            r#"[{{"KV": {{"Verb": "{}", "Key": "{}", "Value": "{}", "Index": {}, "Session": "{}"}}}}]"#,
            pick(rng, &["set", "get", "lock", "unlock", "cas", "delete-tree", "check-index", "bogus", ""]),
            random_text(rng, 10, PATH_CHARS).replace('"', ""),
            pick(rng, &["dg==", "!!", "", "AAAA"]),
            pick(rng, &["0", "1", "-1", "\"x\"", "1.5", "99999999999999999999"]),
            pick(rng, &["", "x", "00000000-0000-0000-0000-000000000000"]),
        )
        .into_bytes(),
        5 => b"[{\"Node\": {}}, 1, null, \"x\"]".to_vec(),
        6 => "[".repeat(rng.usize(..3000)).into_bytes(),
        _ => random_text(rng, 100, b"{}[]\":,0123456789abcdefnulltrue \\").into_bytes(),
    }
}

fn random_request(rng: &mut fastrand::Rng) -> Vec<u8> {
    let method = pick(
        rng,
        &[
            "GET", "PUT", "DELETE", "POST", "PATCH", "OPTIONS", "HEAD", "FROB",
        ],
    );
    let mut target = random_path(rng);
    let q = random_query(rng);
    if !q.is_empty() {
        target.push('?');
        target.push_str(&q);
    }
    let body = random_body(rng);
    let mut req =
        format!("{method} {target} HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n").into_bytes();
    for _ in 0..rng.usize(..4) {
        let h = match rng.u8(..5) {
            0 => format!("X-Consul-Token: {}\r\n", random_text(rng, 36, PATH_CHARS)),
            1 => "Authorization: Bearer x\r\n".to_string(),
            2 => "Content-Type: application/json\r\n".to_string(),
            3 => format!(
                "X-Random-{}: {}\r\n",
                rng.u16(..),
                random_text(rng, 20, QUERY_CHARS)
            ),
            _ => "Accept-Encoding: gzip\r\n".to_string(),
        };
        req.extend_from_slice(h.as_bytes());
    }
    req.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    req.extend_from_slice(&body);
    req
}

fn first_answer(raw: &[u8]) -> Option<common::Answer> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = parse_answer_to(&raw[..head_end], true)?;
    let len = head
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(raw.len() - head_end);
    parse_answer(raw.get(..head_end + len)?)
}

#[test]
fn malformed_requests_get_well_formed_answers() {
    let server = TestServer::start_with(
        ServerConfig::default()
            .session_ttl_min(Duration::from_secs(1))
            .leaderless_hold(Duration::from_millis(50)),
    )
    .unwrap();
    let mut rng = fastrand::Rng::with_seed(SEED);
    for i in 0..3000 {
        let req = random_request(&mut rng);
        let raw = raw_exchange(server.addr(), &req, Duration::from_secs(10)).unwrap_or_else(|e| {
            panic!(
                "request {i} (seed {SEED:#x}): {e}: {:?}",
                String::from_utf8_lossy(&req)
            )
        });
        let answer = parse_answer_to(&raw, req.starts_with(b"HEAD "));
        assert!(
            answer.is_some(),
            "request {i} (seed {SEED:#x}) got a malformed answer {:?} to {:?}",
            String::from_utf8_lossy(&raw),
            String::from_utf8_lossy(&req)
        );
    }
    // Bytes that are not HTTP: a 4xx answer or a plain close, never a hang or a crash.
    for i in 0..500 {
        let n = rng.usize(..300);
        let mut bytes: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
        if rng.bool() {
            let mut prefix = b"GET / HTTP/1.1\r\n".to_vec();
            prefix.append(&mut bytes);
            bytes = prefix;
        }
        let raw = raw_exchange(server.addr(), &bytes, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("raw {i}: {e}"));
        if !raw.is_empty() {
            // Bytes after a request-looking prefix may hold more than one request, so more
            // than one answer: check the first.
            let a =
                first_answer(&raw).unwrap_or_else(|| panic!("raw {i}: malformed answer {raw:?}"));
            assert!(
                (400..500).contains(&a.status) || a.status < 400,
                "raw {i}: {}",
                a.status
            );
        }
    }
    // An oversized body is refused with Consul's 413 text.
    let big = "x".repeat(600 * 1024);
    let a = request(server.addr(), "PUT", "/v1/kv/big", &big, None);
    assert_eq!(a.status, 413);
    assert!(a
        .body
        .starts_with("Request body(614400 bytes) too large, max size: 524288 bytes."));
    // Still serving, and every request was answered.
    assert_eq!(
        request(server.addr(), "GET", "/v1/status/leader", "", None).status,
        200
    );
    assert!(server.request_count() >= 3000);
}
