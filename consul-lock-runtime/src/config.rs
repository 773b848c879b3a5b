//! Client configuration: the builder and the `CONSUL_*` environment variables.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::session_policy::SessionPolicy;
use crate::{Client, Error, Result};

/// Consul's default lower bound for session TTLs (the agent option `session_ttl_min`).
///
/// ```
/// use consul_lock_runtime::{Client, Error, Lock, DEFAULT_SESSION_TTL_MIN};
/// use std::time::Duration;
///
/// let client = Client::builder().build()?;
/// assert_eq!(client.session_ttl_min(), DEFAULT_SESSION_TTL_MIN);
/// // A shorter lock timeout is refused before any request is sent.
/// let short = Lock::new("ttl-min-example").client(&client).lock_timeout(Duration::from_secs(5));
/// assert!(matches!(short.acquire_blocking(), Err(Error::InvalidOption { option: "lock_timeout", .. })));
/// assert_eq!(client.requests_sent(), 0);
/// # Ok::<(), consul_lock_runtime::Error>(())
/// ```
pub const DEFAULT_SESSION_TTL_MIN: Duration = Duration::from_secs(10);
/// Consul's upper bound for session TTLs.
///
/// ```
/// use consul_lock_runtime::{Client, Error, Lock, SESSION_TTL_MAX};
/// use std::time::Duration;
///
/// assert_eq!(SESSION_TTL_MAX, Duration::from_secs(24 * 60 * 60));
/// let client = Client::builder().build()?;
/// let long = Lock::new("ttl-max-example").client(&client).lock_timeout(SESSION_TTL_MAX * 2);
/// assert!(matches!(long.acquire_blocking(), Err(Error::InvalidOption { option: "lock_timeout", .. })));
/// # Ok::<(), consul_lock_runtime::Error>(())
/// ```
pub const SESSION_TTL_MAX: Duration = Duration::from_secs(86_400);
/// How long one HTTP request may take when no acquire deadline bounds it.
///
/// ```
/// use consul_lock_runtime::{Client, DEFAULT_REQUEST_TIMEOUT};
/// use std::time::Duration;
///
/// assert_eq!(DEFAULT_REQUEST_TIMEOUT, Duration::from_secs(10));
/// assert_eq!(Client::builder().build()?.request_timeout(), DEFAULT_REQUEST_TIMEOUT);
/// # Ok::<(), consul_lock_runtime::Error>(())
/// ```
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// An ACL token. It never shows in `Debug`, logs or errors.
///
/// ```
/// use consul_lock_runtime::Token;
/// let token = Token::new("s3cr3t");
/// assert_eq!(format!("{token:?}"), "Token(<redacted>)");
/// assert_eq!(token.expose(), "s3cr3t");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a secret token.
    ///
    /// ```
    /// use consul_lock_runtime::Token;
    /// let token = Token::new(String::from("s3cr3t"));
    /// assert_eq!(token, Token::new("s3cr3t"));
    /// assert!(!format!("{token:?}").contains("s3cr3t"));
    /// ```
    pub fn new(secret: impl Into<String>) -> Token {
        Token(secret.into())
    }

    /// The secret itself, for sending it to Consul.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Builds a [`Client`]: the agent's address, ACL token, datacenter, namespace, TLS and
