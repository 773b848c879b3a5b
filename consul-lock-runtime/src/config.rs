//! Client configuration: the builder and the `CONSUL_*` environment variables.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::agent::AgentKind;
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
    /// Where each setting came from, to name it in errors.
    pub(crate) origin: Origins,
    pub(crate) address: String,
    pub(crate) use_tls: bool,
    pub(crate) token: Option<Token>,
    pub(crate) token_file: Option<PathBuf>,
    /// HTTP basic authentication (user, password), as `CONSUL_HTTP_AUTH`.
    pub(crate) basic_auth: Option<(String, Token)>,
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
    /// `CONSUL_*` variables the Consul CLI reads and this client does not, when set: refused
    /// when the client is built for HTTPS, where they would matter.
    pub(crate) unsupported_tls_vars: Vec<(&'static str, &'static str)>,
    /// What kind of agent this is, when the code says so (`agent_is_server`).
    pub(crate) agent: Option<AgentKind>,
}

/// Where a builder's settings came from: the `CONSUL_*` variable [`ClientBuilder::from_env`]
/// read, or the builder method that set it. Errors name it, so that a bad value is traced to
/// the environment or to the code.
#[derive(Clone, Debug)]
pub(crate) struct Origins {
    pub(crate) address: &'static str,
    pub(crate) token: &'static str,
    pub(crate) token_file: &'static str,
    pub(crate) basic_auth: &'static str,
    pub(crate) ca_cert_file: &'static str,
    pub(crate) client_cert: &'static str,
    pub(crate) namespace: &'static str,
}

impl Default for Origins {
    fn default() -> Self {
        Origins {
            address: "address",
            token: "token",
            token_file: "token_file",
            basic_auth: "basic_auth",
            ca_cert_file: "ca_cert_file",
            client_cert: "client_cert_files",
            namespace: "namespace",
        }
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            origin: Origins::default(),
            address: "127.0.0.1:8500".to_owned(),
            use_tls: false,
            token: None,
            token_file: None,
            basic_auth: None,
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
            unsupported_tls_vars: Vec::new(),
            agent: None,
        }
    }
}

