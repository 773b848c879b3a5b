//! Per-server state of one sequence run, the materialisation of a step into bytes, and the
//! normalisation of answers into comparable pieces: UUIDs through a capture map, indexes
//! replaced by `<I>` and kept as observations (compared by their order relations), the
//! prefix, leader addresses; timing headers and `Date` left out.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;

use super::gen::{Body, Enc, Part, Step, FAKE_UUID, V};
use super::http::Outcome;

const INDEX_FIELDS: &[&str] = &["CreateIndex", "ModifyIndex", "Index"];
/// Headers whose presence is not compared (transport and time).
const IGNORED_HEADERS: &[&str] = &[
    "date",
    "content-length",
    "connection",
    "keep-alive",
    "transfer-encoding",
];
/// Headers whose values are compared (after normalisation); the rest only by presence.
pub const COMPARED_VALUES: &[&str] = &[
    "content-type",
    "allow",
    "location",
    "x-consul-knownleader",
    "x-consul-default-acl-policy",
    "x-consul-effective-consistency",
    "x-consul-translate-addresses",
];

/// One index value seen (label, value).
pub type Obs = (String, u64);

/// Per-server state of one sequence run.
pub struct Ctx {
    pub prefix: String,
    pub sessions: Vec<String>,
    mi: HashMap<String, u64>,
    xi: u64,
    index_like: HashSet<u64>,
    uuid_names: HashMap<String, String>,
    unknown: usize,
    pub obs: Vec<Obs>,
}

impl Ctx {
    pub fn new(prefix: String) -> Ctx {
        Ctx {
            prefix,
            sessions: Vec::new(),
            mi: HashMap::new(),
            xi: 1,
            index_like: HashSet::new(),
            uuid_names: HashMap::new(),
            unknown: 0,
            obs: Vec::new(),
        }
    }

    fn session(&self, n: usize) -> String {
        self.sessions
            .get(n)
            .cloned()
            .unwrap_or_else(|| format!("00000000-0000-0000-0000-00000000000{}", n % 10))
    }

    fn index(&mut self, base: Option<u64>, delta: i64) -> u64 {
        let Some(base) = base else { return 0 };
        let v = (base as i64 + delta).max(0) as u64;
        self.index_like.insert(v);
        v
    }

    fn resolve(&mut self, v: &V) -> String {
        match v {
            V::Lit(s) => s.clone(),
            V::Sess(n) => self.session(*n),
            V::SessUpper(n) => self.session(*n).to_ascii_uppercase(),
            V::Mi(rel, d) => {
                let base = self.mi.get(rel).copied();
                self.index(base, *d).to_string()
            }
            V::Xi(d) => {
                let base = Some(self.xi);
                self.index(base, *d).to_string()
            }
        }
    }

