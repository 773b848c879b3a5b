//! Reading a request the way Go's `net/http` and Consul's agent do before any endpoint
//! runs: the URL filter, percent-decoding, path-cleaning and trailing-slash redirects, the
//! body size limits; then routing. [`Req`] (in `req`, a leaf) is the request as the endpoints
//! see it.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Method, Request};

use crate::go;
use crate::req::{too_large, Req, MAX_BODY};
use crate::resp::Resp;
use crate::shared::Shared;

/// Consul's URL filter: a request whose decoded URL path holds a rune that Go's
/// `unicode.IsPrint` rejects is answered 400 with an empty body, before any handler (and
/// before Go's path-cleaning redirects). Only the path is checked, not the query. Bytes that
/// are not UTF-8 count as U+FFFD, which is printable (a symbol), as when Go ranges over a
/// string.
fn refused_by_url_filter(decoded_path: &[u8]) -> bool {
    String::from_utf8_lossy(decoded_path)
        .chars()
        .any(|c| !go::printable::is_print(c))
}

/// Reads and discards the rest of a refused body (up to 16 MiB), so that the client finishes
/// sending it and then reads the 413, instead of seeing its connection reset mid-send. Returns
/// how many bytes were read.
async fn drain(body: &mut Incoming) -> usize {
    const CAP: usize = 16 * 1024 * 1024;
    let mut n = 0;
    while n < CAP {
        match body.frame().await {
            Some(Ok(f)) => n += f.data_ref().map_or(0, |d| d.len()),
            _ => break,
        }
    }
    n
}

/// Parses the request the way Go's `net/http` and Consul do, then routes it.
pub(crate) async fn handle(shared: &Shared, req: Request<Incoming>) -> Resp {
    match read(req).await {
        Ok(req) => crate::router::route(shared, req).await,
        Err(early) => early,
    }
}

/// Reads a request; `Err` is the answer `net/http` or Consul's agent gives before any
/// endpoint runs (a bad escape, the URL filter, a redirect, a body too large).
async fn read(req: Request<Incoming>) -> Result<Req, Resp> {
    let (parts, mut body) = req.into_parts();
    let raw_path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let decoded = go::url::percent_decode_strict(&raw_path, false)
        .ok_or_else(|| Resp::text(400, "400 Bad Request").bare())?;
    if refused_by_url_filter(&decoded) {
        return Err(Resp::empty(400).bare());
    }
    let path = String::from_utf8_lossy(&decoded).into_owned();
    let mut clean = go::path::clean_path(&path);
    if crate::router::wants_trailing_slash(&clean) {
        clean.push('/');
    }
    if clean != path {
        let mut loc = go::url::path_escape(&clean);
        if !raw_query.is_empty() {
            loc.push('?');
            loc.push_str(&raw_query);
        }
        let r = if parts.method == Method::GET || parts.method == Method::HEAD {
            Resp {
                status: 301,
                headers: vec![("Content-Type", "text/html; charset=utf-8".into())],
                body: go::redirect::moved_permanently_body(&loc).into_bytes(),
                consul_headers: false,
                applied: false,
            }
        } else {
            Resp::empty(301)
        };
        return Err(r.bare().header("Location", loc));
    }
    let declared = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    if let Some(n) = declared.filter(|n| *n > MAX_BODY) {
        drain(&mut body).await;
        return Err(too_large(&path, n));
    }
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| Resp::text(400, "Failed to read the request body"))?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > MAX_BODY {
                let n = buf.len() + drain(&mut body).await;
                return Err(too_large(&path, n));
            }
        }
    }
    Ok(Req {
        method: parts.method,
        path,
        query: go::url::parse_query(&raw_query),
        headers: parts.headers,
        body: Bytes::from(buf),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_filter() {
        assert!(refused_by_url_filter("/v1/kv/a\u{202e}b".as_bytes()));
        assert!(!refused_by_url_filter(b"/v1/kv/a\xffb"));
        assert!(!refused_by_url_filter("/v1/kv/é".as_bytes()));
    }
}
