//! A slow Consul for tests against a real agent: a loopback TCP proxy that holds every chunk
//! the client sends for a fixed delay before passing it on (answers flow back at once), so each
//! request takes at least that long, as on the test server with `set_latency`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Starts a proxy to `upstream` (`http://host:port`) that delays requests by `delay`; returns
/// its URL. It runs until the test's runtime ends.
pub async fn slow_proxy(upstream: &str, delay: Duration) -> String {
    let target = upstream
        .split_once("://")
        .map_or(upstream, |(_, rest)| rest)
        .trim_end_matches('/')
        .to_owned();
    let scheme = upstream.split_once("://").map_or("http", |(s, _)| s);
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the slow proxy");
    let addr = listener.local_addr().expect("slow proxy address");
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                let Ok(outbound) = TcpStream::connect(&target).await else {
                    return;
                };
                let (mut from_client, mut to_client) = inbound.into_split();
                let (mut from_consul, mut to_consul) = outbound.into_split();
                let requests = async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n @ 1..) = from_client.read(&mut buf).await {
                        tokio::time::sleep(delay).await;
                        if to_consul.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = to_consul.shutdown().await;
                };
                let answers = async move {
                    let _ = tokio::io::copy(&mut from_consul, &mut to_client).await;
                    let _ = to_client.shutdown().await;
                };
                tokio::join!(requests, answers);
            });
        }
    });
    format!("{scheme}://{addr}")
}
