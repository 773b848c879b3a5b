//! Replays the transcripts recorded from a real Consul 1.10.12 agent (`tests/conformance/`)
//! against the test server and compares by the rules of the transcripts' README: statuses and
//! error texts equal, JSON compared as values with UUIDs mapped (the n-th new UUID of the
//! replay stands where the n-th new UUID of the recording stood), index values compared by
//! their relations, `LastContact`/`Node`/leader address by type, blocking and held requests
//! timed within ±150 ms, `concurrent` notes executed, `fault` steps (made on the real agent by
//! the recorded request) made with the test server's fault injection instead. The body's formatting is compared too,
//! with digits and hex runs (indexes, UUIDs) folded.
//!
//! Scaled scenarios (documented in the README): `session_ttl_expiry` and
//! `session_renew_keeps_alive` run with a 1 s TTL instead of 10 s (server `session_ttl_min`
//! 1 s), their sleeps and the observed expiry scaled by 1/10; `no_leader` runs with a 700 ms
//! `leaderless_hold` instead of 7 s, its held requests' durations scaled by 1/10.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use consul_lock_testkit::{AclConfig, AclToken, NodeHealth, ServerConfig, TestServer};
use serde_json::Value;

const MARGIN_MS: f64 = 150.0;

/// How one scenario is run.
#[derive(Clone, Copy)]
struct Plan {
    /// Factor applied to recorded durations (sleeps, held requests, observations).
    time_scale: f64,
    /// Replace `"TTL": "10s"` by `"TTL": "1s"` in requests and expected responses.
    ttl_1s: bool,
    leaderless: bool,
}

fn plan_for(name: &str) -> Plan {
    let normal = Plan {
        time_scale: 1.0,
        ttl_1s: false,
        leaderless: false,
    };
    match name {
        "session_ttl_expiry" | "session_renew_keeps_alive" => Plan {
            time_scale: 0.1,
            ttl_1s: true,
            ..normal
        },
        "no_leader" => Plan {
            time_scale: 0.1,
            leaderless: true,
            ..normal
        },
        _ => normal,
    }
}

/// Comparison state carried across the steps of a scenario.
#[derive(Default)]
struct Cmp {
    /// recorded UUID -> replay UUID
    uuids: HashMap<String, String>,
    /// replay UUID -> recorded UUID
    rev: HashMap<String, String>,
    /// (recorded, replay, where) for every index value seen
    indexes: Vec<(u64, u64, String)>,
    errors: Vec<String>,
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Splits a text into literal parts and UUIDs.
fn split_uuids(s: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut lit = String::new();
    let mut i = 0;
    while i < b.len() {
        if i + 36 <= b.len()
            && s.is_char_boundary(i)
            && s.is_char_boundary(i + 36)
            && is_uuid(&s[i..i + 36])
        {
            if !lit.is_empty() {
                out.push((false, std::mem::take(&mut lit)));
            }
            out.push((true, s[i..i + 36].to_string()));
            i += 36;
        } else {
            let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
            lit.push(ch);
            i += ch.len_utf8().max(1);
        }
    }
    if !lit.is_empty() {
        out.push((false, lit));
    }
    out
}

impl Cmp {
    fn uuid(&mut self, rec: &str, got: &str, at: &str) {
        match self.uuids.get(rec) {
            Some(m) if m == got => {}
            Some(m) => self.errors.push(format!(
                "{at}: UUID {got} stands where the recording's {rec} (= replay {m}) stood"
            )),
            None => {
                if let Some(other) = self.rev.get(got) {
                    self.errors.push(format!(
                        "{at}: replay UUID {got} already stood for {other}, now for {rec}"
                    ));
                    return;
                }
                self.uuids.insert(rec.to_string(), got.to_string());
                self.rev.insert(got.to_string(), rec.to_string());
            }
        }
    }