/// timeouts. Start from [`Client::builder`] (all defaults) or [`ClientBuilder::from_env`]
/// (the `CONSUL_*` variables, as the Consul CLI reads them).
///
/// ```
/// use consul_lock_runtime::Client;
/// use std::time::Duration;
///
/// let client = Client::builder()
///     .address("127.0.0.1:8500")
///     .token("my-acl-token")
///     .datacenter("dc1")
///     .request_timeout(Duration::from_secs(5))
///     .build()?;
/// assert_eq!(client.address(), "http://127.0.0.1:8500");
/// assert!(!format!("{client:?}").contains("my-acl-token"));
/// # Ok::<(), consul_lock_runtime::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ClientBuilder {
    pub(crate) address: String,
    pub(crate) use_tls: bool,
    pub(crate) token: Option<Token>,
    pub(crate) token_file: Option<PathBuf>,
    pub(crate) datacenter: Option<String>,
    pub(crate) namespace: Option<String>,
    pub(crate) ca_cert_pem: Vec<Vec<u8>>,
    pub(crate) ca_cert_file: Option<PathBuf>,
    pub(crate) client_cert_file: Option<PathBuf>,
    pub(crate) client_key_file: Option<PathBuf>,
    pub(crate) verify_tls: bool,
    pub(crate) request_timeout: Duration,
    pub(crate) session_ttl_min: Duration,
    /// What the sessions are tied to (`danger_node_health_check`, `node_lease`).
    pub(crate) sessions: SessionPolicy,
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            address: "127.0.0.1:8500".to_owned(),
            use_tls: false,
            token: None,
            token_file: None,
            datacenter: None,
            namespace: None,
            ca_cert_pem: Vec::new(),
            ca_cert_file: None,
            client_cert_file: None,
            client_key_file: None,
            verify_tls: true,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            session_ttl_min: DEFAULT_SESSION_TTL_MIN,
            sessions: SessionPolicy::default(),
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A boolean `CONSUL_*` variable, read as the Consul CLI reads it (Go's `strconv.ParseBool`).
fn env_bool(name: &'static str) -> Result<Option<bool>> {
    env(name)
        .map(|v| {
            consul_lock_syntax::parse_go_bool(v.trim()).ok_or_else(|| Error::InvalidOption {
                option: name,
                reason: format!(
                    "{v:?} is not a boolean; use one of {} (as the Consul CLI)",
                    consul_lock_syntax::GO_BOOL_SPELLINGS
                ),
            })
        })
        .transpose()
}

impl ClientBuilder {
    /// A builder configured from the environment, like the Consul CLI:
    /// `CONSUL_HTTP_ADDR` (`host:port`, `http://…`, `https://…`; default `127.0.0.1:8500`),
    /// `CONSUL_HTTP_TOKEN`, `CONSUL_HTTP_TOKEN_FILE` (wins over the token, as in Consul's
    /// client), `CONSUL_HTTP_SSL`, `CONSUL_CACERT`, `CONSUL_CLIENT_CERT`, `CONSUL_CLIENT_KEY`,
    /// `CONSUL_HTTP_SSL_VERIFY`, `CONSUL_NAMESPACE`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] naming the variable when a boolean variable is not a boolean.
    ///
    /// ```
    /// use consul_lock_runtime::ClientBuilder;
    /// use std::time::Duration;
    ///
    /// // Start from the environment, then override what the code decides.
    /// let client = ClientBuilder::from_env()?.request_timeout(Duration::from_secs(2)).build()?;
    /// assert_eq!(client.request_timeout(), Duration::from_secs(2));
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    pub fn from_env() -> Result<ClientBuilder> {
        let mut b = ClientBuilder::default();
        if let Some(addr) = env("CONSUL_HTTP_ADDR") {
            b.address = addr.trim().to_owned();
        }
        if let Some(ssl) = env_bool("CONSUL_HTTP_SSL")? {
            b.use_tls = ssl;
        }
        if let Some(token) = env("CONSUL_HTTP_TOKEN") {
            b.token = Some(Token::new(token.trim()));
        }
        b.token_file = env("CONSUL_HTTP_TOKEN_FILE").map(PathBuf::from);
        b.ca_cert_file = env("CONSUL_CACERT").map(PathBuf::from);
        b.client_cert_file = env("CONSUL_CLIENT_CERT").map(PathBuf::from);
        b.client_key_file = env("CONSUL_CLIENT_KEY").map(PathBuf::from);
        if let Some(verify) = env_bool("CONSUL_HTTP_SSL_VERIFY")? {
            b.verify_tls = verify;
        }
        b.namespace = env("CONSUL_NAMESPACE");
        Ok(b)
    }

    /// The agent's HTTP address: `host:port`, `http://host:port` or `https://host:port`.
    ///
    /// ```
    /// use consul_lock_runtime::Client;
    /// assert_eq!(Client::builder().address("10.0.0.5:8500").build()?.address(), "http://10.0.0.5:8500");
    /// let tls = Client::builder().address("https://consul.example:8501").build()?;
    /// assert_eq!(tls.address(), "https://consul.example:8501");
    /// // Not an address: refused when the client is built.
    /// assert!(Client::builder().address("consul.example:8500/v1").build().is_err());
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    #[must_use]
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = address.into();
        self
    }

    /// Use HTTPS for an address given without a scheme (`CONSUL_HTTP_SSL`).
    ///
    /// ```
    /// use consul_lock_runtime::Client;
    /// let client = Client::builder().address("consul.example:8501").use_tls(true).build()?;
    /// assert_eq!(client.address(), "https://consul.example:8501");
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    #[must_use]
    pub fn use_tls(mut self, on: bool) -> Self {
        self.use_tls = on;
        self
    }

    /// The ACL token sent as `X-Consul-Token`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use consul_lock_testkit::{Access, AclConfig, AclToken, ServerConfig, TestServer};
    /// # let app = AclToken::new("app-token").key_prefix("locks/", Access::Write).session_prefix("", Access::Write);
    /// # let server = TestServer::start_with(ServerConfig::default().acl(AclConfig::deny_by_default().token(app)))?;
    /// use consul_lock_runtime::{Client, Error, Lock};
    /// let client = Client::builder().address(server.url()).token("app-token").build()?;
    /// let guard = Lock::new("token-example").client(&client).acquire().await?;
    /// guard.release().await?;
    /// // Without the token, Consul's ACLs refuse the lock.
    /// let anonymous = Client::builder().address(server.url()).build()?;
    /// let denied = Lock::new("token-example").client(&anonymous).acquire().await;
    /// assert!(matches!(denied, Err(Error::PermissionDenied { .. })));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Token::new(token));
        self
    }

    /// A file holding the ACL token (read when the client is built; wins over [`token`](Self::token)).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use consul_lock_testkit::{Access, AclConfig, AclToken, ServerConfig, TestServer};
    /// # let app = AclToken::new("app-token").key_prefix("locks/", Access::Write).session_prefix("", Access::Write);
    /// # let server = TestServer::start_with(ServerConfig::default().acl(AclConfig::deny_by_default().token(app)))?;
    /// use consul_lock_runtime::{Client, Lock};
    /// let path = std::env::temp_dir().join(format!("consul-token-{}", std::process::id()));
    /// std::fs::write(&path, "app-token\n")?;
    /// let client = Client::builder().address(server.url()).token("not-this-one").token_file(&path).build()?;
    /// assert!(Lock::new("token-file-example").client(&client).hold_blocking(|lock| lock.is_held())?);
    /// # std::fs::remove_file(&path)?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn token_file(mut self, path: impl AsRef<Path>) -> Self {
        self.token_file = Some(path.as_ref().to_owned());
        self
    }

    /// The datacenter to address (`?dc=`); the agent's own when unset.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = consul_lock_testkit::TestServer::start()?;
    /// # let client = consul_lock_runtime::Client::builder().address(server.url()).build()?;
    /// use consul_lock_runtime::{Client, Lock};
    /// // The test server runs datacenter `dc1`.
    /// let here = Client::builder().address(server.url()).datacenter("dc1").build()?;
    /// assert!(Lock::new("datacenter-example").client(&here).hold_blocking(|lock| lock.is_held())?);
    /// let elsewhere = Client::builder().address(server.url()).datacenter("dc9").build()?;
    /// let err = Lock::new("datacenter-example").client(&elsewhere).acquire_blocking().unwrap_err();
    /// assert!(err.to_string().contains("No path to datacenter"));
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn datacenter(mut self, dc: impl Into<String>) -> Self {
        self.datacenter = Some(dc.into());
        self
    }

    /// The namespace (`?ns=`, Consul Enterprise).
    ///
    /// ```
    /// use consul_lock_runtime::Client;
    /// let client = Client::builder().namespace("team-a").build()?;
    /// assert!(format!("{client:?}").contains("\"team-a\""));
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    #[must_use]
    pub fn namespace(mut self, ns: impl Into<String>) -> Self {
        self.namespace = Some(ns.into());
        self
    }

    /// Trust this CA certificate (PEM) for HTTPS, in addition to the public roots.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use consul_lock_testkit::{ServerConfig, TestServer};
    /// # let server = TestServer::start_with(ServerConfig::default().tls(true))?;
    /// use consul_lock_runtime::{Client, Lock};
    /// let ca_pem = server.ca_cert_pem().expect("the test server generated a CA");
    /// let client = Client::builder().address(server.url()).ca_cert_pem(ca_pem).build()?;
    /// assert!(Lock::new("ca-cert-pem-example").client(&client).hold_blocking(|lock| lock.is_held())?);
    /// // Without that CA the server's certificate is not trusted.
    /// let untrusting = Client::builder().address(server.url()).build()?;
    /// assert!(Lock::new("ca-cert-pem-example").client(&untrusting).acquire_blocking().is_err());
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn ca_cert_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_cert_pem.push(pem.into());
        self
    }

    /// Trust the CA certificate(s) in this PEM file (`CONSUL_CACERT`).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use consul_lock_testkit::{ServerConfig, TestServer};
    /// # let server = TestServer::start_with(ServerConfig::default().tls(true))?;
    /// use consul_lock_runtime::{Client, Lock};
    /// let path = std::env::temp_dir().join(format!("consul-ca-{}.pem", std::process::id()));
    /// std::fs::write(&path, server.ca_cert_pem().expect("TLS is on"))?;
    /// let client = Client::builder().address(server.url()).ca_cert_file(&path).build()?;
    /// assert!(Lock::new("ca-cert-file-example").client(&client).hold_blocking(|lock| lock.is_held())?);
    /// # std::fs::remove_file(&path)?;
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn ca_cert_file(mut self, path: impl AsRef<Path>) -> Self {
        self.ca_cert_file = Some(path.as_ref().to_owned());
        self
    }

    /// Present this client certificate and key (PEM files) for mutual TLS.
    ///
    /// ```
    /// use consul_lock_runtime::{Client, Error};
    /// let dir = std::env::temp_dir();
    /// let (cert, key) = (dir.join("consul-doc-no-such-cert.pem"), dir.join("consul-doc-no-such-key.pem"));
    /// // The files are read (and parsed) when the client is built.
    /// let err = Client::builder().use_tls(true).client_cert_files(&cert, &key).build().unwrap_err();
    /// assert!(matches!(err, Error::InvalidOption { option, .. } if option.starts_with("client_cert")));
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    #[must_use]
    pub fn client_cert_files(mut self, cert: impl AsRef<Path>, key: impl AsRef<Path>) -> Self {
        self.client_cert_file = Some(cert.as_ref().to_owned());
        self.client_key_file = Some(key.as_ref().to_owned());
        self
    }

    /// Verify the server's certificate (default true; `CONSUL_HTTP_SSL_VERIFY=false` turns it off).
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use consul_lock_testkit::{ServerConfig, TestServer};
    /// # let server = TestServer::start_with(ServerConfig::default().tls(true))?;
    /// use consul_lock_runtime::{Client, Lock};
    /// // The test server's certificate is signed by a CA this client does not know.
    /// let client = Client::builder().address(server.url()).verify_tls(false).build()?;
    /// assert!(Lock::new("verify-tls-example").client(&client).hold_blocking(|lock| lock.is_held())?);
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn verify_tls(mut self, on: bool) -> Self {
        self.verify_tls = on;
        self
    }

    /// The longest one HTTP request may take when no acquire deadline is shorter (default 10 s).
    ///
    /// ```
    /// use consul_lock_runtime::Client;
    /// use std::time::Duration;
    ///
    /// let client = Client::builder().request_timeout(Duration::from_secs(3)).build()?;
    /// assert_eq!(client.request_timeout(), Duration::from_secs(3));
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The agent's `session_ttl_min` (default 10 s, Consul's default). Lock timeouts below it
    /// are rejected before any request. Lower it only for an agent (or test server)
    /// configured with a lower minimum.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # use std::time::Duration;
    /// # let server = consul_lock_testkit::TestServer::start_with(consul_lock_testkit::ServerConfig::default().session_ttl_min(Duration::from_secs(1)))?;
    /// use consul_lock_runtime::{Client, Lock};
    /// // This (test) agent accepts TTLs down to 1 s.
    /// let client = Client::builder().address(server.url()).session_ttl_min(Duration::from_secs(1)).build()?;
    /// let short = Lock::new("session-ttl-min-example").lock_timeout(Duration::from_secs(1));
    /// assert!(short.clone().client(&client).hold_blocking(|lock| lock.is_held())?);
    /// // With the default minimum (10 s) the same lock is refused before any request.
    /// let strict = Client::builder().address(server.url()).build()?;
    /// assert!(short.client(&strict).acquire_blocking().is_err());
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn session_ttl_min(mut self, min: Duration) -> Self {
        self.session_ttl_min = min;
        self
    }

    /// Builds the client. No request is made.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] when the address is malformed, a file cannot be read, a
    /// certificate or key cannot be parsed, or the request timeout or node lease is zero.
    ///
    /// ```
    /// use consul_lock_runtime::{Client, Error};
    /// use std::time::Duration;
    ///
    /// let client = Client::builder().address("127.0.0.1:8500").build()?;
    /// assert_eq!(client.requests_sent(), 0); // nothing was sent
    /// let err = Client::builder().request_timeout(Duration::ZERO).build().unwrap_err();
    /// assert!(matches!(err, Error::InvalidOption { option: "request_timeout", .. }));
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    pub fn build(self) -> Result<Client> {
        Client::from_builder(self)
    }

    /// The base URL (`scheme://host:port`) this builder's address stands for.
    pub(crate) fn base_url(&self) -> Result<String> {
        consul_base_url(&self.address, self.use_tls)
    }
}

