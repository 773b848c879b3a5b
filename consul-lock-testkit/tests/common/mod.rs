//! Small HTTP helpers for the tests: a raw HTTP/1.1 exchange over a std `TcpStream` (works
//! from sync tests) and a reqwest client for async tests.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A parsed HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Parses a complete HTTP/1.1 response (read until the server closed). `None` if malformed.
pub fn parse_answer(raw: &[u8]) -> Option<Answer> {
    parse_answer_to(raw, false)
}

/// As [`parse_answer`]; an answer to `HEAD` has no body whatever its `Content-Length`.
pub fn parse_answer_to(raw: &[u8], is_head: bool) -> Option<Answer> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut parts = status_line.splitn(3, ' ');
    if parts.next()? != "HTTP/1.1" {
        return None;
    }
    let status: u16 = parts.next()?.parse().ok()?;
    if !(100..600).contains(&status) {
        return None;
    }
    let mut headers = Vec::new();
    for l in lines {
        let (k, v) = l.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let a = Answer {
        status,
        headers,
        body: body.to_string(),
    };
    if let Some(cl) = a.header("content-length").filter(|_| !is_head) {
        let n: usize = cl.parse().ok()?;
        if a.body.len() != n && String::from_utf8_lossy(raw).len() == raw.len() {
            return None;
        }
    }
    Some(a)
}

/// Sends raw bytes and reads the answer until the server closes the connection.
pub fn raw_exchange(addr: SocketAddr, bytes: &[u8], timeout: Duration) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(timeout))?;
    s.write_all(bytes)?;
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

/// One request with `Connection: close`, from sync code.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> Answer {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        req.push_str(&format!("X-Consul-Token: {t}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    let raw = raw_exchange(addr, req.as_bytes(), Duration::from_secs(30)).expect("exchange");
    parse_answer(&raw)
        .unwrap_or_else(|| panic!("malformed answer: {:?}", String::from_utf8_lossy(&raw)))
}

/// An async client that does not follow redirects or use proxies.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client")
}