/// Reads the environment variable `name`: `None` when unset or blank.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A boolean `CONSUL_*` variable, read as the Consul CLI reads it (Go's `strconv.ParseBool`).
fn env_bool(env: &impl Fn(&str) -> Option<String>, name: &'static str) -> Result<Option<bool>> {
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
    /// client), `CONSUL_HTTP_AUTH` (`user:password`), `CONSUL_HTTP_SSL`, `CONSUL_CACERT`,
    /// `CONSUL_CLIENT_CERT`, `CONSUL_CLIENT_KEY`, `CONSUL_HTTP_SSL_VERIFY`,
    /// `CONSUL_NAMESPACE`. `CONSUL_CAPATH` and `CONSUL_TLS_SERVER_NAME` are not supported:
    /// [`build`](Self::build) refuses them, naming them, when the address is HTTPS.
    ///
    /// Every value is checked when the client is built, and an error names the variable (a
    /// value set later by a builder method is named by that method).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`] naming the variable when a boolean variable is not a boolean.
    /// (Addresses, tokens and files are checked by [`build`](Self::build).)
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
        ClientBuilder::from_vars(process_env)
    }

    /// [`from_env`](Self::from_env) over any source of variables (`None`: unset or blank).
    pub(crate) fn from_vars(env: impl Fn(&str) -> Option<String>) -> Result<ClientBuilder> {
        let mut b = ClientBuilder::default();
        if let Some(addr) = env("CONSUL_HTTP_ADDR") {
            b.address = addr.trim().to_owned();
            b.origin.address = "CONSUL_HTTP_ADDR";
        }
        if let Some(ssl) = env_bool(&env, "CONSUL_HTTP_SSL")? {
            b.use_tls = ssl;
        }
        if let Some(token) = env("CONSUL_HTTP_TOKEN") {
            b.token = Some(Token::new(token.trim()));
            b.origin.token = "CONSUL_HTTP_TOKEN";
        }
        if let Some(path) = env("CONSUL_HTTP_TOKEN_FILE") {
            b.token_file = Some(PathBuf::from(path));
            b.origin.token_file = "CONSUL_HTTP_TOKEN_FILE";
        }
        if let Some(auth) = env("CONSUL_HTTP_AUTH") {
            // As the Consul CLI: `user:password`, or a user alone.
            let (user, password) = auth.split_once(':').unwrap_or((&auth, ""));
            b.basic_auth = Some((user.to_owned(), Token::new(password)));
            b.origin.basic_auth = "CONSUL_HTTP_AUTH";
        }
        if let Some(path) = env("CONSUL_CACERT") {
            b.ca_cert_file = Some(PathBuf::from(path));
            b.origin.ca_cert_file = "CONSUL_CACERT";
        }
        b.client_cert_file = env("CONSUL_CLIENT_CERT").map(PathBuf::from);
        b.client_key_file = env("CONSUL_CLIENT_KEY").map(PathBuf::from);
        if b.client_cert_file.is_some() || b.client_key_file.is_some() {
            b.origin.client_cert = "CONSUL_CLIENT_CERT / CONSUL_CLIENT_KEY";
        }
        if let Some(verify) = env_bool(&env, "CONSUL_HTTP_SSL_VERIFY")? {
            b.verify_tls = verify;
        }
        if let Some(ns) = env("CONSUL_NAMESPACE") {
            b.namespace = Some(ns.trim().to_owned());
            b.origin.namespace = "CONSUL_NAMESPACE";
        }
        let unsupported = [
            (
                "CONSUL_CAPATH",
                "this client does not read a directory of CA certificates: put them in one PEM \
                 file and set CONSUL_CACERT to it (or call ClientBuilder::ca_cert_file)",
            ),
            (
                "CONSUL_TLS_SERVER_NAME",
                "this client checks the certificate against the host of the address: use an \
                 address with the certificate's name (CONSUL_HTTP_ADDR)",
            ),
        ];
        b.unsupported_tls_vars = unsupported
            .into_iter()
            .filter(|(name, _)| env(name).is_some())
            .collect();
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
        self.origin.address = "address";
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
        self.origin.token = "token";
        self
    }

    /// HTTP basic authentication, for an agent behind a proxy that asks for it
    /// (`CONSUL_HTTP_AUTH=user:password`). The password never shows in `Debug` or errors.
    ///
    /// ```
    /// use consul_lock_runtime::Client;
    /// let client = Client::builder().basic_auth("ops", "pa55word").build()?;
    /// assert!(!format!("{client:?}").contains("pa55word"));
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    #[must_use]
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.basic_auth = Some((user.into(), Token::new(password)));
        self.origin.basic_auth = "basic_auth";
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
        self.origin.token_file = "token_file";
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
        self.origin.namespace = "namespace";
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
        self.origin.ca_cert_file = "ca_cert_file";
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
        self.origin.client_cert = "client_cert_files";
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

    /// Builds the client, checking every setting. No request is made.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidOption`], naming the `CONSUL_*` variable or the builder method the
    /// value came from, when: the address is malformed (a bad host or port, a path, a
    /// scheme other than `http`/`https`), a token holds characters an HTTP header cannot
    /// carry, a datacenter or namespace is empty or holds other characters than letters,
    /// digits, `-`, `_` and `.`, a file cannot be read, a certificate or key cannot be
    /// parsed, the request timeout or node lease is zero, `session_ttl_min` is zero or above 24 h, an
    /// unsupported TLS variable is set for an HTTPS address, or the address is HTTPS and the
    /// crate was built without a TLS backend.
    ///
    /// ```
    /// use consul_lock_runtime::{Client, Error};
    /// use std::time::Duration;
    ///
    /// let client = Client::builder().address("127.0.0.1:8500").build()?;
    /// assert_eq!(client.requests_sent(), 0); // nothing was sent
    /// let err = Client::builder().request_timeout(Duration::ZERO).build().unwrap_err();
    /// assert!(matches!(err, Error::InvalidOption { option: "request_timeout", .. }));
    /// // A port that is not one fails here, not at the first acquire.
    /// let err = Client::builder().address("127.0.0.1:notaport").build().unwrap_err();
    /// assert!(matches!(err, Error::InvalidOption { option: "address", .. }));
    /// # Ok::<(), consul_lock_runtime::Error>(())
    /// ```
    pub fn build(self) -> Result<Client> {
        Client::from_builder(self)
    }

    /// The base URL (`scheme://host:port`) this builder's address stands for.
    pub(crate) fn base_url(&self) -> Result<String> {
        let option = self.origin.address;
        consul_lock_syntax::consul_base_url(&self.address, self.use_tls)
            .map_err(|reason| Error::InvalidOption { option, reason })
    }

    /// Checks what the client keeps as it is: tokens, names, the TTL minimum, TLS variables.
    pub(crate) fn check_settings(&self, base_url: &str) -> Result<()> {
        if let Some(token) = &self.token {
            check_header_value(self.origin.token, "the ACL token", token.expose())?;
        }
        if let Some(dc) = &self.datacenter {
            check_name("datacenter", "datacenter", dc)?;
        }
        if let Some(ns) = &self.namespace {
            check_name(self.origin.namespace, "namespace", ns)?;
        }
        if self.session_ttl_min.is_zero() || self.session_ttl_min > SESSION_TTL_MAX {
            return Err(Error::InvalidOption {
                option: "session_ttl_min",
                reason: format!(
                    "{:?} is outside what Consul accepts for session TTLs (above zero, at most \
                     24 h); give the agent's own `session_ttl_min` (10 s unless configured)",
                    self.session_ttl_min
                ),
            });
        }
        if base_url.starts_with("https://") {
            if let Some(reason) = crate::api::tls::missing_backend() {
                return Err(Error::InvalidOption {
                    option: self.origin.address,
                    reason: format!("{base_url:?} {reason}"),
                });
            }
            if let Some((option, reason)) = self.unsupported_tls_vars.first() {
                return Err(Error::InvalidOption {
                    option,
                    reason: format!("is set, but {reason}; or unset it"),
                });
            }
        }
        Ok(())
    }
}

