//! ACLs: tokens with `key`/`key_prefix`/`session`/`session_prefix`/`agent`/`agent_prefix`
//! rules, a default policy and a management token, resolved from `X-Consul-Token`, `Authorization: Bearer` or `?token=`.

use crate::error::Error;

/// An access level of an ACL rule, as Consul's `policy = "..."`. Levels are ordered:
/// `Deny < Read < List < Write`.
///
/// ```
/// # use consul_lock_testkit::{AclConfig, AclToken, Access, ServerConfig, TestServer};
/// # use std::io::{Read, Write};
/// # fn call(server: &TestServer, method: &str, path: &str, token: &str) -> (u16, String) {
/// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
/// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nX-Consul-Token: {token}\r\n");
/// #     write!(s, "{head}Content-Length: 2\r\nConnection: close\r\n\r\n{{}}").unwrap();
/// #     let mut answer = String::new();
/// #     s.read_to_string(&mut answer).unwrap();
/// #     let (head, body) = answer.split_once("\r\n\r\n").unwrap();
/// #     (head[9..12].parse().unwrap(), body.to_string())
/// # }
/// # fn start(acl: AclConfig) -> TestServer {
/// #     TestServer::start_with(ServerConfig::default().acl(acl)).unwrap()
/// # }
/// assert!(Access::Deny < Access::Read && Access::List < Access::Write);
/// let reader = AclToken::new("reader").key("config", Access::Read);
/// let server = start(AclConfig::deny_by_default().token(reader));
/// assert_eq!(call(&server, "GET", "/v1/kv/config", "reader").0, 404); // allowed, absent
/// assert_eq!(call(&server, "PUT", "/v1/kv/config", "reader").0, 403); // writing is not
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    /// Nothing is allowed.
    Deny,
    /// Reads are allowed.
    Read,
    /// Reads and listing are allowed.
    List,
    /// Everything is allowed.
    Write,
}