    fn text(&mut self, rec: &str, got: &str, at: &str) {
        let a = split_uuids(rec);
        let b = split_uuids(got);
        if a.len() != b.len() {
            self.errors
                .push(format!("{at}: text {got:?} != recorded {rec:?}"));
            return;
        }
        for ((ua, ta), (ub, tb)) in a.iter().zip(b.iter()) {
            if ua != ub || (!ua && ta != tb) {
                self.errors
                    .push(format!("{at}: text {got:?} != recorded {rec:?}"));
                return;
            }
            if *ua {
                self.uuid(ta, tb, at);
            }
        }
    }

    fn index(&mut self, rec: u64, got: u64, at: &str) {
        self.indexes.push((rec, got, at.to_string()));
    }

    fn json(&mut self, rec: &Value, got: &Value, at: &str, field: &str) {
        match field {
            "CreateIndex" | "ModifyIndex" | "Index" => {
                match (rec.as_u64(), got.as_u64()) {
                    (Some(a), Some(b)) => self.index(a, b, at),
                    _ => self
                        .errors
                        .push(format!("{at}: {field} {got} vs recorded {rec}")),
                }
                return;
            }
            "LastContact" | "Node" => {
                if std::mem::discriminant(rec) != std::mem::discriminant(got) {
                    self.errors
                        .push(format!("{at}: {field} {got} is not of the type of {rec}"));
                }
                return;
            }
            _ => {}
        }
        match (rec, got) {
            (Value::Object(a), Value::Object(b)) => {
                let mut ka: Vec<&String> = a.keys().collect();
                let mut kb: Vec<&String> = b.keys().collect();
                ka.sort();
                kb.sort();
                if ka != kb {
                    self.errors
                        .push(format!("{at}: fields {kb:?} != recorded {ka:?}"));
                    return;
                }
                for (k, va) in a {
                    if let Some(vb) = b.get(k) {
                        self.json(va, vb, &format!("{at}.{k}"), k);
                    }
                }
            }
            (Value::Array(a), Value::Array(b)) => {
                if a.len() != b.len() {
                    self.errors.push(format!(
                        "{at}: {} elements != recorded {}",
                        b.len(),
                        a.len()
                    ));
                    return;
                }
                for (i, (va, vb)) in a.iter().zip(b.iter()).enumerate() {
                    self.json(va, vb, &format!("{at}[{i}]"), "");
                }
            }
            (Value::String(a), Value::String(b)) => self.text(a, b, at),
            (a, b) if a == b => {}
            (a, b) => self.errors.push(format!("{at}: {b} != recorded {a}")),
        }
    }

    /// Every pair of index values must relate in the replay as in the recording.
    fn check_relations(&mut self) {
        let v = &self.indexes;
        for i in 0..v.len() {
            for j in i + 1..v.len() {
                let (ra, pa, wa) = &v[i];
                let (rb, pb, wb) = &v[j];
                if ra.cmp(rb) != pa.cmp(pb) {
                    self.errors.push(format!(
                        "index relation broken: recorded {ra} ({wa}) vs {rb} ({wb}) is {:?}, replay {pa} vs {pb} is {:?}",
                        ra.cmp(rb),
                        pa.cmp(pb)
                    ));
                }
            }
        }
    }
}

/// The body's layout with digits and hex runs folded and `Node` values (compared by type)
/// blanked, to compare formatting byte for byte.
fn shape(s: &str) -> String {
    let mut s = s.to_string();
    let mut from = 0;
    while let Some(p) = s[from..].find("\"Node\": \"") {
        let start = from + p + "\"Node\": \"".len();
        let end = s[start..].find('"').map_or(s.len(), |e| start + e);
        s.replace_range(start..end, "");
        from = start;
    }
    let mut out = String::new();
    let mut in_run = false;
    for c in s.chars() {
        if c.is_ascii_hexdigit() || c == '-' || c == '.' || c == ':' {
            if !in_run {
                out.push('#');
                in_run = true;
            }
        } else {
            in_run = false;
            out.push(c);
        }
    }
    out
}

/// What the replay got.
struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    elapsed_ms: f64,
}

