//! The Consul client handle: one HTTP connection pool, the agent's address and credentials.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::agent::AgentKind;
use crate::api::tls::TlsConfig;
use crate::config::{check_header_value, read_file, ClientBuilder, Token};
use crate::exec::pools::{HttpConfig, Pools};
use crate::protocol::key_state::KeyTable;
use crate::protocol::shared_session::SharedSlot;
use crate::session_policy::SessionPolicy;
use crate::{Error, Result};

/// A handle to one Consul agent. Cheap to clone: clones share one connection pool.
///
/// Build it with [`Client::builder`] or [`Client::from_env`]; set a process-wide default with
/// [`defaults::set_client`](crate::defaults::set_client). No request is made until a lock is
/// taken.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let server = consul_lock_testkit::TestServer::start()?;
/// use consul_lock_runtime::{Client, Lock};
/// // Usually `Client::from_env()?`; here the address of a test server.
/// let client = Client::builder().address(server.url()).build()?;
/// let same_pool = client.clone();
/// Lock::new("client-example").client(&same_pool).hold(|_| async {}).await?;
/// // Clones share the pool and the count: create a session, lock, release, and, on a
/// // client's first lock, two requests asking what kind of agent this is (until it knows,
/// // its lock has a session of its own).
/// assert_eq!(client.requests_sent(), 3 + 2);
/// // Then its locks share one session: create it once, then take and give back.
/// Lock::new("client-example").client(&client).hold(|_| async {}).await?;
/// Lock::new("client-example").client(&client).hold(|_| async {}).await?;
/// assert_eq!(client.requests_sent(), 3 + 2 + 3 + 2);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<ClientInner>,
}

pub(crate) struct ClientInner {
    /// What this client knows per key: local turns, queue memory, holders (shared by clones).
    pub(crate) keys: KeyTable,
    /// The session this client's locks share, when one is alive.
    pub(crate) shared: SharedSlot,
    /// The connection pools: the worker's, and one per caller runtime.
    pools: Pools,
    pub(crate) base_url: String,
    pub(crate) token: Option<Token>,
    /// HTTP basic authentication (user, password).
    pub(crate) basic_auth: Option<(String, Token)>,
    pub(crate) datacenter: Option<String>,
    pub(crate) namespace: Option<String>,
    pub(crate) request_timeout: Duration,
    pub(crate) session_ttl_min: Duration,
    pub(crate) sessions: SessionPolicy,
    /// What kind of agent this is, once learnt (or said by the builder).
    pub(crate) agent: tokio::sync::OnceCell<AgentKind>,
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
        b.check_settings(&base_url)?;
        if b.request_timeout.is_zero() {
            return Err(Error::InvalidOption {
                option: "request_timeout",
                reason: "must be greater than zero".into(),
            });
        }
        if b.sessions.node_lease.is_zero() {
            return Err(Error::InvalidOption {
                option: "node_lease",
                reason: "must be greater than zero (the default is 3 s)".into(),
            });
        }
        if let Some(ttl) = b.sessions.shared_ttl {
            if ttl < b.session_ttl_min || ttl > crate::config::SESSION_TTL_MAX {
                return Err(Error::InvalidOption {
                    option: "shared_session_ttl",
                    reason: format!(
                        "{} is outside what Consul accepts for session TTLs (from the client's \
                         session_ttl_min, {}, to 24 h); the default is 15 s",
                        crate::error::DisplayDuration(ttl),
                        crate::error::DisplayDuration(b.session_ttl_min)
                    ),
                });
            }
        }
        let mut token = b.token.clone();
        let origin = &b.origin;
        if let Some(path) = &b.token_file {
            let text = read_file(origin.token_file, path)?;
            let text = String::from_utf8_lossy(&text).trim().to_owned();
            check_header_value(origin.token_file, "the token in the file", &text)?;
            if !text.is_empty() {
                token = Some(Token::new(text));
            }
        }
        let mut roots: Vec<(&'static str, Vec<u8>)> = b
            .ca_cert_pem
            .iter()
            .map(|pem| ("ca_cert_pem", pem.clone()))
            .collect();
        if let Some(path) = &b.ca_cert_file {
            roots.push((origin.ca_cert_file, read_file(origin.ca_cert_file, path)?));
        }
        let identity = match (&b.client_cert_file, &b.client_key_file) {
            (Some(cert), Some(key)) => Some((
                origin.client_cert,
                read_file(origin.client_cert, cert)?,
                read_file(origin.client_cert, key)?,
            )),
            (None, None) => None,
            _ => {
                return Err(Error::InvalidOption {
                    option: origin.client_cert,
                    reason: "give both the client certificate and its key, or neither".into(),
                })
            }
        };
        let http_config = HttpConfig {
            tls: TlsConfig {
                verify: b.verify_tls,
                roots,
                identity,
            },
        };
        Ok(Client {
            inner: Arc::new(ClientInner {
                keys: KeyTable::default(),
                shared: SharedSlot::default(),
                pools: Pools::new(http_config)?,
                base_url,
                token,
                basic_auth: b.basic_auth,
                datacenter: b.datacenter,
                namespace: b.namespace,
                request_timeout: b.request_timeout,
                session_ttl_min: b.session_ttl_min,
                sessions: b.sessions,
                agent: tokio::sync::OnceCell::new_with(b.agent),
                requests_sent: AtomicU64::new(0),
            }),
        })
    }

    /// The connection pool for the runtime the caller runs on.
    pub(crate) fn http(&self) -> reqwest::Client {
        self.inner.pools.current()
    }

    /// The agent's base URL, `scheme://host:port`.
    #[must_use]
    pub fn address(&self) -> &str {
        &self.inner.base_url
    }

    /// The shortest lock timeout (session TTL) this client accepts.
    #[must_use]
    pub fn session_ttl_min(&self) -> Duration {
        self.inner.session_ttl_min
    }

    /// The longest one HTTP request may take when no acquire deadline is shorter.
    #[must_use]
    pub fn request_timeout(&self) -> Duration {
        self.inner.request_timeout
    }

    /// How many HTTP requests this client (and its clones) has sent so far: a way to see what
    /// a lock cycle costs (an uncontended acquire + release is 2 on the client's shared
    /// session, take and give back, and 3 with a session of the lock's own, whose create and
    /// destroy come on top of the take; the shared session's create and renewals count too; a
    /// client's first lock also asks once what kind of agent it talks to, one or two requests,
    /// unless [`ClientBuilder::agent_is_server`] says it, and takes a session of its own
    /// until it knows).
    #[must_use]
    pub fn requests_sent(&self) -> u64 {
        self.inner.requests_sent.load(Ordering::Relaxed)
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
            .field(
                "basic_auth_user",
                &self.inner.basic_auth.as_ref().map(|(user, _)| user),
            )
            .field("datacenter", &self.inner.datacenter)
            .field("namespace", &self.inner.namespace)
            .field("request_timeout", &self.inner.request_timeout)
            .field("session_ttl_min", &self.inner.session_ttl_min)
            .field("sessions", &self.inner.sessions)
            .finish_non_exhaustive()
    }
}
