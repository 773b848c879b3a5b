//! What the agent says about itself: whether it is a server (`/v1/agent/self`), and how many
//! servers the cluster has (`/v1/status/peers`).

use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;

use super::http::{unexpected, Call};
use crate::{Client, Result};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AgentSelf {
    config: AgentConfig,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AgentConfig {
    #[serde(default)]
    server: bool,
}

impl Client {
    /// `GET /v1/agent/self`: whether the agent is a Consul server (needs `agent:read`).
    /// `key` names the lock this is asked for, in errors.
    pub(crate) async fn agent_is_server(&self, key: &str, timeout: Duration) -> Result<bool> {
        const OP: &str = "read what kind of agent this is";
        let path = "/v1/agent/self".into();
        let reply = Call::new(Method::GET, path, key, OP, timeout)
            .send(self, &[])
            .await?;
        serde_json::from_slice::<AgentSelf>(&reply.body)
            .map(|a| a.config.server)
            .map_err(|e| unexpected(key, OP, reply.status, &e.to_string()))
    }

    /// `GET /v1/status/peers`: how many servers the cluster has (no ACL needed).
    pub(crate) async fn server_count(&self, key: &str, timeout: Duration) -> Result<usize> {
        const OP: &str = "read the cluster's servers";
        let path = "/v1/status/peers".into();
        let reply = Call::new(Method::GET, path, key, OP, timeout)
            .send(self, &[])
            .await?;
        serde_json::from_slice::<Vec<String>>(&reply.body)
            .map(|peers| peers.len())
            .map_err(|e| unexpected(key, OP, reply.status, &e.to_string()))
    }
}
