//! The TLS backend of the HTTP client, chosen by cargo features: `rustls` (the default),
//! `native-tls` (the platform's: OpenSSL on Linux), or neither (plain HTTP only, as most
//! services talk to their local agent; an `https://` address is then refused when the client
//! is built). With both, rustls is used.

#[cfg(any(feature = "rustls", feature = "native-tls"))]
use crate::Error;
use crate::Result;

/// The backend compiled in, for messages: `None` without one.
pub(crate) const BACKEND: Option<&str> = if cfg!(feature = "rustls") {
    Some("rustls")
} else if cfg!(feature = "native-tls") {
    Some("native-tls")
} else {
    None
};

/// The TLS settings every connection pool of a client is built with.
pub(crate) struct TlsConfig {
    pub(crate) verify: bool,
    /// CA certificates (PEM), each with the option or variable it came from.
    pub(crate) roots: Vec<(&'static str, Vec<u8>)>,
    /// The client certificate and its key (PEM), with the option or variable they came from.
    pub(crate) identity: Option<(&'static str, Vec<u8>, Vec<u8>)>,
}

/// The reason an `https://` address cannot be used, when no backend is compiled in.
pub(crate) fn missing_backend() -> Option<String> {
    BACKEND.is_none().then(|| {
        "is an https:// address (or CONSUL_HTTP_SSL is set), but consul-lock was built without a \
         TLS backend: enable its `rustls` (default) or `native-tls` cargo feature, or use the \
         agent's plain HTTP address"
            .to_owned()
    })
}

/// Sets the backend, the trusted CAs, the client identity and verification on `http`.
#[cfg(any(feature = "rustls", feature = "native-tls"))]
pub(crate) fn configure(
    mut http: reqwest::ClientBuilder,
    tls: &TlsConfig,
) -> Result<reqwest::ClientBuilder> {
    #[cfg(feature = "rustls")]
    {
        http = http.use_rustls_tls();
    }
    #[cfg(all(feature = "native-tls", not(feature = "rustls")))]
    {
        http = http.use_native_tls();
    }
    http = http.danger_accept_invalid_certs(!tls.verify);
    for (option, pem) in &tls.roots {
        let certs =
            reqwest::Certificate::from_pem_bundle(pem).map_err(|e| Error::InvalidOption {
                option,
                reason: format!("not a PEM certificate: {e}"),
            })?;
        for cert in certs {
            http = http.add_root_certificate(cert);
        }
    }
    if let Some((option, cert, key)) = &tls.identity {
        http = http.identity(identity(option, cert, key)?);
    }
    Ok(http)
}

/// Without a backend there is nothing to set: `https://` addresses are refused before this,
/// and TLS settings (from `CONSUL_CACERT` and the like, set for other tools) do not apply to
/// plain HTTP.
#[cfg(not(any(feature = "rustls", feature = "native-tls")))]
pub(crate) fn configure(
    http: reqwest::ClientBuilder,
    tls: &TlsConfig,
) -> Result<reqwest::ClientBuilder> {
    if !tls.roots.is_empty() || tls.identity.is_some() || !tls.verify {
        tracing::debug!(
            "TLS settings ignored: plain HTTP, consul-lock built without a TLS backend"
        );
    }
    Ok(http)
}

#[cfg(feature = "rustls")]
fn identity(option: &'static str, cert: &[u8], key: &[u8]) -> Result<reqwest::Identity> {
    let mut pem = cert.to_vec();
    pem.push(b'\n');
    pem.extend_from_slice(key);
    reqwest::Identity::from_pem(&pem).map_err(|e| Error::InvalidOption {
        option,
        reason: format!("not a PEM certificate and private key: {e}"),
    })
}

#[cfg(all(feature = "native-tls", not(feature = "rustls")))]
fn identity(option: &'static str, cert: &[u8], key: &[u8]) -> Result<reqwest::Identity> {
    reqwest::Identity::from_pkcs8_pem(cert, key).map_err(|e| Error::InvalidOption {
        option,
        reason: format!(
            "not a PEM certificate and PKCS#8 private key ({e}); the native-tls backend reads \
             only PKCS#8 keys (`BEGIN PRIVATE KEY`): convert an EC or RSA key with `openssl \
             pkcs8 -topk8 -nocrypt -in key.pem -out key.pk8.pem`"
        ),
    })
}