impl Access {
    fn parse(s: &str) -> Option<Access> {
        match s {
            "deny" => Some(Access::Deny),
            "read" => Some(Access::Read),
            "list" => Some(Access::List),
            "write" => Some(Access::Write),
            _ => None,
        }
    }
    fn allows(self, need: Need) -> bool {
        match need {
            Need::Read => self >= Access::Read,
            Need::Write => self == Access::Write,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Key,
    KeyPrefix,
    Session,
    SessionPrefix,
    Agent,
    AgentPrefix,
}

#[derive(Clone, Debug)]
pub(crate) struct Rule {
    kind: Kind,
    name: String,
    access: Access,
}

/// A token known to the server: its secret (the `X-Consul-Token` value) and its rules.
///
/// ```
/// use consul_lock_testkit::{AclToken, Access};
/// let t = AclToken::new("my-secret")
///     .key_prefix("locks/", Access::Write)
///     .session_prefix("", Access::Write);
/// let same = AclToken::from_rules(
///     "my-secret",
///     "key_prefix \"locks/\" { policy = \"write\" }\nsession_prefix \"\" { policy = \"write\" }",
/// ).unwrap();
/// assert_eq!(t.secret(), same.secret());
/// ```
#[derive(Clone, Debug)]
pub struct AclToken {
    secret: String,
    rules: Vec<Rule>,
}

impl AclToken {
    /// A token with no rules (only the default policy applies).
    ///
    /// ```
    /// # use consul_lock_testkit::{AclConfig, AclToken, Access, ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, token: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nX-Consul-Token: {token}\r\n");
    /// #     write!(s, "{head}Content-Length: 2\r\nConnection: close\r\n\r\n{{}}").unwrap();
    /// #     let mut answer = String::new();
    /// #     s.read_to_string(&mut answer).unwrap();
    /// #     let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    /// #     (head[9..12].parse().unwrap(), body.to_string())
    /// # }
    /// # fn start(acl: AclConfig) -> TestServer {
    /// #     TestServer::start_with(ServerConfig::default().acl(acl)).unwrap()
    /// # }
    /// let server = start(AclConfig::deny_by_default().token(AclToken::new("nobody")));
    /// assert_eq!(call(&server, "GET", "/v1/kv/a", "nobody"), (403, "Permission denied".into()));
    /// let server = start(AclConfig::allow_by_default().token(AclToken::new("nobody")));
    /// assert_eq!(call(&server, "GET", "/v1/kv/a", "nobody").0, 404);
    /// ```
    pub fn new(secret: &str) -> AclToken {
        AclToken {
            secret: secret.to_string(),
            rules: Vec::new(),
        }
    }
    /// The secret sent by clients.
    ///
    /// ```
    /// use consul_lock_testkit::AclToken;
    /// assert_eq!(AclToken::new("my-secret").secret(), "my-secret");
    /// ```
    pub fn secret(&self) -> &str {
        &self.secret
    }
    fn rule(mut self, kind: Kind, name: &str, access: Access) -> Self {
        self.rules.push(Rule {
            kind,
            name: name.to_string(),
            access,
        });
        self
    }
    /// `key_prefix "prefix" { policy = ... }`
    ///
    /// ```
    /// # use consul_lock_testkit::{AclConfig, AclToken, Access, ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, token: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nX-Consul-Token: {token}\r\n");
    /// #     write!(s, "{head}Content-Length: 2\r\nConnection: close\r\n\r\n{{}}").unwrap();
    /// #     let mut answer = String::new();
    /// #     s.read_to_string(&mut answer).unwrap();
    /// #     let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    /// #     (head[9..12].parse().unwrap(), body.to_string())
    /// # }
    /// # fn start(acl: AclConfig) -> TestServer {
    /// #     TestServer::start_with(ServerConfig::default().acl(acl)).unwrap()
    /// # }
    /// let app = AclToken::new("app").key_prefix("locks/", Access::Write);
    /// let server = start(AclConfig::deny_by_default().token(app));
    /// assert_eq!(call(&server, "PUT", "/v1/kv/locks/job", "app"), (200, "true\n".into()));
    /// assert_eq!(call(&server, "PUT", "/v1/kv/other", "app").0, 403);
    /// ```
    pub fn key_prefix(self, prefix: &str, access: Access) -> Self {
        self.rule(Kind::KeyPrefix, prefix, access)
    }
    /// `key "name" { policy = ... }` (exact key)
    ///
    /// ```
    /// # use consul_lock_testkit::{AclConfig, AclToken, Access, ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, token: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nX-Consul-Token: {token}\r\n");
    /// #     write!(s, "{head}Content-Length: 2\r\nConnection: close\r\n\r\n{{}}").unwrap();
    /// #     let mut answer = String::new();
    /// #     s.read_to_string(&mut answer).unwrap();
    /// #     let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    /// #     (head[9..12].parse().unwrap(), body.to_string())
    /// # }
    /// # fn start(acl: AclConfig) -> TestServer {
    /// #     TestServer::start_with(ServerConfig::default().acl(acl)).unwrap()
    /// # }
    /// let app = AclToken::new("app").key("leader", Access::Write);
    /// let server = start(AclConfig::deny_by_default().token(app));
    /// assert_eq!(call(&server, "PUT", "/v1/kv/leader", "app").0, 200);
    /// assert_eq!(call(&server, "PUT", "/v1/kv/leader/sub", "app").0, 403); // exact key only
    /// ```
    pub fn key(self, key: &str, access: Access) -> Self {
        self.rule(Kind::Key, key, access)
    }
    /// `session_prefix "node-prefix" { policy = ... }`
    ///
    /// ```
    /// # use consul_lock_testkit::{AclConfig, AclToken, Access, ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, token: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nX-Consul-Token: {token}\r\n");
    /// #     write!(s, "{head}Content-Length: 2\r\nConnection: close\r\n\r\n{{}}").unwrap();
    /// #     let mut answer = String::new();
    /// #     s.read_to_string(&mut answer).unwrap();
    /// #     let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    /// #     (head[9..12].parse().unwrap(), body.to_string())
    /// # }
    /// # fn start(acl: AclConfig) -> TestServer {
    /// #     TestServer::start_with(ServerConfig::default().acl(acl)).unwrap()
    /// # }
    /// let app = AclToken::new("app").session_prefix("", Access::Write); // every node
    /// let server = start(AclConfig::deny_by_default().token(app));
    /// assert_eq!(call(&server, "PUT", "/v1/session/create", "app").0, 200);
    /// assert_eq!(call(&server, "PUT", "/v1/session/create", "").0, 403); // anonymous
    /// ```
    pub fn session_prefix(self, prefix: &str, access: Access) -> Self {
        self.rule(Kind::SessionPrefix, prefix, access)
    }
    /// `session "node" { policy = ... }` (exact node name)
    ///
    /// ```
    /// # use consul_lock_testkit::{AclConfig, AclToken, Access, ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, token: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nX-Consul-Token: {token}\r\n");
    /// #     write!(s, "{head}Content-Length: 2\r\nConnection: close\r\n\r\n{{}}").unwrap();
    /// #     let mut answer = String::new();
    /// #     s.read_to_string(&mut answer).unwrap();
    /// #     let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    /// #     (head[9..12].parse().unwrap(), body.to_string())
    /// # }
    /// # fn start(acl: AclConfig) -> TestServer {
    /// #     TestServer::start_with(ServerConfig::default().acl(acl)).unwrap()
    /// # }
    /// // Sessions are created on the server's node, `consul-lock-testkit` by default.
    /// let app = AclToken::new("app").session("consul-lock-testkit", Access::Write);
    /// let server = start(AclConfig::deny_by_default().token(app));
    /// assert_eq!(call(&server, "PUT", "/v1/session/create", "app").0, 200);
    /// let reader = AclToken::new("r").session("consul-lock-testkit", Access::Read);
    /// let server = start(AclConfig::deny_by_default().token(reader));
    /// assert_eq!(call(&server, "PUT", "/v1/session/create", "r").0, 403);
    /// ```
    pub fn session(self, node: &str, access: Access) -> Self {
        self.rule(Kind::Session, node, access)
    }
    /// `agent_prefix "node-prefix" { policy = ... }`: what the token may do with the agents
    /// whose node names start with the prefix (`read` lets a client ask `/v1/agent/self`).
    ///
    /// ```
    /// use consul_lock_testkit::{Access, AclToken};
    /// let app = AclToken::new("app").agent_prefix("", Access::Read); // every agent
    /// assert_eq!(app.secret(), "app");
    /// ```
    pub fn agent_prefix(self, prefix: &str, access: Access) -> Self {
        self.rule(Kind::AgentPrefix, prefix, access)
    }
    /// A token from Consul's HCL rules text (the `key`, `key_prefix`, `session`,
    /// `session_prefix`, `agent` and `agent_prefix` blocks; other blocks are refused).
    ///
    /// ```
    /// use consul_lock_testkit::{AclToken, Error};
    /// let rules = r#"key_prefix "locks/" { policy = "write" }
    /// session_prefix "" { policy = "write" }"#;
    /// assert_eq!(AclToken::from_rules("app", rules).unwrap().secret(), "app");
    /// let err = AclToken::from_rules("app", r#"node "" { policy = "read" }"#).unwrap_err();
    /// assert!(matches!(err, Error::Config(_)));
    /// assert!(err.to_string().contains("unsupported rule block `node`"));
    /// ```
    pub fn from_rules(secret: &str, rules: &str) -> Result<AclToken, Error> {
        let mut tok = AclToken::new(secret);
        let toks = crate::acl_hcl::tokenize(rules)?;
        let mut i = 0;
        while i < toks.len() {
            let err = |m: &str| Error::Config(format!("ACL rules: {m} in {rules:?}"));
            let kind = match toks[i].as_str() {
                "key" => Kind::Key,
                "key_prefix" => Kind::KeyPrefix,
                "session" => Kind::Session,
                "session_prefix" => Kind::SessionPrefix,
                "agent" => Kind::Agent,
                "agent_prefix" => Kind::AgentPrefix,
                other => return Err(err(&format!("unsupported rule block `{other}`"))),
            };
            let name = toks
                .get(i + 1)
                .and_then(|t| t.strip_prefix('"'))
                .ok_or_else(|| err("expected a quoted name"))?
                .to_string();
            if toks.get(i + 2).map(String::as_str) != Some("{")
                || toks.get(i + 3).map(String::as_str) != Some("policy")
                || toks.get(i + 4).map(String::as_str) != Some("=")
                || toks.get(i + 6).map(String::as_str) != Some("}")
            {
                return Err(err("expected `{ policy = \"...\" }`"));
            }
            let access = toks
                .get(i + 5)
                .and_then(|t| t.strip_prefix('"'))
                .and_then(Access::parse)
                .ok_or_else(|| err("unknown policy"))?;
            tok.rules.push(Rule { kind, name, access });
            i += 7;
        }
        Ok(tok)
    }
}

/// ACL settings: default policy, management token and the tokens known at start.
///
/// ```
/// use consul_lock_testkit::{AclConfig, AclToken, Access, ServerConfig, TestServer};
/// let acl = AclConfig::deny_by_default()
///     .management_token("11111111-2222-3333-4444-555555555555")
///     .token(AclToken::new("app").key_prefix("locks/", Access::Write).session_prefix("", Access::Write));
/// let server = TestServer::start_with(ServerConfig::default().acl(acl)).unwrap();
/// assert!(server.url().starts_with("http://"));
/// ```
#[derive(Clone, Debug)]
pub struct AclConfig {
    pub(crate) default_allow: bool,
    pub(crate) management: Option<String>,
    pub(crate) tokens: Vec<AclToken>,
}

impl AclConfig {
    /// ACLs on, `acl.default_policy = "deny"`.
    ///
    /// ```
    /// # use consul_lock_testkit::{AclConfig, AclToken, Access, ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, token: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nX-Consul-Token: {token}\r\n");
    /// #     write!(s, "{head}Content-Length: 2\r\nConnection: close\r\n\r\n{{}}").unwrap();
    /// #     let mut answer = String::new();
    /// #     s.read_to_string(&mut answer).unwrap();
    /// #     let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    /// #     (head[9..12].parse().unwrap(), body.to_string())
    /// # }
    /// # fn start(acl: AclConfig) -> TestServer {
    /// #     TestServer::start_with(ServerConfig::default().acl(acl)).unwrap()
    /// # }
    /// let server = start(AclConfig::deny_by_default().token(AclToken::new("app")));
    /// assert_eq!(call(&server, "GET", "/v1/kv/a", ""), (403, "Permission denied".into()));
    /// assert_eq!(call(&server, "GET", "/v1/kv/a", "app").0, 403);
    /// ```
    pub fn deny_by_default() -> AclConfig {
        AclConfig {
            default_allow: false,
            management: None,
            tokens: Vec::new(),
        }
    }
    /// ACLs on, `acl.default_policy = "allow"`.
    ///
    /// ```
    /// # use consul_lock_testkit::{AclConfig, AclToken, Access, ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, token: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nX-Consul-Token: {token}\r\n");
    /// #     write!(s, "{head}Content-Length: 2\r\nConnection: close\r\n\r\n{{}}").unwrap();
    /// #     let mut answer = String::new();
    /// #     s.read_to_string(&mut answer).unwrap();
    /// #     let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    /// #     (head[9..12].parse().unwrap(), body.to_string())
    /// # }
    /// # fn start(acl: AclConfig) -> TestServer {
    /// #     TestServer::start_with(ServerConfig::default().acl(acl)).unwrap()
    /// # }
    /// let ro = AclToken::new("ro").key_prefix("", Access::Read);
    /// let server = start(AclConfig::allow_by_default().token(ro));
    /// assert_eq!(call(&server, "PUT", "/v1/kv/a", "").0, 200); // anonymous: allowed
    /// assert_eq!(call(&server, "PUT", "/v1/kv/a", "ro").0, 403); // a rule takes write away
    /// ```
    pub fn allow_by_default() -> AclConfig {
        AclConfig {
            default_allow: true,
            ..AclConfig::deny_by_default()
        }
    }
    /// A token allowed everything.
    ///
    /// ```
    /// # use consul_lock_testkit::{AclConfig, AclToken, Access, ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, token: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nX-Consul-Token: {token}\r\n");
    /// #     write!(s, "{head}Content-Length: 2\r\nConnection: close\r\n\r\n{{}}").unwrap();
    /// #     let mut answer = String::new();
    /// #     s.read_to_string(&mut answer).unwrap();
    /// #     let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    /// #     (head[9..12].parse().unwrap(), body.to_string())
    /// # }
    /// # fn start(acl: AclConfig) -> TestServer {
    /// #     TestServer::start_with(ServerConfig::default().acl(acl)).unwrap()
    /// # }
    /// let server = start(AclConfig::deny_by_default().management_token("root"));
    /// assert_eq!(call(&server, "PUT", "/v1/kv/any/key", "root").0, 200);
    /// assert_eq!(call(&server, "PUT", "/v1/session/create", "root").0, 200);
    /// assert_eq!(call(&server, "PUT", "/v1/kv/any/key", "").0, 403);
    /// ```
    pub fn management_token(mut self, secret: &str) -> Self {
        self.management = Some(secret.to_string());
        self
    }
    /// Adds a token.
    ///
    /// ```
    /// # use consul_lock_testkit::{AclConfig, AclToken, Access, ServerConfig, TestServer};
    /// # use std::io::{Read, Write};
    /// # fn call(server: &TestServer, method: &str, path: &str, token: &str) -> (u16, String) {
    /// #     let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    /// #     let head = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nX-Consul-Token: {token}\r\n");
    /// #     write!(s, "{head}Content-Length: 2\r\nConnection: close\r\n\r\n{{}}").unwrap();
    /// #     let mut answer = String::new();
    /// #     s.read_to_string(&mut answer).unwrap();
    /// #     let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    /// #     (head[9..12].parse().unwrap(), body.to_string())
    /// # }
    /// # fn start(acl: AclConfig) -> TestServer {
    /// #     TestServer::start_with(ServerConfig::default().acl(acl)).unwrap()
    /// # }
    /// let acl = AclConfig::deny_by_default()
    ///     .token(AclToken::new("a").key("a", Access::Write))
    ///     .token(AclToken::new("b").key("b", Access::Write));
    /// let server = start(acl);
    /// assert_eq!(call(&server, "PUT", "/v1/kv/b", "b").0, 200);
    /// assert_eq!(call(&server, "PUT", "/v1/kv/b", "a").0, 403);
    /// assert_eq!(call(&server, "PUT", "/v1/kv/b", "nope"), (403, "ACL not found".into()));
    /// ```
    pub fn token(mut self, token: AclToken) -> Self {
        self.tokens.push(token);
        self
    }
}

/// What an operation needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    Read,
    Write,
}

/// The rights of one request.
#[derive(Clone, Debug)]
pub(crate) enum Authz {
    All,
    Rules {
        rules: Vec<Rule>,
        default_allow: bool,
    },
}

pub(crate) const PERMISSION_DENIED: &str = "Permission denied";
pub(crate) const ACL_NOT_FOUND: &str = "ACL not found";

/// Resolves a request's token. `Err` carries the text of a 403.
pub(crate) fn resolve(acl: Option<&AclConfig>, token: &str) -> Result<Authz, &'static str> {
    let Some(acl) = acl else {
        return Ok(Authz::All);
    };
    if token.is_empty() {
        return Ok(Authz::Rules {
            rules: Vec::new(),
            default_allow: acl.default_allow,
        });
    }
    if acl.management.as_deref() == Some(token) {
        return Ok(Authz::All);
    }
    match acl.tokens.iter().find(|t| t.secret == token) {
        Some(t) => Ok(Authz::Rules {
            rules: t.rules.clone(),
            default_allow: acl.default_allow,
        }),
        None => Err(ACL_NOT_FOUND),
    }
}

