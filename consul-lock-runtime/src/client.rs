//! The Consul client handle: one HTTP connection pool, the agent's address and credentials.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::runtime::Id;

use crate::config::{read_file, ClientBuilder, Token};
use crate::{Error, Result};

/// A handle to one Consul agent. Cheap to clone: clones share one connection pool.
///
/// Build it with [`Client::builder`] or [`Client::from_env`]; set a process-wide default with
/// [`defaults::set_client`](crate::defaults::set_client). No request is made until a lock is
/// taken.
///
/// ```
/// use consul_lock_runtime::Client;
/// let client = Client::builder().address("http://127.0.0.1:8500").build()?;
/// let same_pool = client.clone();
/// assert_eq!(same_pool.address(), "http://127.0.0.1:8500");
/// # Ok::<(), consul_lock_runtime::Error>(())
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<ClientInner>,
}

pub(crate) struct ClientInner {
    /// The connection pool of the background worker (and of callers without a tokio runtime).
    pub(crate) http: reqwest::Client,
    /// How to build a pool for another runtime.
    http_config: HttpConfig,
    /// One pool per caller runtime: a pool's connections are driven by tasks of the runtime
    /// that opened them and die with it, so runtimes must not share one.
    pools: Mutex<Vec<(Id, reqwest::Client)>>,
    /// Keys this client released lately, and when: a client that takes a key again right
    /// after releasing it gives it back to older waiters (no barging past the queue).
    recent_releases: Mutex<Vec<(String, std::time::Instant)>>,
    pub(crate) base_url: String,
    pub(crate) token: Option<Token>,
    pub(crate) datacenter: Option<String>,
    pub(crate) namespace: Option<String>,
    pub(crate) request_timeout: Duration,
    pub(crate) session_ttl_min: Duration,
    pub(crate) requests_sent: AtomicU64,
}

impl Client {
    /// A builder with Consul's defaults (`127.0.0.1:8500`, no token).
    ///
    /// ```
    /// let client = consul_lock_runtime::Client::builder().address("10.0.0.5:8500").build()?;
    /// assert_eq!(client.address(), "http://10.0.0.5:8500");
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    #[must_use]
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// A client configured from the `CONSUL_*` environment variables (see
    /// [`ClientBuilder::from_env`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] naming the variable that is malformed or the file that cannot
    /// be read.
    ///
    /// ```
    /// let client = consul_lock_runtime::Client::from_env()?;
    /// // CONSUL_HTTP_ADDR (default 127.0.0.1:8500), with its scheme made explicit.
    /// assert!(client.address().starts_with("http://") || client.address().starts_with("https://"));
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    pub fn from_env() -> Result<Client> {
        ClientBuilder::from_env()?.build()
    }

    pub(crate) fn from_builder(b: ClientBuilder) -> Result<Client> {
        let base_url = b.base_url()?;
        if b.request_timeout.is_zero() {
            return Err(Error::InvalidOption {
                option: "request_timeout",
                reason: "must be greater than zero".into(),
            });
        }
        let mut token = b.token.clone();
        if let Some(path) = &b.token_file {
            let text = read_file("token_file (CONSUL_HTTP_TOKEN_FILE)", path)?;
            let text = String::from_utf8_lossy(&text).trim().to_owned();
            if !text.is_empty() {
                token = Some(Token::new(text));
            }
        }
        let mut roots = b.ca_cert_pem.clone();
        if let Some(path) = &b.ca_cert_file {
            roots.push(read_file("ca_cert_file (CONSUL_CACERT)", path)?);
        }
        let identity = match (&b.client_cert_file, &b.client_key_file) {
            (Some(cert), Some(key)) => {
                let mut pem = read_file("client_cert (CONSUL_CLIENT_CERT)", cert)?;
                pem.push(b'\n');
                pem.extend(read_file("client_key (CONSUL_CLIENT_KEY)", key)?);
                Some(pem)
            }
            (None, None) => None,
            _ => {
                return Err(Error::InvalidOption {
                    option: "client_cert (CONSUL_CLIENT_CERT / CONSUL_CLIENT_KEY)",
                    reason: "give both the client certificate and its key, or neither".into(),
                })
            }
        };
        let http_config = HttpConfig {
            verify_tls: b.verify_tls,
            roots,
            identity,
        };
        let http = http_config.build()?;
        Ok(Client {
            inner: Arc::new(ClientInner {
                http,
                http_config,
                pools: Mutex::new(Vec::new()),
                recent_releases: Mutex::new(Vec::new()),
                base_url,
                token,
                datacenter: b.datacenter,
                namespace: b.namespace,
                request_timeout: b.request_timeout,
                session_ttl_min: b.session_ttl_min,
                requests_sent: AtomicU64::new(0),
            }),
        })
    }