fn relevant(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "content-type" || n == "location" || n.starts_with("x-consul-")
}

/// Compares one exchange. `path` is the request path (to spot lists and leader reads).
fn compare(cmp: &mut Cmp, at: &str, path: &str, rec: &Value, got: &Got) {
    let rstatus = rec["status"].as_u64().unwrap_or(0) as u16;
    if rstatus != got.status {
        cmp.errors.push(format!(
            "{at}: status {} != recorded {rstatus} (body {:?})",
            got.status, got.body
        ));
        return;
    }
    // Headers.
    let mut rh: HashMap<String, String> = HashMap::new();
    if let Some(h) = rec["headers"].as_object() {
        for (k, v) in h {
            rh.insert(k.to_ascii_lowercase(), v.as_str().unwrap_or("").to_string());
        }
    }
    // The first 17 transcripts were recorded by a recorder that left out
    // `X-Consul-Query-Backend` (Consul 1.10.12 sends it on every blocking read); it is
    // compared where the transcript has it.
    let old_recorder = !rh.contains_key("x-consul-query-backend");
    let gh: HashMap<String, String> = got
        .headers
        .iter()
        .filter(|(k, _)| relevant(k))
        .filter(|(k, _)| !(old_recorder && k.eq_ignore_ascii_case("x-consul-query-backend")))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    let mut rk: Vec<&String> = rh.keys().collect();
    let mut gk: Vec<&String> = gh.keys().collect();
    rk.sort();
    gk.sort();
    if rk != gk {
        cmp.errors
            .push(format!("{at}: headers {gk:?} != recorded {rk:?}"));
    }
    for (k, rv) in &rh {
        let Some(gv) = gh.get(k) else { continue };
        match k.as_str() {
            "x-consul-index" => match (rv.parse::<u64>(), gv.parse::<u64>()) {
                (Ok(a), Ok(b)) => cmp.index(a, b, &format!("{at} X-Consul-Index")),
                _ => cmp.errors.push(format!("{at}: X-Consul-Index {gv:?}")),
            },
            "x-consul-lastcontact" => {
                if gv.parse::<u64>().is_err() {
                    cmp.errors
                        .push(format!("{at}: X-Consul-LastContact {gv:?} is not a number"));
                }
            }
            _ => {
                if rv != gv {
                    cmp.errors
                        .push(format!("{at}: header {k}: {gv:?} != recorded {rv:?}"));
                }
            }
        }
    }
    // Body.
    let rbody = rec["body"].as_str().unwrap_or("");
    let rjson = serde_json::from_str::<Value>(rbody);
    let gjson = serde_json::from_str::<Value>(&got.body);
    let leader_read = path.starts_with("/v1/status/");
    match (rjson, gjson) {
        (Ok(mut r), Ok(mut g)) if !rbody.is_empty() => {
            if leader_read {
                let same_type =
                    |a: &Value, b: &Value| std::mem::discriminant(a) == std::mem::discriminant(b);
                let empty_leader = r.as_str() == Some("");
                if !same_type(&r, &g) || (empty_leader && g.as_str() != Some("")) {
                    cmp.errors
                        .push(format!("{at}: {g} is not like recorded {r}"));
                }
                return;
            }
            if path.starts_with("/v1/session/list") {
                // Only the sessions the scenario created.
                if let (Value::Array(ra), Value::Array(ga)) = (&mut r, &mut g) {
                    let known: Vec<String> = cmp.uuids.keys().cloned().collect();
                    ra.retain(|e| {
                        e["ID"]
                            .as_str()
                            .is_some_and(|id| known.iter().any(|k| k == id))
                    });
                    let mapped: Vec<String> = cmp.uuids.values().cloned().collect();
                    ga.retain(|e| {
                        e["ID"]
                            .as_str()
                            .is_some_and(|id| mapped.iter().any(|k| k == id))
                    });
                    // Consul lists sessions in the order of their (random) IDs: compare each
                    // recorded session with the replay's session that stands for it.
                    let place = |e: &Value| {
                        let id = e["ID"].as_str().unwrap_or("");
                        let recorded = cmp.rev.get(id).map_or("", String::as_str);
                        ra.iter().position(|r| r["ID"].as_str() == Some(recorded))
                    };
                    ga.sort_by_key(place);
                }
            } else if shape(rbody) != shape(&got.body) {
                cmp.errors.push(format!(
                    "{at}: body formatting differs:\n{}\nrecorded:\n{rbody}",
                    got.body
                ));
            }
            cmp.json(&r, &g, at, "");
        }
        _ => cmp.text(rbody, &got.body, &format!("{at} body")),
    }
}