    fn resolve_json(&mut self, v: &Value) -> Value {
        match v {
            Value::String(s) if s.starts_with('\u{1}') => {
                let r = &s[1..];
                if let Some(rel) = r.strip_prefix("K:") {
                    Value::String(format!("{}{rel}", self.prefix))
                } else if let Some(n) = r.strip_prefix("SU:") {
                    Value::String(self.session(n.parse().unwrap_or(0)).to_ascii_uppercase())
                } else if let Some(n) = r.strip_prefix("S:") {
                    Value::String(self.session(n.parse().unwrap_or(0)))
                } else if let Some(rest) = r.strip_prefix("MI:") {
                    let (d, rel) = rest.split_once(':').unwrap_or(("0", ""));
                    let base = self.mi.get(rel).copied();
                    Value::from(self.index(base, d.parse().unwrap_or(0)))
                } else {
                    v.clone()
                }
            }
            Value::Array(xs) => Value::Array(xs.iter().map(|x| self.resolve_json(x)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), self.resolve_json(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// The request as it goes out to this server: method, target, body.
    pub fn materialise(&mut self, step: &Step) -> (&'static str, String, Option<Vec<u8>>) {
        let mut target = String::new();
        for p in &step.path {
            match p {
                Part::Lit(s) => target.push_str(s),
                Part::Key(rel, enc) => {
                    target.push_str(&encode(&format!("{}{rel}", self.prefix), *enc))
                }
                Part::Val(v) => {
                    let s = self.resolve(v);
                    target.push_str(&encode(&s, Enc::Q))
                }
            }
        }
        if !step.query.is_empty() {
            let mut parts = Vec::new();
            for (name, val) in &step.query {
                match val {
                    None => parts.push(name.to_string()),
                    Some(v) => {
                        let s = self.resolve(v);
                        parts.push(format!("{name}={}", encode(&s, Enc::Slash)))
                    }
                }
            }
            target.push('?');
            target.push_str(&parts.join("&"));
        }
        let body = step.body.as_ref().map(|b| match b {
            Body::Raw(bytes) => bytes.clone(),
            Body::Json(t, ascii) => {
                let v = self.resolve_json(t);
                let text = serde_json::to_string(&v).unwrap_or_default();
                if *ascii {
                    ascii_escape(&text).into_bytes()
                } else {
                    text.into_bytes()
                }
            }
        });
        (step.method, target, body)
    }

    fn uuid_name(&mut self, u: &str) -> String {
        if u.eq_ignore_ascii_case(FAKE_UUID) || u.starts_with("00000000-0000-0000-0000-0000000000")
        {
            return u.to_string();
        }
        if let Some(n) = self.uuid_names.get(u) {
            return n.clone();
        }
        let low = u.to_ascii_lowercase();
        let name = match self
            .sessions
            .iter()
            .position(|s| s.to_ascii_lowercase() == low)
        {
            Some(i) if self.sessions[i] == u => format!("<S{i}>"),
            Some(i) => format!("<S{i}:case>"),
            None => {
                self.unknown += 1;
                format!("<U{}>", self.unknown - 1)
            }
        };
        self.uuid_names.insert(u.to_string(), name.clone());
        name
    }

    /// Prefix, UUIDs and loopback addresses replaced by placeholders.
    pub fn norm_text(&mut self, t: &str) -> String {
        let t = t.replace(self.prefix.trim_end_matches('/'), "<P>");
        let b = t.as_bytes();
        let mut out = String::with_capacity(t.len());
        let mut i = 0;
        let mut last = 0;
        while i < b.len() {
            if i + 36 <= b.len() && is_uuid(&b[i..i + 36]) {
                out.push_str(&t[last..i]);
                let name = self.uuid_name(&t[i..i + 36]);
                out.push_str(&name);
                i += 36;
                last = i;
            } else if b[i..].starts_with(b"127.0.0.1:")
                && b.get(i + 10).is_some_and(u8::is_ascii_digit)
            {
                out.push_str(&t[last..i]);
                out.push_str("<ADDR>");
                i += 10;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                last = i;
            } else {
                i += 1;
            }
        }
        out.push_str(&t[last..]);
        out
    }

    /// As `norm_text`, and numbers this run saw or sent as indexes become `<I>` (observed).
    fn norm_error_text(&mut self, t: &str, label: &str, obs: &mut Vec<Obs>) -> String {
        let t = self.norm_text(t);
        let b = t.as_bytes();
        let mut out = String::with_capacity(t.len());
        let (mut i, mut last) = (0, 0);
        while i < b.len() {
            if b[i].is_ascii_digit() && (i == 0 || !(b[i - 1].is_ascii_digit() || b[i - 1] == b'.'))
            {
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                // An index: a number this run saw or sent as one, or one that follows
                // "index " (as in "current modify index 12 != 0").
                let after_index = t[..start].ends_with("index ");
                if (i - start >= 2 || after_index) && b.get(i) != Some(&b'.') {
                    if let Ok(n) = t[start..i].parse::<u64>() {
                        if n > 0 && (after_index || self.index_like.contains(&n)) {
                            out.push_str(&t[last..start]);
                            out.push_str("<I>");
                            obs.push((format!("{label}.text"), n));
                            last = i;
                        }
                    }
                }
            } else {
                i += 1;
            }
        }
        out.push_str(&t[last..]);
        out
    }

    fn walk(&mut self, v: &Value, label: &str, path: &str, obs: &mut Vec<Obs>) -> Value {
        match v {
            Value::Object(m) => {
                let mut out = serde_json::Map::new();
                for (k, x) in m {
                    let nx = match x.as_u64() {
                        // A txn `Node` op's node comes from the catalog, which a real agent
                        // writes on its own schedule (it syncs its node again shortly after
                        // start, at whatever index the run has reached): its indexes are
                        // not ordered against the run's.
                        Some(_)
                            if INDEX_FIELDS.contains(&k.as_str()) && path.ends_with(".Node") =>
                        {
                            Value::String("<I>".into())
                        }
                        Some(n) if INDEX_FIELDS.contains(&k.as_str()) => {
                            obs.push((format!("{label}.{k}"), n));
                            self.index_like.insert(n);
                            Value::String("<I>".into())
                        }
                        _ => self.walk(x, label, &format!("{path}.{k}"), obs),
                    };
                    out.insert(k.clone(), nx);
                }
                Value::Object(out)
            }
            Value::Array(xs) => {
                Value::Array(xs.iter().map(|x| self.walk(x, label, path, obs)).collect())
            }
            Value::String(s) if path.ends_with(".What") => {
                Value::String(self.norm_error_text(s, label, obs))
            }
            Value::String(s) => Value::String(self.norm_text(s)),
            other => other.clone(),
        }
    }

    /// The comparable pieces of one answer; updates sessions, last indexes, observations.
    pub fn normalise(&mut self, step: &Step, out: &Outcome) -> Norm {
        let r = match out {
            Outcome::NoAnswer(e) => return Norm::NoAnswer(e.clone()),
            Outcome::Answer(r) => r,
        };
        let kind = step.kind.as_str();
        let mut obs = Vec::new();
        let mut names = BTreeSet::new();
        let mut hv = BTreeMap::new();
        for (k, v) in &r.headers {
            if !IGNORED_HEADERS.contains(&k.as_str()) {
                names.insert(k.clone());
            }
            if COMPARED_VALUES.contains(&k.as_str()) && !hv.contains_key(k) {
                let v = if k == "location" {
                    let decoded = percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .to_string();
                    let mut scratch = Vec::new();
                    let d = self.norm_error_text(&decoded, kind, &mut scratch);
                    let raw = self.norm_error_text(v, kind, &mut scratch);
                    format!("{d}  [raw: {raw}]")
                } else {
                    v.clone()
                };
                hv.insert(k.clone(), v);
            }
        }
        if let Some(x) = r.header("x-consul-index").filter(|_| r.status < 400) {
            match x.parse::<u64>() {
                Ok(n) => {
                    obs.push((format!("{kind}.X-Consul-Index"), n));
                    self.xi = n;
                    self.index_like.insert(n);
                }
                Err(_) => {
                    hv.insert("x-consul-index".into(), x.to_string());
                }
            }
        }
        let is_json = r
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"));
        let parsed = if is_json && !r.body.is_empty() {
            serde_json::from_slice::<Value>(&r.body).ok()
        } else {
            None
        };
        let listing = kind.starts_with("session.list") || kind.starts_with("session.node");
        let mut sorted_by_id = None;
        let (body, text) = if let Some(mut parsed) = parsed {
            if listing {
                if let Value::Array(xs) = parsed {
                    let mine: HashSet<String> = self
                        .sessions
                        .iter()
                        .map(|s| s.to_ascii_lowercase())
                        .collect();
                    let mut xs: Vec<Value> = xs
                        .into_iter()
                        .filter(|s| {
                            s["ID"]
                                .as_str()
                                .is_some_and(|id| mine.contains(&id.to_ascii_lowercase()))
                        })
                        .collect();
                    let ids: Vec<String> = xs
                        .iter()
                        .map(|s| s["ID"].as_str().unwrap_or("").to_string())
                        .collect();
                    let mut sorted = ids.clone();
                    sorted.sort();
                    sorted_by_id = Some(ids == sorted);
                    // the same order on both servers, so that observations line up
                    xs.sort_by_key(|s| self.uuid_name(s["ID"].as_str().unwrap_or("")));
                    parsed = Value::Array(xs);
                }
            }
            if kind == "session.create" && r.status == 200 {
                if let Some(id) = parsed.get("ID").and_then(Value::as_str) {
                    self.sessions.push(id.to_string());
                }
            }
            self.remember_modify_indexes(&parsed);
            let nb = self.walk(&parsed, kind, "", &mut obs);
            let text = if listing {
                None
            } else {
                let t = self.norm_text(&String::from_utf8_lossy(&r.body));
                Some(digits_to_n(&t))
            };
            (NBody::Json(nb), text)
        } else if step.raw_value && r.status == 200 {
            (NBody::Bytes(r.body.clone()), None)
        } else if r.body.is_empty() {
            (NBody::Empty, None)
        } else {
            match std::str::from_utf8(&r.body) {
                Ok(t) => (NBody::Text(self.norm_error_text(t, kind, &mut obs)), None),
                Err(_) => (NBody::Bytes(r.body.clone()), None),
            }
        };
        let first_obs = self.obs.len();
        self.obs.extend(obs);
        Norm::Answer(Box::new(Answer {
            status: r.status,
            names,
            hv,
            body,
            text,
            sorted_by_id,
            elapsed: r.elapsed,
            first_obs,
        }))
    }

    fn remember_modify_indexes(&mut self, v: &Value) {
        match v {
            Value::Object(m) => {
                if let (Some(Value::String(k)), Some(mi)) =
                    (m.get("Key"), m.get("ModifyIndex").and_then(Value::as_u64))
                {
                    if let Some(rel) = k.strip_prefix(&self.prefix) {
                        self.mi.insert(rel.to_string(), mi);
                    }
                }
                m.values().for_each(|x| self.remember_modify_indexes(x));
            }
            Value::Array(xs) => xs.iter().for_each(|x| self.remember_modify_indexes(x)),
            _ => {}
        }
    }
}

/// A normalised answer.
#[derive(Clone, Debug)]
pub enum Norm {
    NoAnswer(String),
    Answer(Box<Answer>),
}

#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub names: BTreeSet<String>,
    pub hv: BTreeMap<String, String>,
    pub body: NBody,
    /// The JSON text with numbers as `N`: for formatting (key order, spacing) differences.
    pub text: Option<String>,
    pub sorted_by_id: Option<bool>,
    pub elapsed: Duration,
    /// Where this answer's observations start in the run's list.
    pub first_obs: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NBody {
    Empty,
    Json(Value),
    Text(String),
    Bytes(Vec<u8>),
}

impl NBody {
    pub fn kind(&self) -> &'static str {
        match self {
            NBody::Empty => "empty",
            NBody::Json(_) => "json",
            NBody::Text(_) => "text",
            NBody::Bytes(_) => "bytes",
        }
    }
}

fn digits_to_n(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut prev = false;
    for c in t.chars() {
        if c.is_ascii_digit() {
            if !prev {
                out.push('N');
            }
            prev = true;
        } else {
            out.push(c);
            prev = false;
        }
    }
    out
}

fn is_uuid(b: &[u8]) -> bool {
    b.iter().enumerate().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => *c == b'-',
        _ => c.is_ascii_hexdigit(),
    })
}

/// Percent-encodes `s` as Python's `urllib.parse.quote` does with the given safe set.
pub fn encode(s: &str, enc: Enc) -> String {
    let safe: &[u8] = match enc {
        Enc::Q => b"/",
        Enc::Slash => b"",
        Enc::Pct => b"/%",
        Enc::Loose => b"/+&=;:@$,!*'()",
    };
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        if c.is_ascii_alphanumeric() || b"_.-~".contains(&c) || safe.contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// JSON text with every non-ASCII character as `\uXXXX` (UTF-16), as Python's
/// `json.dumps(ensure_ascii=True)`: valid because such characters occur only in strings.
fn ascii_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for u in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}
