//! Reading a request the way Go's `net/http` and Consul's agent do before any endpoint
//! runs: the URL filter, percent-decoding, path-cleaning and trailing-slash redirects, the
//! body size limits; then routing.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Request;

use crate::http::{self, Req, Resp, MAX_BODY};
use crate::shared::Shared;

fn too_large(path: &str, n: usize) -> Resp {
    if path == "/v1/txn" {
        Resp::text(
            413,
            format!(
                "Request body({n} bytes) too large, max size: {MAX_BODY} bytes. See https://www.consul.io/docs/agent/options.html#txn_max_req_len."
            ),
        )
    } else if path.starts_with("/v1/kv/") {
        crate::kv::too_large(n)
    } else {
        Resp::text(
            413,
            format!("Request body({n} bytes) too large, max size: {MAX_BODY} bytes."),
        )
    }
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
    let (parts, body) = req.into_parts();
    let raw_path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let Some(decoded) = http::percent_decode_strict(&raw_path, false) else {
        let mut r = Resp::text(400, "400 Bad Request");
        r.consul_headers = false;
        return r;
    };
    if crate::urlfilter::refuses(&decoded) {
        let mut r = Resp::empty(400);
        r.consul_headers = false;
        return r;
    }
    let path = String::from_utf8_lossy(&decoded).into_owned();
    let mut clean = http::clean_path(&path);
    if http::wants_trailing_slash(&clean) {
        clean.push('/');
    }
    if clean != path {
        let mut loc = http::path_escape(&clean);
        if !raw_query.is_empty() {
            loc.push('?');
            loc.push_str(&raw_query);
        }
        let mut r = if parts.method == hyper::Method::GET || parts.method == hyper::Method::HEAD {
            Resp {
                status: 301,
                headers: vec![("Content-Type", "text/html; charset=utf-8".into())],
                body: format!(
                    "<a href=\"{}\">Moved Permanently</a>.\n\n",
                    http::html_escape(&loc)
                )
                .into_bytes(),
                consul_headers: false,
                applied: false,
            }
        } else {
            Resp::empty(301)
        };
        r.consul_headers = false;
        return r.header("Location", loc);
    }
    let declared = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    let mut body = body;
    if let Some(n) = declared.filter(|n| *n > MAX_BODY) {
        drain(&mut body).await;
        return too_large(&path, n);
    }
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(data) = f.into_data() {
                    buf.extend_from_slice(&data);
                    if buf.len() > MAX_BODY {
                        let n = buf.len() + drain(&mut body).await;
                        return too_large(&path, n);
                    }
                }
            }
            Err(_) => return Resp::text(400, "Failed to read the request body"),
        }
    }
    let req = Req {
        method: parts.method,
        path,
        query: http::parse_query(&raw_query),
        headers: parts.headers,
        body: Bytes::from(buf),
    };
    http::route(shared, req).await
}