fn substitute(s: &str, vars: &HashMap<String, String>) -> String {
    let mut out = s.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    out
}

/// Evaluates a capture path like `json:[0].ModifyIndex` or `header:X-Consul-Index`; a spec
/// ending in `|upper` takes the value upper-cased (`session_id_case`), one ending in `|next`
/// the number after it (an index a blocking read waits to pass, `failed_writes_take_an_index`).
fn capture(spec: &str, headers: &[(String, String)], body: &str) -> Option<String> {
    if let Some(inner) = spec.strip_suffix("|upper") {
        return capture(inner, headers, body).map(|v| v.to_uppercase());
    }
    if let Some(inner) = spec.strip_suffix("|next") {
        let n: u64 = capture(inner, headers, body)?.parse().ok()?;
        return Some((n + 1).to_string());
    }
    if let Some(h) = spec.strip_prefix("header:") {
        return headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(h))
            .map(|(_, v)| v.clone());
    }
    let path = spec.strip_prefix("json:")?;
    let mut v: Value = serde_json::from_str(body).ok()?;
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let i: usize = r[..end].parse().ok()?;
            v = v.get(i)?.clone();
            rest = &r[end + 1..];
        } else if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            v = v.get(&r[..end])?.clone();
            rest = &r[end..];
        } else {
            return None;
        }
    }
    Some(match v {
        Value::String(s) => s,
        other => other.to_string(),
    })
}

fn scale_ttl(s: &str, plan: Plan) -> String {
    if plan.ttl_1s {
        s.replace("\"TTL\": \"10s\"", "\"TTL\": \"1s\"")
    } else {
        s.to_string()
    }
}

async fn send(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    body: Option<String>,
    token: Option<&str>,
) -> Got {
    let start = Instant::now();
    let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut rb = client.request(m, format!("{base}{path}"));
    if let Some(t) = token.filter(|t| !t.is_empty()) {
        rb = rb.header("X-Consul-Token", t);
    }
    if let Some(b) = body {
        rb = rb.body(b);
    }
    let resp = rb
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = resp.text().await.unwrap_or_default();
    Got {
        status,
        headers,
        body,
        elapsed_ms: start.elapsed().as_secs_f64() * 1000.0,
    }
}

fn server_for(name: &str, doc: &Value, plan: Plan) -> TestServer {
    let mut config = ServerConfig::default();
    if plan.ttl_1s {
        config = config.session_ttl_min(Duration::from_secs(1));
    }
    if plan.leaderless {
        config = config.leaderless_hold(Duration::from_millis(700));
    }
    if let Some(node) = doc["server"]["node_name"].as_str() {
        // The recording names the agent's node in its requests (`txn_limits`).
        config = config.node_name(node);
    }
    if doc["server"]["acl_default_policy"].is_string() {
        // The setup steps create a policy and a token; start with the equivalent token.
        let mut acl = if doc["server"]["acl_default_policy"] == "deny" {
            AclConfig::deny_by_default()
        } else {
            AclConfig::allow_by_default()
        };
        if let Some(m) = doc["server"]["management_token"].as_str() {
            acl = acl.management_token(m);
        }
        let steps = doc["steps"].as_array().expect("steps");
        let rules = steps
            .iter()
            .find(|s| s["request"]["path"] == "/v1/acl/policy")
            .and_then(|s| serde_json::from_str::<Value>(s["request"]["body"].as_str()?).ok())
            .and_then(|b| b["Rules"].as_str().map(String::from))
            .expect("policy rules");
        let tok = steps
            .iter()
            .find(|s| s["request"]["path"] == "/v1/acl/token")
            .and_then(|s| capture("json:.SecretID", &[], s["response"]["body"].as_str()?))
            .expect("token secret");
        acl = acl.token(AclToken::from_rules(&tok, &rules).expect("rules parse"));
        config = config.acl(acl);
    }
    let server = TestServer::start_with(config).unwrap_or_else(|e| panic!("{name}: {e}"));
    if plan.leaderless {
        server.set_leaderless(true);
    }
    server
}

