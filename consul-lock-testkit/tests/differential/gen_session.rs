//! Session requests: create with valid and invalid bodies, info, node, list, renew,
//! destroy (also upper-cased IDs and wrong methods).

use serde_json::{json, Value};

use super::{chance, lit, pick, Body, Gen, Part, Step, FAKE_UUID, V};

// With session_ttl_min = 1s on both servers. TTLs stay >= 10 s so that no session expires
// inside a sequence (Consul ends a session between TTL and 2 x TTL).
const TTL_OK: &[&str] = &[
    "10s", "15s", "30s", "1m", "1h", "86400s", "10000ms", "0.5m", "1h0m0s", "24h", "10.5s",
    "1m30s", "",
];
const TTL_BAD: &[&str] = &[
    "0.5s", "999ms", "86401s", "25h", "abc", "10", "1d", "-10s", "10 s", " 10s", "1e1s",
];

impl Gen {
    pub(super) fn session_create(&mut self) -> Step {
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

    pub(super) fn session_read(&mut self) -> Step {
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

    pub(super) fn session_write(&mut self) -> Step {
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

    pub(super) fn session_misc(&mut self) -> Step {
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
}