/// A secret sent as an HTTP header: visible ASCII (and spaces) only. The value is never shown.
pub(crate) fn check_header_value(option: &'static str, what: &str, value: &str) -> Result<()> {
    if value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return Ok(());
    }
    Err(Error::InvalidOption {
        option,
        reason: format!(
            "{what} holds a character an HTTP header cannot carry (a line break, a control \
             character or a non-ASCII character); check its value (not shown here)"
        ),
    })
}

/// A datacenter or namespace name.
fn check_name(option: &'static str, what: &str, name: &str) -> Result<()> {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.';
    if !name.is_empty() && name.bytes().all(ok) {
        return Ok(());
    }
    Err(Error::InvalidOption {
        option,
        reason: format!(
            "{name:?} is not a {what} name: use letters, digits, '-', '_' and '.' (as Consul \
             names them), or leave it unset for the agent's own"
        ),
    })
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
        option: "address / CONSUL_HTTP_ADDR",
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

    /// A builder from these variables only (the process environment is left alone).
    fn from(vars: &[(&str, &str)]) -> Result<ClientBuilder> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        ClientBuilder::from_vars(move |name| {
            vars.iter()
                .find(|(k, v)| k == name && !v.trim().is_empty())
                .map(|(_, v)| v.clone())
        })
    }

    /// The option an error names.
    fn refused(result: Result<Client>) -> (&'static str, String) {
        match result {
            Err(Error::InvalidOption { option, reason }) => (option, reason),
            Err(other) => panic!("not InvalidOption: {other:?}"),
            Ok(client) => panic!("accepted: {client:?}"),
        }
    }

    #[test]
    fn booleans_are_read_as_go_reads_them() {
        let b = from(&[("CONSUL_HTTP_SSL", "T"), ("CONSUL_HTTP_ADDR", "h:1")]).unwrap();
        assert_eq!(b.base_url().unwrap(), "https://h:1");
        let err = from(&[("CONSUL_HTTP_SSL", "yes")]).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidOption { option: "CONSUL_HTTP_SSL", reason } if reason.contains("TRUE")),
            "{err}"
        );
    }

    #[test]
    fn every_setting_is_checked_when_the_client_is_built_naming_its_origin() {
        let env = |vars: &[(&str, &str)]| refused(from(vars).and_then(ClientBuilder::build));
        // The issue's address: refused at once, naming the variable.
        let (option, reason) = env(&[("CONSUL_HTTP_ADDR", "127.0.0.1:notaport")]);
        assert_eq!(option, "CONSUL_HTTP_ADDR");
        assert!(
            reason.contains("\"notaport\", which is not a number from 1 to 65535"),
            "{reason}"
        );
        // The same address from the code names the builder method.
        let (option, _) = refused(
            ClientBuilder::default()
                .address("127.0.0.1:notaport")
                .build(),
        );
        assert_eq!(option, "address");
        // Set from the environment, then overridden in the code: the method is named.
        let overridden = from(&[("CONSUL_HTTP_ADDR", "h:1")])
            .unwrap()
            .address("h:x")
            .build();
        assert_eq!(refused(overridden).0, "address");
        assert_eq!(
            env(&[("CONSUL_HTTP_ADDR", "ftp://h:1")]).0,
            "CONSUL_HTTP_ADDR"
        );

        let (option, reason) = env(&[("CONSUL_HTTP_TOKEN", "abc\u{7f}def")]);
        assert_eq!(option, "CONSUL_HTTP_TOKEN");
        assert!(
            !reason.contains("abc"),
            "the token is never shown: {reason}"
        );
        assert_eq!(
            refused(ClientBuilder::default().token("new\nline").build()).0,
            "token"
        );
        let missing = std::env::temp_dir().join("consul-lock-no-such-token-file");
        let missing = missing.to_str().unwrap();
        assert_eq!(
            env(&[("CONSUL_HTTP_TOKEN_FILE", missing)]).0,
            "CONSUL_HTTP_TOKEN_FILE"
        );
        assert_eq!(env(&[("CONSUL_CACERT", missing)]).0, "CONSUL_CACERT");
        assert_eq!(
            env(&[("CONSUL_CLIENT_CERT", missing)]).0,
            "CONSUL_CLIENT_CERT / CONSUL_CLIENT_KEY"
        );
        assert_eq!(
            refused(ClientBuilder::default().ca_cert_file(missing).build()).0,
            "ca_cert_file"
        );
        assert_eq!(env(&[("CONSUL_NAMESPACE", "team a")]).0, "CONSUL_NAMESPACE");
        assert_eq!(
            refused(ClientBuilder::default().datacenter("").build()).0,
            "datacenter"
        );
        assert_eq!(
            refused(
                ClientBuilder::default()
                    .session_ttl_min(Duration::ZERO)
                    .build()
            )
            .0,
            "session_ttl_min"
        );
        assert_eq!(
            refused(
                ClientBuilder::default()
                    .request_timeout(Duration::ZERO)
                    .build()
            )
            .0,
            "request_timeout"
        );
        // TLS variables this client does not read: refused for HTTPS (where a TLS backend is
        // compiled in: else HTTPS itself is refused first), ignored for HTTP.
        if crate::api::tls::BACKEND.is_some() {
            let (option, reason) = env(&[
                ("CONSUL_HTTP_ADDR", "https://consul:8501"),
                ("CONSUL_CAPATH", "/etc/consul.d/ca"),
            ]);
            assert_eq!(option, "CONSUL_CAPATH");
            assert!(reason.contains("CONSUL_CACERT"), "{reason}");
        }
        assert!(from(&[("CONSUL_CAPATH", "/etc/consul.d/ca")])
            .unwrap()
            .build()
            .is_ok());
    }

    /// Runs in every feature set: CI runs the library's tests without a TLS backend too.
    #[test]
    fn an_https_address_needs_a_tls_backend() {
        let https = ClientBuilder::default()
            .address("https://consul:8501")
            .build();
        let tls_env = from(&[
            ("CONSUL_HTTP_ADDR", "consul:8501"),
            ("CONSUL_HTTP_SSL", "1"),
        ])
        .and_then(ClientBuilder::build);
        if crate::api::tls::BACKEND.is_some() {
            assert!(https.is_ok() && tls_env.is_ok());
            return;
        }
        let (option, reason) = refused(https);
        assert_eq!(option, "address");
        assert!(
            reason.contains("without a TLS backend") && reason.contains("`rustls`"),
            "{reason}"
        );
        assert_eq!(refused(tls_env).0, "CONSUL_HTTP_ADDR");
        // Plain HTTP works without one.
        assert!(ClientBuilder::default()
            .address("127.0.0.1:8500")
            .build()
            .is_ok());
    }

    #[test]
    fn basic_auth_is_read_as_the_consul_cli_reads_it() {
        let b = from(&[("CONSUL_HTTP_AUTH", "ops:pa:ss")]).unwrap();
        let (user, password) = b.basic_auth.clone().unwrap();
        assert_eq!((user.as_str(), password.expose()), ("ops", "pa:ss"));
        assert!(!format!("{b:?}").contains("pa:ss"));
        let client = b.build().unwrap();
        assert!(!format!("{client:?}").contains("pa:ss"));
    }

    #[test]
    fn token_is_redacted() {
        let b = ClientBuilder::default().token("supersecret");
        assert!(!format!("{b:?}").contains("supersecret"));
    }
}