async fn replay(name: &str, text: &str) {
    let doc: Value = serde_json::from_str(text).expect("transcript parses");
    let plan = plan_for(name);
    let server = server_for(name, &doc, plan);
    let base = server.url();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .expect("client");
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert(
        "prefix".into(),
        doc["prefix"].as_str().unwrap_or("").to_string(),
    );
    if let Some(v) = doc["vars"].as_object() {
        for (k, val) in v {
            vars.insert(k.clone(), val.as_str().unwrap_or("").to_string());
        }
    }
    let mut cmp = Cmp::default();
    let mut pending_concurrent: Option<Value> = None;
    let mut last_write_start: Option<Instant> = None;
    let steps = doc["steps"].as_array().expect("steps").clone();
    for (n, step) in steps.iter().enumerate() {
        let label = step["label"].as_str().unwrap_or("");
        let at = format!("{name} step {n} ({label})");
        if let Some(ms) = step["sleep_ms"].as_f64() {
            tokio::time::sleep(Duration::from_secs_f64(ms * plan.time_scale / 1000.0)).await;
            continue;
        }
        if step.get("note").is_some() {
            pending_concurrent = step.get("concurrent").cloned();
            continue;
        }
        if let Some(secs) = step["observation"].as_str().and(step["seconds"].as_f64()) {
            // Wait for the un-renewed session to go and check when it went: between the TTL
            // and twice the TTL after the acquire (scaled).
            let start = last_write_start.unwrap_or_else(Instant::now);
            let ttl = 10.0 * plan.time_scale;
            let limit = Duration::from_secs_f64(secs * plan.time_scale + 1.0);
            let s1 = vars.get("s1").cloned().unwrap_or_default();
            loop {
                let got = send(
                    &client,
                    &base,
                    "GET",
                    &format!("/v1/session/info/{s1}"),
                    None,
                    None,
                )
                .await;
                if got.body.trim() == "[]" {
                    break;
                }
                assert!(
                    start.elapsed() < limit,
                    "{at}: session not invalidated after {limit:?}"
                );
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            let took = start.elapsed().as_secs_f64();
            assert!(
                took >= ttl && took <= 2.0 * ttl + MARGIN_MS / 1000.0,
                "{at}: invalidated after {took:.2}s, expected between TTL {ttl}s and 2xTTL"
            );
            continue;
        }
        if let Some(fault) = step.get("fault") {
            // Made on the real agent through the recorded request; here by fault injection.
            match (
                fault["node_health"].as_str(),
                fault["node"].as_str(),
                fault["acl_token_deleted"].as_str(),
            ) {
                (Some("critical"), _, _) => drop(server.set_node_health(NodeHealth::Critical)),
                (Some("passing"), _, _) => drop(server.set_node_health(NodeHealth::Passing)),
                (_, Some("deregistered"), _) => drop(server.deregister_node()),
                (_, Some("registered"), _) => server.register_node(),
                (_, _, Some(var)) => {
                    let secret = vars.get(var).unwrap_or_else(|| panic!("{at}: no {var}"));
                    assert!(server.revoke_token(secret), "{at}: the server has no ACLs");
                }
                _ => panic!("{at}: unknown fault {fault}"),
            }
            continue;
        }
        let Some(req) = step.get("request") else {
            continue;
        };
        let path = substitute(req["path"].as_str().unwrap_or(""), &vars);
        if step["setup"] == true && path.starts_with("/v1/acl/") {
            // Replaced by the server's start-up tokens; keep the recorded captures.
            if let Some(c) = step["capture"].as_object() {
                for (k, spec) in c {
                    if let Some(v) = capture(
                        spec.as_str().unwrap_or(""),
                        &[],
                        step["response"]["body"].as_str().unwrap_or(""),
                    ) {
                        vars.insert(k.clone(), v);
                    }
                }
            }
            continue;
        }
        let method = req["method"].as_str().unwrap_or("GET");
        let body = if let Some(rep) = req.get("body_repeat") {
            let ch = rep["char"].as_str().unwrap_or("x");
            Some(ch.repeat(rep["count"].as_u64().unwrap_or(0) as usize))
        } else {
            req["body"]
                .as_str()
                .map(|b| scale_ttl(&substitute(b, &vars), plan))
        };
        let token = req["token"].as_str().map(|t| substitute(t, &vars));
        // A concurrent request noted before this one starts `after_ms` after it.
        let concurrent = pending_concurrent.take().map(|c| {
            let client = client.clone();
            let base = base.clone();
            let m = c["method"].as_str().unwrap_or("PUT").to_string();
            let p = substitute(c["path"].as_str().unwrap_or(""), &vars);
            let b = c["body"].as_str().map(|b| substitute(b, &vars));
            let after = c["after_ms"].as_f64().unwrap_or(0.0);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs_f64(after / 1000.0)).await;
                send(&client, &base, &m, &p, b, None).await
            })
        });
        if method != "GET" {
            last_write_start = Some(Instant::now());
        }
        let got = send(&client, &base, method, &path, body, token.as_deref()).await;
        if let Some(h) = concurrent {
            let c = h.await.expect("concurrent request");
            assert!(
                c.status < 300,
                "{at}: concurrent request failed: {} {}",
                c.status,
                c.body
            );
        }
        let mut expected = step["response"].clone();
        if let Some(b) = expected["body"].as_str() {
            expected["body"] = Value::String(scale_ttl(b, plan));
        }
        compare(&mut cmp, &at, &path, &expected, &got);
        // Timing: blocking and held requests within the margin, the others promptly.
        let rec_ms = step["elapsed_ms"].as_f64().unwrap_or(0.0);
        let scale = if rec_ms > 5000.0 {
            plan.time_scale
        } else {
            1.0
        };
        let want = rec_ms * scale;
        if want >= 300.0 {
            if (got.elapsed_ms - want).abs() > MARGIN_MS {
                cmp.errors.push(format!(
                    "{at}: took {:.0} ms, recorded {want:.0} ms (±{MARGIN_MS})",
                    got.elapsed_ms
                ));
            }
        } else if got.elapsed_ms > 250.0 {
            cmp.errors.push(format!(
                "{at}: took {:.0} ms, recorded {rec_ms} ms",
                got.elapsed_ms
            ));
        }
        if let Some(c) = step["capture"].as_object() {
            for (k, spec) in c {
                match capture(spec.as_str().unwrap_or(""), &got.headers, &got.body) {
                    Some(v) => {
                        vars.insert(k.clone(), v);
                    }
                    None => cmp
                        .errors
                        .push(format!("{at}: cannot capture {k} ({spec})")),
                }
            }
        }
    }
    cmp.check_relations();
    assert!(
        cmp.errors.is_empty(),
        "{name}: {} difference(s) from the recording:\n{}",
        cmp.errors.len(),
        cmp.errors.join("\n")
    );
    drop(server);
}

