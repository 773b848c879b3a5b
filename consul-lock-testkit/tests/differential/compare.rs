//! Comparison of two normalised answers: the first difference as a mismatch class
//! (method + path shape + kind of difference) with a detail, and printable forms.

use serde_json::Value;

use super::gen::Step;
use super::norm::{Ctx, NBody, Norm, COMPARED_VALUES};

/// A short printable form of a normalised answer.
pub fn show(n: &Norm) -> String {
    match n {
        Norm::NoAnswer(e) => format!("NO ANSWER ({e})"),
        Norm::Answer(a) => {
            let hv: Vec<String> =
                a.hv.iter()
                    .filter(|(k, _)| ["content-type", "location", "allow"].contains(&k.as_str()))
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
            format!("{} [{}] {}", a.status, hv.join(", "), show_body(&a.body))
        }
    }
}

fn show_body(b: &NBody) -> String {
    let s = match b {
        NBody::Empty => "(empty)".to_string(),
        NBody::Json(v) => v.to_string(),
        NBody::Text(t) => format!("{t:?}"),
        NBody::Bytes(x) => format!("{:?}", String::from_utf8_lossy(x)),
    };
    trunc(&s, 300)
}

pub fn trunc(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

/// The first difference between two normalised answers to the same step, as a mismatch
/// class (method + path shape + kind of difference) and a detail; `None` when they agree.
pub fn compare(
    step: &Step,
    real: &Norm,
    test: &Norm,
    rctx: &Ctx,
    tctx: &Ctx,
) -> Option<(String, String)> {
    let kind = &step.kind;
    let (r, t) = match (real, test) {
        (Norm::NoAnswer(_), Norm::NoAnswer(_)) => return None,
        (Norm::NoAnswer(e), _) => return Some((format!("{kind}: real gave no answer"), e.clone())),
        (_, Norm::NoAnswer(e)) => {
            return Some((format!("{kind}: test server gave no answer"), e.clone()))
        }
        (Norm::Answer(r), Norm::Answer(t)) => (r, t),
    };
    if r.status != t.status {
        let shape = match &r.body {
            NBody::Text(x) => shape(x, 45),
            b => b.kind().to_string(),
        };
        return Some((
            format!(
                "{kind}: status {} vs {} (real: {shape})",
                r.status, t.status
            ),
            format!("real {} | test {}", show_body(&r.body), show_body(&t.body)),
        ));
    }
    let st = r.status;
    if r.names != t.names {
        let only_real: Vec<_> = r.names.difference(&t.names).cloned().collect();
        let only_test: Vec<_> = t.names.difference(&r.names).cloned().collect();
        return Some((
            format!("{kind} {st}: headers only real {only_real:?}, only test {only_test:?}"),
            String::new(),
        ));
    }
    for h in COMPARED_VALUES {
        if let (Some(a), Some(b)) = (r.hv.get(*h), t.hv.get(*h)) {
            if a != b {
                return Some((
                    format!("{kind} {st}: header {h} differs"),
                    format!("real {a:?} | test {b:?}"),
                ));
            }
        }
    }
    if let (Some(a), Some(b)) = (r.hv.get("x-consul-index"), t.hv.get("x-consul-index")) {
        if a != b {
            return Some((
                format!("{kind} {st}: X-Consul-Index not a number"),
                format!("real {a:?} | test {b:?}"),
            ));
        }
    }
    if r.body.kind() != t.body.kind() {
        return Some((
            format!(
                "{kind} {st}: body kind {} vs {}",
                r.body.kind(),
                t.body.kind()
            ),
            format!("real {} | test {}", show_body(&r.body), show_body(&t.body)),
        ));
    }
    if r.body != t.body {
        let class = match (&r.body, &t.body) {
            (NBody::Json(a), NBody::Json(b)) => {
                let (p, x, y) =
                    first_diff(a, b, "").unwrap_or_else(|| ("?".into(), Value::Null, Value::Null));
                let mut class = format!("{kind} {st}: json {}", strip_indices(&p));
                if let Value::String(s) = &x {
                    if st >= 400 || p.ends_with(".What") {
                        class.push_str(&format!(" ({})", shape(s, 60)));
                    }
                }
                return Some((
                    class,
                    format!(
                        "at {p}: real {} | test {}",
                        trunc(&x.to_string(), 200),
                        trunc(&y.to_string(), 200)
                    ),
                ));
            }
            (NBody::Text(a), _) => format!("{kind} {st}: text {}", shape(a, 60)),
            _ => format!("{kind} {st}: bytes differ"),
        };
        return Some((
            class,
            format!("real {} | test {}", show_body(&r.body), show_body(&t.body)),
        ));
    }
    if let (Some(a), Some(b)) = (&r.text, &t.text) {
        if a != b {
            let i = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
            let around = |s: &str| {
                s.chars()
                    .skip(i.saturating_sub(30))
                    .take(60)
                    .collect::<String>()
            };
            return Some((
                format!("{kind} {st}: JSON text formatting"),
                format!("real …{:?}… | test …{:?}…", around(a), around(b)),
            ));
        }
    }
    if r.sorted_by_id != t.sorted_by_id {
        return Some((format!("{kind}: list order by ID differs"), String::new()));
    }
    if let Some(w) = step.wait {
        let w = w.as_secs_f64();
        let (re, te) = (r.elapsed.as_secs_f64(), t.elapsed.as_secs_f64());
        let blocked = |e: f64| e >= 0.9 * w;
        let immediate = |e: f64| e < 0.3 * w;
        if (blocked(re) && immediate(te)) || (immediate(re) && blocked(te)) {
            let word = |e: f64| if blocked(e) { "blocked" } else { "immediate" };
            return Some((
                format!("{kind}: blocking: real {} vs test {}", word(re), word(te)),
                format!("real {re:.3}s, test {te:.3}s, wait {w}s"),
            ));
        }
    }
    // Index order relations: each new observation against every earlier one.
    let (ro, to) = (&rctx.obs, &tctx.obs);
    if ro.len() != to.len() {
        return Some((
            format!(
                "{kind} {st}: index observation count {} vs {}",
                ro.len(),
                to.len()
            ),
            String::new(),
        ));
    }
    for i in r.first_obs..ro.len() {
        for j in 0..i {
            let a = ro[i].1.cmp(&ro[j].1);
            let b = to[i].1.cmp(&to[j].1);
            if a != b {
                return Some((
                    format!(
                        "index order: {} vs earlier {}: real {a:?}, test {b:?}",
                        ro[i].0, ro[j].0
                    ),
                    format!(
                        "real {} vs {}, test {} vs {}",
                        ro[i].1, ro[j].1, to[i].1, to[j].1
                    ),
                ));
            }
        }
    }
    None
}

fn first_diff(a: &Value, b: &Value, path: &str) -> Option<(String, Value, Value)> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let p = format!("{path}.{k}");
                match (x.get(k), y.get(k)) {
                    (Some(u), Some(v)) => {
                        if let Some(d) = first_diff(u, v, &p) {
                            return Some(d);
                        }
                    }
                    (u, v) => {
                        let absent = || Value::String("<absent>".into());
                        return Some((
                            p,
                            u.cloned().unwrap_or_else(absent),
                            v.cloned().unwrap_or_else(absent),
                        ));
                    }
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Some((
                    format!("{path}[len]"),
                    Value::from(x.len()),
                    Value::from(y.len()),
                ));
            }
            x.iter()
                .zip(y)
                .enumerate()
                .find_map(|(i, (u, v))| first_diff(u, v, &format!("{path}[{i}]")))
        }
        _ if a == b => None,
        _ => Some((
            if path.is_empty() {
                "$".into()
            } else {
                path.into()
            },
            a.clone(),
            b.clone(),
        )),
    }
}

fn strip_indices(p: &str) -> String {
    let mut out = String::new();
    let mut in_idx = false;
    for c in p.chars() {
        match c {
            '[' => {
                in_idx = true;
                out.push('[');
            }
            ']' => {
                in_idx = false;
                out.push(']');
            }
            c if in_idx && c.is_ascii_digit() => {}
            c => out.push(c),
        }
    }
    out
}

/// A class signature for an error text: quoted parts and numbers elided.
fn shape(t: &str, n: usize) -> String {
    let mut out = String::new();
    let mut quote: Option<char> = None;
    let mut prev_digit = false;
    for c in t.chars() {
        if let Some(q) = quote {
            if c == q {
                out.push('…');
                out.push(q);
                quote = None;
            }
            continue;
        }
        if c == '"' || c == '\'' {
            quote = Some(c);
            out.push(c);
            prev_digit = false;
        } else if c.is_ascii_digit() {
            if !prev_digit {
                out.push('N');
            }
            prev_digit = true;
        } else {
            out.push(c);
            prev_digit = false;
        }
    }
    out.chars().take(n).collect()
}
