//! How a Consul agent's address reads (`CONSUL_HTTP_ADDR`), as the Consul CLI reads it.

use alloc::format;
use alloc::string::String;

/// The base URL (`scheme://host:port`, no trailing slash) of a Consul agent given as
/// `host:port`, `http://host:port` or `https://host:port` (what `CONSUL_HTTP_ADDR` holds);
/// `tls` picks HTTPS for an address without a scheme (`CONSUL_HTTP_SSL`).
///
/// The host is a name (letters, digits, `-`, `_`, `.`), an IPv4 address or a bracketed IPv6
/// address (`[::1]:8500`); the port, when given, a number from 1 to 65535 (without one, the
/// scheme's: 80 or 443, as Go's client reads it).
///
/// # Errors
///
/// A sentence saying what is wrong with the address and which forms are accepted: a unix
/// socket, an unknown scheme, a path, a query, user info, whitespace, an empty address, a
/// host with other characters, or a port that is not a number from 1 to 65535.
///
/// ```
/// use consul_lock_syntax::consul_base_url;
///
/// assert_eq!(consul_base_url("127.0.0.1:8500", false).unwrap(), "http://127.0.0.1:8500");
/// assert_eq!(consul_base_url("consul.local:8501", true).unwrap(), "https://consul.local:8501");
/// assert_eq!(consul_base_url("http://h:1/", true).unwrap(), "http://h:1");
/// assert_eq!(consul_base_url("[::1]:8500", false).unwrap(), "http://[::1]:8500");
/// assert!(consul_base_url("unix:///tmp/consul.sock", false).unwrap_err().contains("unix socket"));
/// assert!(consul_base_url("127.0.0.1:notaport", false).unwrap_err().contains("port"));
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
    if rest.contains('@') {
        return Err(bad(
            "has user info, which Consul's address does not take (the ACL token goes in \
             CONSUL_HTTP_TOKEN)",
        ));
    }
    if rest.contains(['?', '#']) {
        return Err(bad("has a query or a fragment"));
    }
    let (host, port) = split_host_port(rest).map_err(&bad)?;
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => {}
            _ => {
                return Err(bad(&format!(
                    "has the port {port:?}, which is not a number from 1 to 65535"
                )))
            }
        }
    }
    if !valid_host(host) {
        return Err(bad(&format!(
            "has the host {host:?}, which is not a name (letters, digits, '-', '_', '.'), an \
             IPv4 address or a bracketed IPv6 address"
        )));
    }
    Ok(format!("{scheme}://{rest}"))
}

/// `host:port`, `host`, `[v6]:port` or `[v6]` → (host, port).
fn split_host_port(rest: &str) -> Result<(&str, Option<&str>), &'static str> {
    if let Some(v6) = rest.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err("has an IPv6 address without its closing ']'");
        };
        return match after {
            "" => Ok((addr, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((addr, Some(port))),
                None => Err("has text after its IPv6 address that is not ':port'"),
            },
        };
    }
    match rest.split_once(':') {
        Some((_, port)) if port.contains(':') => {
            Err("has more than one ':' (an IPv6 address goes in brackets: [::1]:8500)")
        }
        Some((host, port)) => Ok((host, Some(port))),
        None => Ok((rest, None)),
    }
}

fn valid_host(host: &str) -> bool {
    if host.contains(':') {
        // Inside brackets: an IPv6 address, perhaps with a zone (`%eth0`).
        let (addr, _zone) = host.split_once('%').unwrap_or((host, ""));
        return !addr.is_empty()
            && addr
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
    }
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports() {
        let ok = |a: &str| consul_base_url(a, false).unwrap();
        assert_eq!(ok("consul"), "http://consul");
        assert_eq!(
            ok("consul_1.service.dc1.consul:8500"),
            "http://consul_1.service.dc1.consul:8500"
        );
        assert_eq!(
            ok("https://[fe80::1%25eth0]:8501"),
            "https://[fe80::1%25eth0]:8501"
        );
        assert_eq!(ok("[::1]"), "http://[::1]");
        let err = |a: &str| consul_base_url(a, false).unwrap_err();
        assert!(err("127.0.0.1:notaport")
            .contains("\"notaport\", which is not a number from 1 to 65535"));
        assert!(err("127.0.0.1:").contains("port \"\""));
        assert!(err("127.0.0.1:0").contains("port \"0\""));
        assert!(err("127.0.0.1:65536").contains("port"));
        assert!(err("127.0.0.1:+80").contains("port"));
        assert!(err(":8500").contains("host \"\""));
        assert!(err("::1:8500").contains("brackets"));
        assert!(err("[::1").contains("closing"));
        assert!(err("[::1]8500").contains("':port'"));
        assert!(err("user:pw@consul:8500").contains("user info"));
        assert!(err("consul:8500?dc=x").contains("query"));
        assert!(err("cons\u{fc}l:8500").contains("host"));
        assert!(err("ftp://h").contains("unknown scheme"));
    }
}
