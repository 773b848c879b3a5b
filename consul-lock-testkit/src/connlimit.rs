//! Consul's `http_max_conns_per_client`: at most that many concurrent connections from one
//! client IP; one more is answered at once with a canned 429 and closed, before any request
//! is read (what a real 1.10.12 agent sends, byte for byte apart from the `Date`-less head).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;

use crate::shared::{Shared, TaskGuard};

/// What Consul writes to a connection over the limit.
const REFUSAL: &[u8] = b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nContent-Length: 81\r\nConnection: close\r\n\r\nYour IP is issuing too many concurrent connections, please rate limit your calls\n";

/// Counts one open connection of a client IP for as long as it is held.
pub(crate) struct ConnGuard {
    map: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl ConnGuard {
    /// Admits a connection from `ip`, or `None` when that IP is at the limit (0: no limit).
    pub(crate) fn admit(shared: &Shared, ip: IpAddr) -> Option<ConnGuard> {
        let limit = shared.config.http_max_conns_per_client;
        let mut m = shared
            .conns_per_ip
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let n = m.entry(ip).or_insert(0);
        if limit > 0 && *n >= limit {
            return None;
        }
        *n += 1;
        Some(ConnGuard {
            map: shared.conns_per_ip.clone(),
            ip,
        })
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// Writes the 429 and closes the connection.
pub(crate) async fn refuse(mut stream: tokio::net::TcpStream, live: Arc<AtomicUsize>) {
    let _guard = TaskGuard::new(&live);
    let _ = stream.write_all(REFUSAL).await;
    let _ = stream.shutdown().await;
}