macro_rules! transcripts {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                replay(
                    stringify!($name),
                    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance/", stringify!($name), ".json")),
                )
                .await;
            }
        )*
        const ALL: &[&str] = &[$(stringify!($name)),*];
    };
}

transcripts!(
    acl_denials,
    acl_token_deleted,
    blocking_on_lock_release,
    blocking_query,
    failed_writes_take_an_index,
    kv_acquire_invalid_session,
    kv_acquire_release,
    kv_basic,
    kv_query_checks,
    kv_special_keys,
    kv_tree_tombstones,
    lock_delay,
    mux_paths,
    no_leader,
    session_create_decoding,
    session_create_invalid,
    session_destroy_behavior_delete,
    session_id_case,
    session_lifecycle,
    session_node_deregistered,
    session_node_health,
    session_renew_keeps_alive,
    session_ttl_expiry,
    status_leader,
    txn_check_session,
    txn_error_texts,
    txn_limits,
    txn_lock,
    txn_lock_delay,
    url_filter,
);

#[test]
fn every_transcript_is_replayed() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/conformance");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("conformance dir")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".json")
                .map(String::from)
        })
        .collect();
    files.sort();
    let mut all: Vec<String> = ALL.iter().map(|s| s.to_string()).collect();
    all.sort();
    assert_eq!(files, all);
}

