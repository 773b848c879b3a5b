//! The request generator: random sequences over the API a lock client uses (KV with its
//! query flags, sessions, transactions with every KV verb, status), built from references
//! (`V`) that each server's run resolves to its own prefix, session IDs and indexes.

use std::time::Duration;

use serde_json::Value;

#[path = "gen_kv.rs"]
mod kv;
#[path = "gen_session.rs"]
mod session;
#[path = "gen_txn.rs"]
mod txn;

/// A literal session ID that exists on neither server.
pub const FAKE_UUID: &str = "11111111-2222-3333-4444-555555555555";

/// A value that differs per server.
#[derive(Clone, Debug)]
pub enum V {
    Lit(String),
    /// The n-th session this run created (a zero UUID ending in n when there is none).
    Sess(usize),
    /// The same, upper-cased.
    SessUpper(usize),
    /// The last `ModifyIndex` seen for a relative key, plus a delta (0 when none was seen).
    Mi(String, i64),
    /// The last `X-Consul-Index` seen, plus a delta.
    Xi(i64),
}

/// How a key is percent-encoded in a path.
#[derive(Clone, Copy, Debug)]
pub enum Enc {
    /// Everything but unreserved characters and `/`.
    Q,
    /// `/` too (as `%2F`).
    Slash,
    /// `%` left alone, so raw escapes reach the server.
    Pct,
    /// Sub-delimiters left raw.
    Loose,
}

/// One piece of a request path.
#[derive(Clone, Debug)]
pub enum Part {
    Lit(&'static str),
    Key(String, Enc),
    Val(V),
}

/// A request body: bytes, or a JSON template (strings starting with `\u{1}` are references,
/// see [`jkey`], [`jsess`], [`jmi`]) and whether to escape non-ASCII as `\uXXXX`.
#[derive(Clone, Debug)]
pub enum Body {
    Raw(Vec<u8>),
    Json(Value, bool),
}

/// One request of a sequence.
#[derive(Clone, Debug)]
pub struct Step {
    /// Method + path shape, the first part of every mismatch class.
    pub kind: String,
    pub method: &'static str,
    pub path: Vec<Part>,
    pub query: Vec<(&'static str, Option<V>)>,
    pub body: Option<Body>,
    /// `?raw` read: the body is compared as bytes.
    pub raw_value: bool,
    /// A blocking read's `wait`.
    pub wait: Option<Duration>,
}

impl Step {
    fn new(kind: impl Into<String>, method: &'static str, path: Vec<Part>) -> Step {
        Step {
            kind: kind.into(),
            method,
            path,
            query: Vec::new(),
            body: None,
            raw_value: false,
            wait: None,
        }
    }
}

pub fn jkey(rel: &str) -> Value {
    Value::String(format!("\u{1}K:{rel}"))
}

pub fn jsess(v: &V) -> Value {
    match v {
        V::Sess(n) => Value::String(format!("\u{1}S:{n}")),
        V::SessUpper(n) => Value::String(format!("\u{1}SU:{n}")),
        V::Lit(s) => Value::String(s.clone()),
        other => unreachable!("not a session reference: {other:?}"),
    }
}

pub fn jmi(rel: &str, delta: i64) -> Value {
    Value::String(format!("\u{1}MI:{delta}:{rel}"))
}

fn lit(s: &str) -> Option<V> {
    Some(V::Lit(s.to_string()))
}

fn pick<T: Clone>(rng: &mut fastrand::Rng, xs: &[T]) -> T {
    xs[rng.usize(..xs.len())].clone()
}

fn chance(rng: &mut fastrand::Rng, p: f64) -> bool {
    rng.f64() < p
}

/// Per-sequence generator state.
pub struct Gen {
    rng: fastrand::Rng,
    keys: Vec<String>,
    nsess: usize,
    node: String,
    /// This transaction may get bad Flags and Index (and then only good Values).
    txn_bad_numbers: bool,
}

const PLAIN_SEGS: &[&str] = &["a", "b", "lock", "k1", "dir", "x"];
// Hostile segments: escapes, reserved and sub-delimiter characters, unicode, dot segments,
// and runes Go's unicode.IsPrint rejects (tab, newline, NUL, U+00A0, U+202E).
const ODD_SEGS: &[&str] = &[
    "with space",
    "pct%",
    "pct%41",
    "ü",
    "日本",
    "q?x",
    "hash#",
    "amp&b",
    "semi;c",
    "x=y",
    "+plus",
    "~t",
    "<b>",
    "quo\"te",
    "back\\slash",
    "emoji😀",
    "tab\tx",
    "..",
    ".",
    "",
    "%2F",
    "a.b",
    "-_",
    "nl\nx",
    "*",
    "%",
    "nbsp\u{a0}x",
    "rlo\u{202e}x",
    "nul\u{0}x",
];

const VALUES: &[&[u8]] = &[
    b"",
    b"hello",
    b"<html><body>x</body></html>",
    b"\x00\x01\x02binary",
    b"{\"a\":1}",
    "ünïcode".as_bytes(),
    b"%PDF-1.4 x",
    b"\x89PNG\r\n\x1a\n\x00\x00",
    b"GIF89a....",
    b"  leading",
    b"\xef\xbb\xbfBOM",
    b"plain text value",
    b"\xff\xfe\xfd",
];

impl Gen {
    /// The sequence `idx` of `seed`: the same requests on every run.
    pub fn sequence(seed: u64, idx: u64, node: &str) -> Vec<Step> {
        let mut rng = fastrand::Rng::with_seed(seed.wrapping_mul(1_000_003).wrapping_add(idx));
        let nkeys = pick(&mut rng, &[1, 2, 3, 4]);
        let mut g = Gen {
            keys: Vec::new(),
            rng,
            nsess: 0,
            node: node.to_string(),
            txn_bad_numbers: false,
        };
        for _ in 0..nkeys {
            let k = g.relkey();
            g.keys.push(k);
        }
        let mut steps = Vec::new();
        // Most sequences start with a session, as a lock client does.
        if chance(&mut g.rng, 0.7) {
            steps.push(g.session_create());
        }
        let n = g.rng.usize(6..16);
        for _ in 0..n {
            let step = match g.rng.u32(0..100) {
                0..=21 => g.kv_put(),
                22..=41 => g.kv_get(),
                42..=47 => g.kv_delete(),
                48..=51 => g.kv_misc(),
                52..=61 => g.session_create(),
                62..=69 => g.session_read(),
                70..=75 => g.session_write(),
                76 => g.session_misc(),
                77..=96 => g.txn(),
                _ => g.status(),
            };
            steps.push(step);
        }
        steps
    }