/// The base URL (`scheme://host:port`) of a Consul agent address as `CONSUL_HTTP_ADDR` gives
/// it: `host:port` (HTTPS when `tls`, as `CONSUL_HTTP_SSL` says), `http://host:port` or
/// `https://host:port`, with surrounding spaces and a trailing `/` ignored. The one parser of
/// agent addresses in the project.
///
/// # Errors
///
/// [`Error::InvalidOption`] naming `address (CONSUL_HTTP_ADDR)` for a unix socket, an unknown
/// scheme, an empty address or one with a path.
///
/// ```
/// use consul_lock_runtime::consul_base_url;
/// assert_eq!(consul_base_url("127.0.0.1:8500", false)?, "http://127.0.0.1:8500");
/// assert_eq!(consul_base_url("consul:8501", true)?, "https://consul:8501");
/// assert_eq!(consul_base_url(" https://consul:8501/ ", false)?, "https://consul:8501");
/// assert!(consul_base_url("unix:///var/run/consul.sock", false).is_err());
/// assert!(consul_base_url("http://consul:8500/v1", false).is_err());
/// # Ok::<(), consul_lock_runtime::Error>(())
/// ```
pub fn consul_base_url(address: &str, tls: bool) -> Result<String> {
    consul_lock_syntax::consul_base_url(address, tls).map_err(|reason| Error::InvalidOption {
        option: "address (CONSUL_HTTP_ADDR)",
        reason,
    })
}