/// The comparator must notice a server that answers differently from the recording.
#[test]
fn comparator_detects_altered_responses() {
    let doc: Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/conformance/kv_acquire_release.json"
    )))
    .expect("parses");
    let step = &doc["steps"][3]; // GET of the held key
    let rec = &step["response"];
    let good_body = rec["body"].as_str().expect("body").to_string();
    let headers = |idx: &str| -> Vec<(String, String)> {
        vec![
            ("content-type".into(), "application/json".into()),
            ("x-consul-index".into(), idx.into()),
            ("x-consul-knownleader".into(), "true".into()),
            ("x-consul-lastcontact".into(), "0".into()),
            ("x-consul-default-acl-policy".into(), "allow".into()),
        ]
    };
    let run = |body: String, status: u16, hdrs: Vec<(String, String)>| -> Vec<String> {
        let mut cmp = Cmp::default();
        let got = Got {
            status,
            headers: hdrs,
            body,
            elapsed_ms: 1.0,
        };
        compare(&mut cmp, "t", "/v1/kv/x", rec, &got);
        cmp.check_relations();
        cmp.errors
    };
    // The recording itself passes.
    assert_eq!(
        run(good_body.clone(), 200, headers("6711")),
        Vec::<String>::new()
    );
    // A different LockIndex, a missing Session, another status, a missing header, an index
    // relation broken (ModifyIndex no longer equal to X-Consul-Index), 2-space indentation.
    let altered = [
        (
            good_body.replace("\"LockIndex\": 1", "\"LockIndex\": 2"),
            200,
            headers("6711"),
        ),
        (
            good_body.replace("\"Session\"", "\"Sessions\""),
            200,
            headers("6711"),
        ),
        (good_body.clone(), 404, headers("6711")),
        (good_body.clone(), 200, headers("6711")[..2].to_vec()),
        (good_body.clone(), 200, headers("6712")),
        (good_body.replace("    ", "  "), 200, headers("6711")),
    ];
    for (i, (body, status, h)) in altered.into_iter().enumerate() {
        assert!(
            !run(body, status, h).is_empty(),
            "alteration {i} went unnoticed"
        );
    }
    // UUIDs are mapped consistently: one recorded UUID cannot stand for two replay UUIDs.
    let mut cmp = Cmp::default();
    cmp.text(
        "id 2826b3f3-6d27-baaf-33fc-aa51e9062ebc",
        "id 11111111-6d27-baaf-33fc-aa51e9062ebc",
        "a",
    );
    cmp.text(
        "id 2826b3f3-6d27-baaf-33fc-aa51e9062ebc",
        "id 22222222-6d27-baaf-33fc-aa51e9062ebc",
        "b",
    );
    assert_eq!(cmp.errors.len(), 1);
}
