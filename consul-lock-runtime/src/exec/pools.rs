//! Connection pools, one per tokio runtime that makes calls: a pool's connections are driven
//! by tasks of the runtime that opened them and die with it, so runtimes must not share one.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::runtime::Id;

use super::worker::caller_runtime_id;
use crate::api::tls::{self, TlsConfig};
use crate::{Error, Result};

/// How many per-runtime pools a client keeps: runtime ids are never reused, so the oldest
/// pools belong to runtimes long gone.
const MAX_POOLS: usize = 64;

/// How long an idle connection is kept: longer than a lock's usual hold, shorter than the
/// idle timeouts of the proxies in front of agents.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// The settings every connection pool of a client is built with.
pub(crate) struct HttpConfig {
    pub(crate) tls: TlsConfig,
}

impl HttpConfig {
    fn build(&self) -> Result<reqwest::Client> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(POOL_IDLE);
        tls::configure(http, &self.tls)?
            .build()
            .map_err(|e| Error::InvalidOption {
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