pub(crate) fn read_file(option: &'static str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::InvalidOption {
        option,
        reason: format!("cannot read {}: {e}", path.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let url = |a: &str| ClientBuilder::default().address(a).base_url();
        assert_eq!(url("127.0.0.1:8500").unwrap(), "http://127.0.0.1:8500");
        assert_eq!(url("http://h:1/").unwrap(), "http://h:1");
        assert_eq!(url("https://h:1").unwrap(), "https://h:1");
        assert_eq!(
            ClientBuilder::default()
                .address("h:1")
                .use_tls(true)
                .base_url()
                .unwrap(),
            "https://h:1"
        );
        assert!(url("unix:///tmp/consul.sock").is_err());
        assert!(url("ftp://h").is_err());
        assert!(url("").is_err());
        assert!(url("h:1/path").is_err());
    }

    #[test]
    fn booleans_are_read_as_go_reads_them() {
        std::env::set_var("CONSUL_LOCK_TEST_BOOL", "T");
        assert_eq!(env_bool("CONSUL_LOCK_TEST_BOOL").unwrap(), Some(true));
        std::env::set_var("CONSUL_LOCK_TEST_BOOL", "yes");
        let err = env_bool("CONSUL_LOCK_TEST_BOOL").unwrap_err().to_string();
        assert!(err.contains("TRUE"), "{err}");
        std::env::remove_var("CONSUL_LOCK_TEST_BOOL");
    }

    #[test]
    fn token_is_redacted() {
        let b = ClientBuilder::default().token("supersecret");
        assert!(!format!("{b:?}").contains("supersecret"));
    }
}
