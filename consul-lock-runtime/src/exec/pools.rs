//! Connection pools, one per tokio runtime that makes calls: a pool's connections are driven
//! by tasks of the runtime that opened them and die with it, so runtimes must not share one.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::runtime::Id;

use super::worker::caller_runtime_id;
use crate::{Error, Result};

/// How many per-runtime pools a client keeps: runtime ids are never reused, so the oldest
/// pools belong to runtimes long gone.
const MAX_POOLS: usize = 64;

/// How long an idle connection is kept: longer than a lock's usual hold, shorter than the
/// idle timeouts of the proxies in front of agents.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// The TLS settings every connection pool of a client is built with.
pub(crate) struct HttpConfig {
    pub(crate) verify_tls: bool,
    /// CA certificates (PEM), each with the option or variable it came from.
    pub(crate) roots: Vec<(&'static str, Vec<u8>)>,
    /// The client certificate and key (PEM), with the option or variable they came from.
    pub(crate) identity: Option<(&'static str, Vec<u8>)>,
}

impl HttpConfig {
    fn build(&self) -> Result<reqwest::Client> {
        let mut http = reqwest::Client::builder()
            .use_rustls_tls()
            .tcp_nodelay(true)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(POOL_IDLE)
            .danger_accept_invalid_certs(!self.verify_tls);
        for (option, pem) in &self.roots {
            let certs =
                reqwest::Certificate::from_pem_bundle(pem).map_err(|e| Error::InvalidOption {
                    option,
                    reason: format!("not a PEM certificate: {e}"),
                })?;
            for cert in certs {
                http = http.add_root_certificate(cert);
            }
        }
        if let Some((option, pem)) = &self.identity {
            let identity = reqwest::Identity::from_pem(pem).map_err(|e| Error::InvalidOption {
                option,
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

/// A client's connection pools: the worker's (also used by callers without a tokio runtime)
/// and one per caller runtime.
pub(crate) struct Pools {
    config: HttpConfig,
    worker: reqwest::Client,
    per_runtime: Mutex<Vec<(Id, reqwest::Client)>>,
}

impl Pools {
    /// Builds the worker's pool at once, so that bad TLS settings fail the client's build.
    pub(crate) fn new(config: HttpConfig) -> Result<Pools> {
        Ok(Pools {
            worker: config.build()?,
            config,
            per_runtime: Mutex::new(Vec::new()),
        })
    }

    /// The pool for the runtime the caller runs on.
    pub(crate) fn current(&self) -> reqwest::Client {
        let Some(id) = caller_runtime_id() else {
            return self.worker.clone();
        };
        let mut pools = self
            .per_runtime
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, pool)) = pools.iter().find(|(pool_id, _)| *pool_id == id) {
            return pool.clone();
        }
        match self.config.build() {
            Ok(pool) => {
                if pools.len() >= MAX_POOLS {
                    pools.remove(0);
                }
                pools.push((id, pool.clone()));
                pool
            }
            // It was built once with the same settings; should it fail now, the worker's
            // pool still works (its connections then belong to this runtime).
            Err(_) => self.worker.clone(),
        }
    }
}
