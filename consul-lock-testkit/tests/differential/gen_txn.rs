//! `/v1/txn` requests: every KV verb, bad verbs and fields, malformed bodies, too many ops.

use base64::Engine as _;
use serde_json::{json, Value};

use super::{chance, jkey, jmi, jsess, lit, pick, Body, Gen, Part, Step};

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
    pub(super) fn txn_op(&mut self) -> Value {
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
        let rel = self.key_or_dir(false);
        let mut kv = serde_json::Map::new();
        kv.insert("Verb".into(), json!(verb));
        kv.insert("Key".into(), jkey(&rel));
        let writes = ["set", "cas", "lock", "unlock"].contains(&verb);
        if (writes || chance(&mut self.rng, 0.1)) && chance(&mut self.rng, 0.9) {
            let v = if chance(&mut self.rng, 0.97) {
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

    pub(super) fn txn(&mut self) -> Step {
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
        // Half the bodies may get bad Flags and Index, so that most transactions decode.
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
}
