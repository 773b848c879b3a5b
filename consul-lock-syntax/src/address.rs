//! How a Consul agent's address reads (`CONSUL_HTTP_ADDR`), as the Consul CLI reads it.

use alloc::format;
use alloc::string::String;

/// The base URL (`scheme://host:port`, no trailing slash) of a Consul agent given as
/// `host:port`, `http://host:port` or `https://host:port` (what `CONSUL_HTTP_ADDR` holds);
/// `tls` picks HTTPS for an address without a scheme (`CONSUL_HTTP_SSL`).
///
/// # Errors
///
/// A sentence saying what is wrong with the address and which forms are accepted: a unix
/// socket, an unknown scheme, a path, whitespace or an empty address.
///
/// ```
/// use consul_lock_syntax::consul_base_url;
///
/// assert_eq!(consul_base_url("127.0.0.1:8500", false).unwrap(), "http://127.0.0.1:8500");
/// assert_eq!(consul_base_url("consul.local:8501", true).unwrap(), "https://consul.local:8501");
/// assert_eq!(consul_base_url("http://h:1/", true).unwrap(), "http://h:1");
/// assert!(consul_base_url("unix:///tmp/consul.sock", false).unwrap_err().contains("unix socket"));
/// ```
pub fn consul_base_url(address: &str, tls: bool) -> Result<String, String> {
    let raw = address.trim().trim_end_matches('/');
    let bad = |reason: &str| {
        format!("{raw:?} {reason}; use host:port, http://host:port or https://host:port")
    };
    let (scheme, rest) = if let Some(rest) = raw.strip_prefix("http://") {
        ("http", rest)
    } else if let Some(rest) = raw.strip_prefix("https://") {
        ("https", rest)
    } else if raw.starts_with("unix://") {
        return Err(bad("is a unix socket, which this client does not support"));
    } else if raw.contains("://") {
        return Err(bad("has an unknown scheme"));
    } else {
        (if tls { "https" } else { "http" }, raw)
    };
    if rest.is_empty() || rest.contains('/') || rest.contains(char::is_whitespace) {
        return Err(bad("is not a host:port address"));
    }
    Ok(format!("{scheme}://{rest}"))
}