    fn relkey(&mut self) -> String {
        let nseg = pick(&mut self.rng, &[1, 1, 1, 2, 2, 3]);
        let mut segs = Vec::new();
        for _ in 0..nseg {
            let s = if chance(&mut self.rng, 0.25) {
                pick(&mut self.rng, ODD_SEGS)
            } else {
                pick(&mut self.rng, PLAIN_SEGS)
            };
            segs.push(s);
        }
        let mut k = segs.join("/");
        if chance(&mut self.rng, 0.15) {
            k.push('/');
        }
        if k.is_empty() {
            k = "e".into();
        }
        k
    }

    fn key(&mut self) -> String {
        pick(&mut self.rng, &self.keys)
    }

    /// A stored key, a "directory" of one, or (when `with_root`) the prefix itself.
    fn key_or_dir(&mut self, with_root: bool) -> String {
        let mut all = self.keys.clone();
        all.extend(
            self.keys
                .iter()
                .map(|k| format!("{}/", k.split('/').next().unwrap_or(""))),
        );
        if with_root {
            all.push(String::new());
        }
        pick(&mut self.rng, &all)
    }

    fn value(&mut self) -> Vec<u8> {
        if chance(&mut self.rng, 0.2) {
            let n = self.rng.usize(0..24);
            return (0..n).map(|_| self.rng.u8(..)).collect();
        }
        pick(&mut self.rng, VALUES).to_vec()
    }

    fn enc(&mut self) -> Enc {
        pick(
            &mut self.rng,
            &[
                Enc::Q,
                Enc::Q,
                Enc::Q,
                Enc::Q,
                Enc::Q,
                Enc::Q,
                Enc::Q,
                Enc::Q,
                Enc::Slash,
                Enc::Pct,
                Enc::Loose,
            ],
        )
    }

    fn sess_ref(&mut self) -> V {
        if self.nsess > 0 && chance(&mut self.rng, 0.7) {
            let n = self.rng.usize(..self.nsess);
            return if chance(&mut self.rng, 0.08) {
                V::SessUpper(n)
            } else {
                V::Sess(n)
            };
        }
        match self.rng.u8(0..5) {
            0 => V::Lit(FAKE_UUID.into()),
            1 => V::Lit("abc".into()),
            2 => V::Lit(String::new()),
            3 => V::Lit("11111111-2222-3333-4444-55555555555".into()),
            _ => V::Sess(self.nsess + 1),
        }
    }

    pub(super) fn read_opts(&mut self, s: &mut Step) {
        let r = self.rng.f64();
        if r < 0.12 {
            s.query.push(("consistent", None));
        } else if r < 0.24 {
            s.query.push(("stale", None));
        } else if r < 0.26 {
            s.query.push(("stale", None));
            s.query.push(("consistent", None));
        }
        let r = self.rng.f64();
        if r < 0.15 {
            // Short blocking reads: at, below or above the last X-Consul-Index.
            let (w, d) = pick(
                &mut self.rng,
                &[
                    ("100ms", 100),
                    ("0.1s", 100),
                    ("150ms", 150),
                    ("200ms", 200),
                ],
            );
            let delta = pick(&mut self.rng, &[0, 0, 0, -1, 1]);
            s.query.push(("index", Some(V::Xi(delta))));
            s.query.push(("wait", lit(w)));
            s.wait = Some(Duration::from_millis(d));
        } else if r < 0.19 {
            s.query
                .push(("index", lit(pick(&mut self.rng, &["abc", "-1", "1", "0"]))));
            s.query.push((
                "wait",
                lit(pick(&mut self.rng, &["50ms", "abc", "1x", "-1s"])),
            ));
        } else if r < 0.21 {
            s.query
                .push(("wait", lit(pick(&mut self.rng, &["50ms", "abc"]))));
        }
        if chance(&mut self.rng, 0.03) {
            s.query
                .push(("dc", lit(pick(&mut self.rng, &["dc1", "dc2"]))));
        }
    }

    fn status(&mut self) -> Step {
        let (m, p) = pick(
            &mut self.rng,
            &[
                ("GET", "/v1/status/leader"),
                ("GET", "/v1/status/leader"),
                ("GET", "/v1/status/leader"),
                ("GET", "/v1/status/leader"),
                ("PUT", "/v1/status/leader"),
                ("GET", "/v1/status/peers"),
                ("GET", "/v1/status/leader/"),
            ],
        );
        let mut s = Step::new(format!("status {m} {p}"), m, vec![Part::Lit(p)]);
        if chance(&mut self.rng, 0.1) {
            s.query.push(("stale", None));
        }
        s
    }
}
