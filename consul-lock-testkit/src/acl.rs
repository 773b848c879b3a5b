//! ACLs: tokens with `key`/`key_prefix`/`session`/`session_prefix` rules, a default policy and
//! a management token, resolved from `X-Consul-Token`, `Authorization: Bearer` or `?token=`.

use crate::error::Error;

/// An access level of an ACL rule, as Consul's `policy = "..."`.
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
    pub fn new(secret: &str) -> AclToken {
        AclToken {
            secret: secret.to_string(),
            rules: Vec::new(),
        }
    }
    /// The secret sent by clients.
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
    pub fn key_prefix(self, prefix: &str, access: Access) -> Self {
        self.rule(Kind::KeyPrefix, prefix, access)
    }
    /// `key "name" { policy = ... }` (exact key)
    pub fn key(self, key: &str, access: Access) -> Self {
        self.rule(Kind::Key, key, access)
    }
    /// `session_prefix "node-prefix" { policy = ... }`
    pub fn session_prefix(self, prefix: &str, access: Access) -> Self {
        self.rule(Kind::SessionPrefix, prefix, access)
    }
    /// `session "node" { policy = ... }` (exact node name)
    pub fn session(self, node: &str, access: Access) -> Self {
        self.rule(Kind::Session, node, access)
    }
    /// A token from Consul's HCL rules text (the `key`, `key_prefix`, `session` and
    /// `session_prefix` blocks; other blocks are refused).
    pub fn from_rules(secret: &str, rules: &str) -> Result<AclToken, Error> {
        let mut tok = AclToken::new(secret);
        let toks = tokenize(rules)?;
        let mut i = 0;
        while i < toks.len() {
            let err = |m: &str| Error::Config(format!("ACL rules: {m} in {rules:?}"));
            let kind = match toks[i].as_str() {
                "key" => Kind::Key,
                "key_prefix" => Kind::KeyPrefix,
                "session" => Kind::Session,
                "session_prefix" => Kind::SessionPrefix,
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

fn tokenize(s: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '{' || c == '}' || c == '=' {
            out.push(c.to_string());
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut v = String::from("\"");
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => {
                        if let Some(n) = chars.next() {
                            v.push(n);
                        }
                    }
                    Some(ch) => v.push(ch),
                    None => {
                        return Err(Error::Config(format!(
                            "ACL rules: unterminated string in {s:?}"
                        )))
                    }
                }
            }
            out.push(v);
        } else if c.is_alphanumeric() || c == '_' {
            let mut v = String::new();
            while let Some(&ch) = chars.peek() {
                if ch.is_alphanumeric() || ch == '_' {
                    v.push(ch);
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(v);
        } else {
            return Err(Error::Config(format!(
                "ACL rules: unexpected {c:?} in {s:?}"
            )));
        }
    }
    Ok(out)
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
    pub fn deny_by_default() -> AclConfig {
        AclConfig {
            default_allow: false,
            management: None,
            tokens: Vec::new(),
        }
    }
    /// ACLs on, `acl.default_policy = "allow"`.
    pub fn allow_by_default() -> AclConfig {
        AclConfig {
            default_allow: true,
            ..AclConfig::deny_by_default()
        }
    }
    /// A token allowed everything.
    pub fn management_token(mut self, secret: &str) -> Self {
        self.management = Some(secret.to_string());
        self
    }
    /// Adds a token.
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