impl Authz {
    fn lookup(&self, exact: Kind, prefix: Kind, name: &str) -> Option<Access> {
        let Authz::Rules { rules, .. } = self else {
            return Some(Access::Write);
        };
        if let Some(r) = rules
            .iter()
            .rev()
            .find(|r| r.kind == exact && r.name == name)
        {
            return Some(r.access);
        }
        rules
            .iter()
            .filter(|r| r.kind == prefix && name.starts_with(&r.name))
            .max_by_key(|r| r.name.len())
            .map(|r| r.access)
    }
    fn default_allows(&self) -> bool {
        match self {
            Authz::All => true,
            Authz::Rules { default_allow, .. } => *default_allow,
        }
    }
    pub(crate) fn key(&self, key: &str, need: Need) -> bool {
        match self.lookup(Kind::Key, Kind::KeyPrefix, key) {
            Some(a) => a.allows(need),
            None => self.default_allows(),
        }
    }
    /// Write on a whole prefix (recursive delete): the prefix must be writable and no rule
    /// under it may take write away.
    pub(crate) fn key_write_prefix(&self, prefix: &str) -> bool {
        if !self.key(prefix, Need::Write) {
            return false;
        }
        match self {
            Authz::All => true,
            Authz::Rules { rules, .. } => rules.iter().all(|r| {
                !(matches!(r.kind, Kind::Key | Kind::KeyPrefix)
                    && r.name.starts_with(prefix)
                    && r.access != Access::Write)
            }),
        }
    }
    pub(crate) fn session(&self, node: &str, need: Need) -> bool {
        match self.lookup(Kind::Session, Kind::SessionPrefix, node) {
            Some(a) => a.allows(need),
            None => self.default_allows(),
        }
    }
    pub(crate) fn agent(&self, node: &str, need: Need) -> bool {
        match self.lookup(Kind::Agent, Kind::AgentPrefix, node) {
            Some(a) => a.allows(need),
            None => self.default_allows(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let t = AclToken::from_rules(
            "t",
            "key_prefix \"locks/\" { policy = \"write\" }\nsession_prefix \"\" { policy = \"write\" }",
        )
        .unwrap();
        let acl = AclConfig::deny_by_default().token(t).management_token("m");
        let a = resolve(Some(&acl), "t").unwrap();
        assert!(a.key("locks/x", Need::Write));
        assert!(!a.key("other/x", Need::Read));
        assert!(a.session("node", Need::Write));
        assert!(matches!(resolve(Some(&acl), "m"), Ok(Authz::All)));
        assert_eq!(resolve(Some(&acl), "x").unwrap_err(), ACL_NOT_FOUND);
        let anon = resolve(Some(&acl), "").unwrap();
        assert!(!anon.key("locks/x", Need::Read));
        assert!(AclToken::from_rules("t", "node \"\" { policy = \"read\" }").is_err());
    }
}
