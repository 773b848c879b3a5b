//! KV requests: PUT with flags, cas, acquire and release; GET with recurse, keys,
//! separator and raw; DELETE with recurse and cas; other methods and odd paths.

use super::{chance, lit, pick, Body, Enc, Gen, Part, Step, V};

impl Gen {
    pub(super) fn kv_put(&mut self) -> Step {
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

    pub(super) fn kv_get(&mut self) -> Step {
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
        self.read_opts(&mut s);
        s
    }

    pub(super) fn kv_delete(&mut self) -> Step {
        let rel = self.key_or_dir(true);
        let mut kind = String::from("kv.delete");
        let mut q = Vec::new();
        // Never a recursive delete through a dot segment (it could leave the prefix).
        if chance(&mut self.rng, 0.3) && !rel.split('/').any(|s| s == "." || s == "..") {
            q.push(("recurse", None));
            kind.push_str(".recurse");
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

    pub(super) fn kv_misc(&mut self) -> Step {
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
}