    /// The connection pool for the runtime the caller runs on.
    pub(crate) fn http(&self) -> reqwest::Client {
        let Some(id) = crate::background::caller_runtime_id() else {
            return self.inner.http.clone();
        };
        let mut pools = self
            .inner
            .pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, pool)) = pools.iter().find(|(pool_id, _)| *pool_id == id) {
            return pool.clone();
        }
        match self.inner.http_config.build() {
            Ok(pool) => {
                // Runtime ids are never reused; forget the oldest pools of runtimes long gone.
                if pools.len() >= MAX_POOLS {
                    pools.remove(0);
                }
                pools.push((id, pool.clone()));
                pool
            }
            // It was built once with the same settings; should it fail now, the worker's
            // pool still works (its connections then belong to this runtime).
            Err(_) => self.inner.http.clone(),
        }
    }

    /// Notes that this client just released `key`.
    pub(crate) fn note_release(&self, key: &str) {
        let now = std::time::Instant::now();
        let mut recent = self
            .inner
            .recent_releases
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        recent.retain(|(k, at)| k != key && now.duration_since(*at) < RECENT_RELEASE);
        if recent.len() < MAX_RECENT_RELEASES {
            recent.push((key.to_owned(), now));
        }
    }

    /// Whether this client released `key` within the last [`RECENT_RELEASE`].
    pub(crate) fn released_recently(&self, key: &str) -> bool {
        let recent = self
            .inner
            .recent_releases
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        recent
            .iter()
            .any(|(k, at)| k == key && at.elapsed() < RECENT_RELEASE)
    }

    /// The agent's base URL, `scheme://host:port`.
    ///
    /// ```
    /// use consul_lock_runtime::Client;
    /// let client = Client::builder().address("consul.internal:8500").build()?;
    /// assert_eq!(client.address(), "http://consul.internal:8500");
    /// let tls = Client::builder().address("https://consul.internal:8501/").build()?;
    /// assert_eq!(tls.address(), "https://consul.internal:8501");
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    #[must_use]
    pub fn address(&self) -> &str {
        &self.inner.base_url
    }

    /// The shortest lock timeout (session TTL) this client accepts.
    ///
    /// ```
    /// use consul_lock_runtime::{Client, DEFAULT_SESSION_TTL_MIN};
    /// use std::time::Duration;
    ///
    /// assert_eq!(Client::builder().build()?.session_ttl_min(), DEFAULT_SESSION_TTL_MIN);
    /// let client = Client::builder().session_ttl_min(Duration::from_secs(1)).build()?;
    /// assert_eq!(client.session_ttl_min(), Duration::from_secs(1));
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    #[must_use]
    pub fn session_ttl_min(&self) -> Duration {
        self.inner.session_ttl_min
    }

    /// The longest one HTTP request may take when no acquire deadline is shorter.
    ///
    /// ```
    /// use consul_lock_runtime::{Client, DEFAULT_REQUEST_TIMEOUT};
    /// use std::time::Duration;
    ///
    /// assert_eq!(Client::builder().build()?.request_timeout(), DEFAULT_REQUEST_TIMEOUT);
    /// let client = Client::builder().request_timeout(Duration::from_secs(3)).build()?;
    /// assert_eq!(client.request_timeout(), Duration::from_secs(3));
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    #[must_use]
    pub fn request_timeout(&self) -> Duration {
        self.inner.request_timeout
    }

    /// How many HTTP requests this client (and its clones) has sent so far: a way to see what
    /// a lock cycle costs (an uncontended acquire + release is 3).
    ///
    /// ```
    /// let client = consul_lock_runtime::Client::builder().build()?;
    /// assert_eq!(client.requests_sent(), 0);
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    #[must_use]
    pub fn requests_sent(&self) -> u64 {
        self.inner.requests_sent.load(Ordering::Relaxed)
    }
}

/// How long after a release a new acquire of the same key by the same client yields to older
/// waiters.
const RECENT_RELEASE: Duration = Duration::from_millis(50);
/// How many recent releases a client remembers.
const MAX_RECENT_RELEASES: usize = 256;

/// How many per-runtime connection pools a client keeps.
const MAX_POOLS: usize = 16;

/// The TLS settings every connection pool of a client is built with.
struct HttpConfig {
    verify_tls: bool,
    roots: Vec<Vec<u8>>,
    identity: Option<Vec<u8>>,
}

impl HttpConfig {
    fn build(&self) -> Result<reqwest::Client> {
        let mut http = reqwest::Client::builder()
            .use_rustls_tls()
            .tcp_nodelay(true)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .danger_accept_invalid_certs(!self.verify_tls);
        for pem in &self.roots {
            let certs =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| Error::InvalidOption {
                    option: "ca_cert (CONSUL_CACERT)",
                    reason: format!("not a PEM certificate: {e}"),
                })?;
            for cert in certs {
                http = http.add_root_certificate(cert);
            }
        }
        if let Some(pem) = &self.identity {
            let identity = reqwest::Identity::from_pem(pem).map_err(|e| Error::InvalidOption {
                option: "client_cert (CONSUL_CLIENT_CERT / CONSUL_CLIENT_KEY)",
                reason: format!("not a PEM certificate and private key: {e}"),
            })?;
            http = http.identity(identity);
        }
        http.build().map_err(|e| Error::InvalidOption {
            option: "client",
            reason: format!("the HTTP client could not be built: {e}"),
        })
    }
}

impl From<&Client> for Client {
    fn from(client: &Client) -> Client {
        client.clone()
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.inner.base_url)
            .field("token", &self.inner.token.as_ref().map(|_| "<redacted>"))
            .field("datacenter", &self.inner.datacenter)
            .field("namespace", &self.inner.namespace)
            .field("request_timeout", &self.inner.request_timeout)
            .field("session_ttl_min", &self.inner.session_ttl_min)
            .finish_non_exhaustive()
    }
}
