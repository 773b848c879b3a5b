//! A byte-exact HTTP/1.1 client: the request target goes out as given (no re-encoding, no
//! dot-segment resolution, which reqwest's URL parser would do), one connection per request.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// What came back, or why nothing did.
#[derive(Clone, Debug)]
pub enum Outcome {
    Answer(Response),
    NoAnswer(String),
}

/// A parsed response; header names lower-cased, in the order received.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub elapsed: Duration,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request (`Connection: close`) and reads the whole answer.
pub fn call(addr: SocketAddr, method: &str, target: &str, body: Option<&[u8]>) -> Outcome {
    let started = Instant::now();
    match exchange(addr, method, target, body) {
        Ok(raw) => match parse(&raw, method == "HEAD") {
            Some((status, headers, body)) => Outcome::Answer(Response {
                status,
                headers,
                body,
                elapsed: started.elapsed(),
            }),
            None => Outcome::NoAnswer(format!(
                "malformed answer: {:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(200)])
            )),
        },
        Err(e) => Outcome::NoAnswer(format!("{:?}: {e}", e.kind())),
    }
}

fn exchange(
    addr: SocketAddr,
    method: &str,
    target: &str,
    body: Option<&[u8]>,
) -> std::io::Result<Vec<u8>> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(15)))?;
    s.set_nodelay(true)?;
    let mut req = Vec::with_capacity(256);
    req.extend_from_slice(format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\n").as_bytes());
    req.extend_from_slice(b"User-Agent: consul-lock-differential\r\nConnection: close\r\n");
    if let Some(b) = body {
        req.extend_from_slice(format!("Content-Length: {}\r\n", b.len()).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    if let Some(b) = body {
        req.extend_from_slice(b);
    }
    s.write_all(&req)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

type Parsed = (u16, Vec<(String, String)>, Vec<u8>);

fn parse(raw: &[u8], is_head: bool) -> Option<Parsed> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let mut status_line = lines.next()?.splitn(3, ' ');
    if status_line.next()? != "HTTP/1.1" {
        return None;
    }
    let status: u16 = status_line.next()?.parse().ok()?;
    let mut headers = Vec::new();
    for l in lines {
        let (k, v) = l.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    let body = if is_head || status == 204 || status == 304 {
        Vec::new()
    } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest)?
    } else if let Some(n) = get("content-length") {
        let n: usize = n.parse().ok()?;
        rest.get(..n)?.to_vec()
    } else {
        rest.to_vec()
    };
    Some((status, headers, body))
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}
