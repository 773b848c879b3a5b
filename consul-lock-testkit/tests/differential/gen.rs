//! The request generator: random sequences over the API a lock client uses (KV with its
//! query flags, sessions, transactions with every KV verb, status), built from references
//! (`V`) that each server's run resolves to its own prefix, session IDs and indexes.

use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

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
    /// Relative prefixes deleted with `?recurse` or a txn `delete-tree` in this sequence.
    tree_deleted: Vec<String>,
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

// With session_ttl_min = 1s on both servers. TTLs stay >= 10 s so that no session expires
// inside a sequence (Consul ends a session between TTL and 2 x TTL).
const TTL_OK: &[&str] = &[
    "10s", "15s", "30s", "1m", "1h", "86400s", "10000ms", "0.5m", "1h0m0s", "24h", "10.5s",
    "1m30s", "",
];
const TTL_BAD: &[&str] = &[
    "0.5s", "999ms", "86401s", "25h", "abc", "10", "1d", "-10s", "10 s", " 10s", "1e1s",
];

const TXN_VERBS: &[&str] = &[
    "set",
    "cas",
    "lock",
    "unlock",
    "get",
    "get-tree",
    "check-index",
    "check-session",
    "check-not-exists",
    "delete",
    "delete-cas",
    "delete-tree",
];
const TXN_BAD_VERBS: &[&str] = &["bogus", "", "Set", "GET", "delete_tree"];
const READ_VERBS: &[&str] = &[
    "get",
    "get-tree",
    "check-index",
    "check-session",
    "check-not-exists",
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
            tree_deleted: Vec::new(),
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

    fn kv_put(&mut self) -> Step {
        let rel = self.key();
        let mut q: Vec<(&'static str, Option<V>)> = Vec::new();
        if chance(&mut self.rng, 0.2) {
            let f = pick(
                &mut self.rng,
                &[
                    "0",
                    "42",
                    "18446744073709551615",
                    "18446744073709551616",
                    "-1",
                    "abc",
                    "",
                    "1.5",
                    "007",
                    "+5",
                ],
            );
            q.push(("flags", lit(f)));
        }
        let r = self.rng.f64();
        if r < 0.25 {
            q.push(("acquire", Some(self.sess_ref())));
        } else if r < 0.37 {
            q.push(("release", Some(self.sess_ref())));
        } else if r < 0.52 {
            let v = match self.rng.u8(0..8) {
                0 | 1 => V::Mi(rel.clone(), 0),
                2 => V::Lit("0".into()),
                3 => V::Mi(rel.clone(), 1),
                4 => V::Lit("99999999".into()),
                5 => V::Lit("abc".into()),
                6 => V::Lit(String::new()),
                _ => V::Lit("-1".into()),
            };
            q.push(("cas", Some(v)));
        }
        if chance(&mut self.rng, 0.04) {
            // conflicting flags
            let name = pick(&mut self.rng, &["cas", "acquire", "release"]);
            let v = if chance(&mut self.rng, 0.5) {
                V::Lit("0".into())
            } else {
                V::Sess(0)
            };
            q.push((name, Some(v)));
        }
        if chance(&mut self.rng, 0.05) {
            q.push(("dc", lit(pick(&mut self.rng, &["dc1", "dc2", ""]))));
        }
        if chance(&mut self.rng, 0.03) {
            q.push(("bogus", lit("1")));
        }
        let has = |n: &str| q.iter().any(|(k, _)| *k == n);
        let kind = if has("acquire") {
            "kv.put.acquire"
        } else if has("release") {
            "kv.put.release"
        } else if has("cas") {
            "kv.put.cas"
        } else {
            "kv.put.set"
        };
        let enc = self.enc();
        let mut s = Step::new(kind, "PUT", vec![Part::Lit("/v1/kv/"), Part::Key(rel, enc)]);
        s.query = q;
        s.body = Some(Body::Raw(self.value()));
        s
    }

    fn read_opts(&mut self, s: &mut Step) {
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

    fn kv_get(&mut self) -> Step {
        let rel = self.key_or_dir(true);
        let enc = self.enc();
        let mut s = Step::new(
            "kv.get",
            "GET",
            vec![Part::Lit("/v1/kv/"), Part::Key(rel.clone(), enc)],
        );
        let r = self.rng.f64();
        if r < 0.2 {
            s.query.push((
                "recurse",
                pick(
                    &mut self.rng,
                    &[None, None, lit(""), lit("false"), lit("1")],
                ),
            ));
            s.kind = "kv.get.recurse".into();
        } else if r < 0.4 {
            s.query.push(("keys", None));
            if chance(&mut self.rng, 0.6) {
                s.query.push((
                    "separator",
                    lit(pick(&mut self.rng, &["/", "/", "", "a", "%2F", "//", "ü"])),
                ));
            }
            s.kind = "kv.get.keys".into();
        } else if r < 0.5 {
            s.query
                .push(("raw", pick(&mut self.rng, &[None, None, lit(""), lit("0")])));
            s.kind = "kv.get.raw".into();
            s.raw_value = true;
        }
        if chance(&mut self.rng, 0.03) {
            s.query.push(("recurse", None));
            s.query.push(("keys", None));
            s.kind = "kv.get.mixed".into();
        }
        // EXCLUDED until the test server is fixed, class "kv.get.keys: blocking: real
        // immediate vs test blocked" (also seen as an index order class): a tree delete of D
        // leaves Consul one tombstone, for D itself, so a ?keys or ?recurse read of a prefix
        // strictly inside D finds none and answers the whole KV table's index; the test
        // server keeps a tombstone per deleted key and answers the delete's index. Such reads
        // are sent without ?keys/?recurse.
        let inside = |d: &String| rel.len() > d.len() && rel.starts_with(d.as_str());
        if s.kind != "kv.get" && !s.raw_value && self.tree_deleted.iter().any(inside) {
            s.query.clear();
            s.kind = "kv.get".into();
        }
        self.read_opts(&mut s);
        s
    }

    fn kv_delete(&mut self) -> Step {
        let rel = self.key_or_dir(true);
        let mut kind = String::from("kv.delete");
        let mut q = Vec::new();
        // Never a recursive delete through a dot segment (it could leave the prefix).
        if chance(&mut self.rng, 0.3) && !rel.split('/').any(|s| s == "." || s == "..") {
            q.push(("recurse", None));
            kind.push_str(".recurse");
            self.tree_deleted.push(rel.clone());
        }
        if chance(&mut self.rng, 0.3) {
            let v = match self.rng.u8(0..7) {
                0 | 1 => V::Mi(rel.clone(), 0),
                2 => V::Lit("0".into()),
                3 => V::Mi(rel.clone(), -1),
                4 => V::Lit("abc".into()),
                5 => V::Lit(String::new()),
                _ => V::Lit("99999999".into()),
            };
            q.push(("cas", Some(v)));
            kind.push_str(".cas");
        }
        let enc = self.enc();
        let mut s = Step::new(
            kind,
            "DELETE",
            vec![Part::Lit("/v1/kv/"), Part::Key(rel, enc)],
        );
        s.query = q;
        s
    }

    fn kv_misc(&mut self) -> Step {
        let rel = self.key();
        let r = self.rng.f64();
        if r < 0.4 {
            let m = pick(&mut self.rng, &["POST", "PATCH", "OPTIONS", "HEAD"]);
            let mut s = Step::new(
                format!("kv.method.{m}"),
                m,
                vec![Part::Lit("/v1/kv/"), Part::Key(rel, Enc::Q)],
            );
            if m == "POST" || m == "PATCH" {
                s.body = Some(Body::Raw(b"x".to_vec()));
            }
            return s;
        }
        if r < 0.7 {
            // no key at all (never a recursive delete)
            let m = pick(&mut self.rng, &["GET", "PUT", "DELETE"]);
            let p = pick(&mut self.rng, &["/v1/kv/", "/v1/kv"]);
            let mut s = Step::new(format!("kv.nokey.{m}"), m, vec![Part::Lit(p)]);
            if m == "PUT" {
                s.body = Some(Body::Raw(b"v".to_vec()));
            }
            return s;
        }
        let k = |rel: &str| Part::Key(rel.to_string(), Enc::Q);
        let variants: Vec<Vec<Part>> = vec![
            vec![Part::Lit("/v1/kv/"), k("a//b")],
            vec![Part::Lit("/v1/kv/"), k("a/./b")],
            vec![Part::Lit("/v1/kv/"), k("a/../b")],
            vec![Part::Lit("/v1/kv/"), k("bad"), Part::Lit("%zz")],
            vec![Part::Lit("/v1/kv/"), k("bad"), Part::Lit("%4")],
            vec![Part::Lit("/v1//kv/"), k("a")],
            vec![Part::Lit("/v1/KV/"), k("a")],
            vec![Part::Lit("/v1/kv/"), k("a"), Part::Lit("%2e%2e/b")],
            vec![Part::Lit("/v1/kv/"), k("sp"), Part::Lit("%20")],
        ];
        let m = pick(&mut self.rng, &["GET", "GET", "PUT", "DELETE"]);
        let path = pick(&mut self.rng, &variants);
        let mut s = Step::new(format!("kv.oddpath.{m}"), m, path);
        match self.rng.u8(0..3) {
            0 if m == "GET" => s.query.push(("recurse", None)),
            1 => s.query.push(("x", lit("1"))),
            _ => {}
        }
        if m == "PUT" {
            s.body = Some(Body::Raw(b"v".to_vec()));
        }
        s
    }

    fn session_create(&mut self) -> Step {
        self.nsess += 1;
        let mut s = Step::new(
            "session.create",
            "PUT",
            vec![Part::Lit("/v1/session/create")],
        );
        if chance(&mut self.rng, 0.04) {
            let bodies: &[&[u8]] = &[
                b"{",
                b"{\"TTL\": \"15s\",}",
                b"[]",
                b"\"x\"",
                b"123",
                b"[{}]",
                b"{\"TTL\": \"15s\"} x",
                b"\xff",
                b"{\"TTL\": \"15s\", \"TTL\": 12}",
            ];
            s.body = Some(Body::Raw(pick(&mut self.rng, bodies).to_vec()));
            return s;
        }
        let lower = chance(&mut self.rng, 0.15); // python-consul style lower-case keys
        let name = |n: &'static str| {
            if lower {
                n.to_ascii_lowercase()
            } else {
                n.to_string()
            }
        };
        let mut d = serde_json::Map::new();
        let ttl = if chance(&mut self.rng, 0.15) {
            match self.rng.u8(0..6) {
                0 | 1 => json!(pick(&mut self.rng, TTL_BAD)),
                2 => json!(10),
                3 => json!(true),
                4 => json!(10.5),
                _ => Value::Null,
            }
        } else {
            json!(pick(&mut self.rng, TTL_OK))
        };
        d.insert(name("TTL"), ttl);
        if chance(&mut self.rng, 0.05) {
            // a case-variant duplicate: Go keeps the last one
            d.insert(
                "tTl".into(),
                json!(pick(&mut self.rng, &["15s", "1m", "0.5s", "abc"])),
            );
        }
        if chance(&mut self.rng, 0.6) {
            let b = pick(
                &mut self.rng,
                &[
                    json!("release"),
                    json!("delete"),
                    json!("delete"),
                    json!(""),
                    json!("bogus"),
                    json!("Delete"),
                    json!(1),
                ],
            );
            d.insert(name("Behavior"), b);
        }
        if chance(&mut self.rng, 0.5) {
            let ld = pick(
                &mut self.rng,
                &[
                    json!("0s"),
                    json!("5s"),
                    json!("15s"),
                    json!(0),
                    json!(5),
                    json!(999),
                    json!(1000),
                    json!(1_000_000_000u64),
                    json!("abc"),
                    json!(true),
                    json!(-1),
                    json!("1.5s"),
                    json!(1.5),
                    json!("61s"),
                    json!(120),
                    json!(""),
                    Value::Null,
                ],
            );
            d.insert(name("LockDelay"), ld);
        }
        if chance(&mut self.rng, 0.4) {
            let n = pick(
                &mut self.rng,
                &[
                    json!(""),
                    json!("n1"),
                    json!("<b>&amp;"),
                    json!("ünï"),
                    json!("x".repeat(300)),
                    json!(5),
                ],
            );
            d.insert(name("Name"), n);
        }
        if chance(&mut self.rng, 0.06) {
            let n = pick(
                &mut self.rng,
                &[json!(self.node), json!("other"), json!(""), json!(3)],
            );
            d.insert(name("Node"), n);
        }
        if chance(&mut self.rng, 0.05) {
            let f = pick(&mut self.rng, &["Checks", "NodeChecks"]);
            let v = pick(
                &mut self.rng,
                &[
                    json!(["serfHealth"]),
                    json!([]),
                    json!(["bogus"]),
                    json!("serfHealth"),
                    json!([null]),
                ],
            );
            d.insert(f.into(), v);
        }
        if chance(&mut self.rng, 0.03) {
            let v = pick(
                &mut self.rng,
                &[json!([{"ID": "x"}]), json!([]), json!(["x"])],
            );
            d.insert("ServiceChecks".into(), v);
        }
        if chance(&mut self.rng, 0.08) {
            let f = pick(
                &mut self.rng,
                &["Bogus", "ID", "CreateIndex", "NodeChecks2"],
            );
            let v = pick(
                &mut self.rng,
                &[json!(1), json!(FAKE_UUID), json!("x"), json!({"a": 1})],
            );
            d.insert(f.into(), v);
        }
        if chance(&mut self.rng, 0.03) {
            s.query
                .push(("dc", lit(pick(&mut self.rng, &["dc1", "dc2"]))));
        }
        let ascii = chance(&mut self.rng, 0.5);
        s.body = Some(Body::Json(Value::Object(d), ascii));
        s
    }

    fn session_read(&mut self) -> Step {
        let r = self.rng.f64();
        let mut s = if r < 0.45 {
            let v = self.sess_ref();
            Step::new(
                "session.info",
                "GET",
                vec![Part::Lit("/v1/session/info/"), Part::Val(v)],
            )
        } else if r < 0.65 {
            let n = pick(
                &mut self.rng,
                &[
                    self.node.clone(),
                    self.node.clone(),
                    "other".into(),
                    String::new(),
                ],
            );
            Step::new(
                "session.node",
                "GET",
                vec![Part::Lit("/v1/session/node/"), Part::Val(V::Lit(n))],
            )
        } else {
            Step::new("session.list", "GET", vec![Part::Lit("/v1/session/list")])
        };
        self.read_opts(&mut s);
        s
    }

    fn session_write(&mut self) -> Step {
        let verb = pick(&mut self.rng, &["renew", "destroy", "renew"]);
        let base: &'static str = if verb == "renew" {
            "/v1/session/renew/"
        } else {
            "/v1/session/destroy/"
        };
        let v = self.sess_ref();
        let mut s = Step::new(
            format!("session.{verb}"),
            "PUT",
            vec![Part::Lit(base), Part::Val(v)],
        );
        if chance(&mut self.rng, 0.1) {
            s.method = pick(&mut self.rng, &["GET", "POST", "DELETE"]);
            s.kind.push_str(".method");
        }
        if chance(&mut self.rng, 0.03) {
            s.path = vec![Part::Lit(if verb == "renew" {
                "/v1/session/renew"
            } else {
                "/v1/session/destroy"
            })];
            s.kind.push_str(".nopath");
        }
        s
    }

    fn session_misc(&mut self) -> Step {
        let (m, p) = pick(
            &mut self.rng,
            &[
                ("GET", "/v1/session/create"),
                ("GET", "/v1/session/bogus"),
                ("PUT", "/v1/session/list"),
                ("GET", "/v1/session/info/"),
                ("GET", "/v1/session/info"),
                ("POST", "/v1/session/create"),
                ("GET", "/v1/session/"),
                ("GET", "/v1/session/list/extra"),
            ],
        );
        let mut s = Step::new(format!("session.misc {m} {p}"), m, vec![Part::Lit(p)]);
        if m != "GET" {
            s.body = Some(Body::Raw(b"{}".to_vec()));
        }
        s
    }

    fn txn_op(&mut self) -> Value {
        let r = self.rng.f64();
        if r < 0.015 {
            return json!({"Node": {"Verb": "get", "Node": {"Node": self.node}}});
        }
        if r < 0.025 {
            return pick(
                &mut self.rng,
                &[
                    json!({}),
                    json!({"KV": null}),
                    json!("notanobject"),
                    json!({"KV": "x"}),
                ],
            );
        }
        let verb = if chance(&mut self.rng, 0.95) {
            pick(&mut self.rng, TXN_VERBS)
        } else {
            pick(&mut self.rng, TXN_BAD_VERBS)
        };
        let mut rel = self.key_or_dir(false);
        // EXCLUDED until the test server is fixed, class "txn.* 409: json .Errors[].What":
        // Consul quotes keys in txn error texts with Go's %q, which escapes runes that
        // unicode.IsPrint rejects (U+00A0 as \u00a0, U+202E as \u202e); the test server writes
        // them raw. Such keys stay in the KV paths, where both answer 400.
        if rel.contains(['\u{a0}', '\u{202e}']) {
            rel = "a".into();
        }
        if verb == "delete-tree" {
            self.tree_deleted.push(rel.clone());
        }
        let mut kv = serde_json::Map::new();
        kv.insert("Verb".into(), json!(verb));
        kv.insert("Key".into(), jkey(&rel));
        let writes = ["set", "cas", "lock", "unlock"].contains(&verb);
        if (writes || chance(&mut self.rng, 0.1)) && chance(&mut self.rng, 0.9) {
            let v = if self.txn_bad_numbers || chance(&mut self.rng, 0.97) {
                json!(base64::engine::general_purpose::STANDARD.encode(self.value()))
            } else {
                pick(
                    &mut self.rng,
                    &[json!("!!!"), json!("YQ"), json!(12), json!("YQ==")],
                )
            };
            kv.insert("Value".into(), v);
        }
        if chance(&mut self.rng, 0.2) {
            let f = if self.txn_bad_numbers {
                pick(
                    &mut self.rng,
                    &[
                        json!(0),
                        json!(7),
                        json!(u64::MAX),
                        json!(-1),
                        json!("7"),
                        json!(1.5),
                    ],
                )
            } else {
                pick(&mut self.rng, &[json!(0), json!(7), json!(u64::MAX)])
            };
            kv.insert("Flags".into(), f);
        }
        if ["cas", "check-index", "delete-cas"].contains(&verb) || chance(&mut self.rng, 0.1) {
            let i = match self.rng.u8(0..if self.txn_bad_numbers { 8 } else { 6 }) {
                0..=2 => jmi(&rel, 0),
                3 => json!(0),
                4 => jmi(&rel, 1),
                5 => json!(99_999_999),
                6 => json!(-1),
                _ => json!("5"),
            };
            kv.insert("Index".into(), i);
        }
        if ["lock", "unlock", "check-session"].contains(&verb) || chance(&mut self.rng, 0.1) {
            let s = if chance(&mut self.rng, 0.9) {
                let v = self.sess_ref();
                jsess(&v)
            } else {
                json!("")
            };
            kv.insert("Session".into(), s);
        }
        let mut kv = Value::Object(kv);
        if verb == "get" && chance(&mut self.rng, 0.05) {
            // case-insensitive field names (only on a read, to stay harmless)
            kv = if chance(&mut self.rng, 0.5) {
                json!({"verb": "get", "KEY": jkey(&rel)})
            } else {
                json!({"Verb": "get", "Key": "", "key": jkey(&rel)})
            };
        }
        if ["get", "check-index", "check-not-exists"].contains(&verb) && chance(&mut self.rng, 0.03)
        {
            kv["Key"] = json!("");
        }
        if chance(&mut self.rng, 0.97) {
            json!({ "KV": kv })
        } else {
            json!({ "kv": kv })
        }
    }

    fn txn(&mut self) -> Step {
        let mut s = Step::new("txn", "PUT", vec![Part::Lit("/v1/txn")]);
        let r = self.rng.f64();
        if r < 0.03 {
            let bodies: &[&[u8]] = &[
                b"",
                b"null",
                b"[",
                b"{}",
                b"[{\"KV\": {\"Verb\": \"get\", \"Key\": 5}}]",
                b"[]",
                b"[{\"KV\": {\"Verb\": \"get\", \"Key\": \"x\"}}] junk",
            ];
            s.body = Some(Body::Raw(pick(&mut self.rng, bodies).to_vec()));
            s.kind = "txn.malformed".into();
            return s;
        }
        if r < 0.04 {
            s.method = pick(&mut self.rng, &["GET", "POST"]);
            s.kind = "txn.method".into();
            s.body = Some(Body::Raw(b"[]".to_vec()));
            return s;
        }
        if r < 0.05 {
            let n = pick(&mut self.rng, &[64, 65, 128, 129]);
            let ops: Vec<Value> = (0..n)
                .map(|_| json!({"KV": {"Verb": "get", "Key": jkey("a")}}))
                .collect();
            s.body = Some(Body::Json(Value::Array(ops), true));
            s.kind = "txn.many".into();
            return s;
        }
        // EXCLUDED until the test server is fixed, class "txn.write 400: text Failed to parse
        // body: json: cannot unmarshal ...": with a bad Flags or Index (-1, 1.5, "7", "5") and
        // a bad Value (12, "!!!", "YQ") in one body, Consul reports the first bad field in
        // document order (Go's decoder keeps the first error and reads on); the test server
        // reports the Value's. So a body gets bad numbers or bad Values, never both.
        self.txn_bad_numbers = chance(&mut self.rng, 0.5);
        let nops = pick(&mut self.rng, &[1, 1, 2, 2, 3, 4, 6]);
        let ops: Vec<Value> = (0..nops).map(|_| self.txn_op()).collect();
        let read_only = ops.iter().all(|o| {
            let kv = o.get("KV").or_else(|| o.get("kv"));
            let verb = kv.and_then(|k| k.get("Verb")).and_then(Value::as_str);
            verb.is_some_and(|v| READ_VERBS.contains(&v))
        });
        s.kind = if read_only { "txn.read" } else { "txn.write" }.into();
        let ascii = chance(&mut self.rng, 0.5);
        s.body = Some(Body::Json(Value::Array(ops), ascii));
        if chance(&mut self.rng, 0.1) {
            let (k, v) = pick(
                &mut self.rng,
                &[
                    ("stale", None),
                    ("consistent", None),
                    ("dc", lit("dc2")),
                    ("dc", lit("dc1")),
                ],
            );
            s.query.push((k, v));
        }
        s
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
