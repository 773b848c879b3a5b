//! Headers Consul sends that the transcripts do not keep (they keep only `Content-Type`,
//! `Location` and `X-Consul-*`): `Vary` on every answer of Consul's handlers (and not on
//! Go's redirects, 404s or the URL filter's 400), and the security headers of `?raw`.
//! Runs against `CONSUL_HTTP_ADDR` when it is set.

mod common;

use std::net::SocketAddr;

use common::{request, Answer};
use consul_lock_testkit::TestConsul;

fn target() -> Option<(TestConsul, SocketAddr)> {
    let c = TestConsul::from_env_or_start().unwrap();
    let url = c.url();
    match url
        .strip_prefix("http://")
        .and_then(|a| a.trim_end_matches('/').parse().ok())
    {
        Some(addr) => Some((c, addr)),
        None => {
            eprintln!("skipped: {url} is not a plain http://IP:PORT address");
            None
        }
    }
}

fn assert_wrapped(a: &Answer, what: &str) {
    assert_eq!(a.header("Vary"), Some("Accept-Encoding"), "{what}");
    assert!(a.header("X-Consul-Default-Acl-Policy").is_some(), "{what}");
}

fn assert_bare(a: &Answer, what: &str) {
    assert_eq!(a.header("Vary"), None, "{what}");
    assert_eq!(a.header("X-Consul-Default-Acl-Policy"), None, "{what}");
}

#[test]
fn vary_is_sent_by_consuls_handlers_only() {
    let Some((_c, addr)) = target() else { return };
    let p = format!("headers-test/{}", fastrand::u64(..));
    let a = request(addr, "PUT", &format!("/v1/kv/{p}/k"), "v", None);
    assert_wrapped(&a, "KV PUT");
    assert_wrapped(
        &request(addr, "GET", &format!("/v1/kv/{p}/none"), "", None),
        "KV 404",
    );
    let a = request(addr, "PUT", "/v1/session/create", r#"{"TTL": "x"}"#, None);
    assert_wrapped(&a, "session create error");
    let a = request(addr, "PUT", "/v1/txn", "[]", None);
    assert_wrapped(&a, "txn");
    assert_bare(&request(addr, "GET", "/v1/kv", "", None), "301 redirect");
    assert_bare(
        &request(addr, "GET", "/v1/nope", "", None),
        "404 unknown path",
    );
    let a = request(addr, "GET", &format!("/v1/kv/{p}/a%E2%80%AEb"), "", None);
    assert_eq!((a.status, a.body.as_str()), (400, ""));
    assert_bare(&a, "URL filter");
    assert_eq!(a.header("Content-Type"), None);
    request(addr, "DELETE", &format!("/v1/kv/{p}?recurse"), "", None);
}

#[test]
fn raw_values_carry_the_security_headers() {
    let Some((_c, addr)) = target() else { return };
    let key = format!("headers-test/{}/raw", fastrand::u64(..));
    request(addr, "PUT", &format!("/v1/kv/{key}"), "<script>", None);
    let a = request(addr, "GET", &format!("/v1/kv/{key}?raw"), "", None);
    assert_eq!((a.status, a.body.as_str()), (200, "<script>"));
    assert_eq!(a.header("Content-Type"), Some("text/plain"));
    assert_eq!(a.header("Content-Security-Policy"), Some("sandbox"));
    assert_eq!(a.header("X-Content-Type-Options"), Some("nosniff"));
    // The JSON form does not need them.
    let a = request(addr, "GET", &format!("/v1/kv/{key}"), "", None);
    assert_eq!(a.header("Content-Security-Policy"), None);
    request(addr, "DELETE", &format!("/v1/kv/{key}"), "", None);
}
