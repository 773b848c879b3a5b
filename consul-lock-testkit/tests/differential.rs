//! Differential test: random request sequences over the API a lock client uses (KV with its
//! query flags and hostile keys, sessions, `/v1/txn` with every KV verb, status) run in
//! lockstep against the test server and a real Consul agent; every answer is normalised
//! (UUIDs, indexes as order relations, prefixes, leader addresses, timing headers) and
//! compared: status, body, the headers a client depends on. Any mismatch class fails the
//! test, printed once with a minimised reproducer and counted.
//!
//! The agent is one `consul agent -dev` this test starts itself (binary from `CONSUL_BIN`, else
//! `consul` on `PATH`), also when `CONSUL_HTTP_ADDR` names one: a shared agent's indexes move
//! with every other test's writes. Without a binary it says so and passes.
//!
//! Environment: `CONSUL_LOCK_DIFF_SEED` (a number, or `random`; default 1, so CI runs the same
//! sequences every time), `CONSUL_LOCK_DIFF_SEQUENCES` (default 2,500, about 60-80 s on 2 cores),
//! `CONSUL_LOCK_DIFF_ONLY` (replay one sequence index verbosely).
//!
//! A class seen once that does not show again when its sequence is run again (twice) is
//! reported as not reproduced and does not fail the run: only timing can cause that.
//!
//! Inputs the test server still answers differently are left out of the generator until it
//! is fixed, each where it is generated, with a comment starting `EXCLUDED until the test
//! server is fixed` that names its class (`differential/gen_kv.rs`, `differential/gen_txn.rs`);
//! remove the comment and its filter with the fix. What differs by nature is normalised, not
//! excluded: UUIDs, Raft indexes (compared by order; a txn `Node` op's catalog indexes not
//! at all, see `norm.rs`), key prefixes, leader addresses, `Date`, `X-Consul-LastContact`.

#[path = "differential/compare.rs"]
mod compare;
#[path = "differential/gen.rs"]
mod gen;
#[path = "differential/http.rs"]
mod http;
#[path = "differential/norm.rs"]
mod norm;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use compare::{compare, show, trunc};
use consul_lock_testkit::real::{ConsulBinary, RealAgent};
use consul_lock_testkit::{ServerConfig, TestServer};
use gen::{Gen, Step};
use http::{call, Outcome};
use norm::{Ctx, Norm};

/// Differences that are known, documented and cannot be fixed in the test server: a class
/// starting with the first text is reported but does not fail the run. Keep it empty.
const KNOWN: &[(&str, &str)] = &[];

const DEFAULT_SEED: u64 = 1;
/// About 60-80 s on a 2-core machine.
const DEFAULT_SEQUENCES: u64 = 2500;
/// Re-runs one class's minimisation may spend.
const MINIMISE_BUDGET: usize = 40;

/// The two servers under comparison.
struct Pair {
    real: SocketAddr,
    test: SocketAddr,
}

/// One step of a run as both servers saw it.
struct Exchange {
    request: String,
    real: Norm,
    test: Norm,
}

/// What one run of a sequence found: the first mismatch (step, class, detail), the transcript.
struct RunResult {
    mismatch: Option<(usize, String, String)>,
    transcript: Vec<Exchange>,
}

static PREFIXES: AtomicU64 = AtomicU64::new(0);

/// A fresh key prefix per run and server, all of the same length.
fn prefixes() -> (String, String) {
    let n = PREFIXES.fetch_add(1, Ordering::Relaxed);
    (format!("fz{:07x}0/", n), format!("fz{:07x}1/", n))
}

fn run_sequence(pair: &Pair, steps: &[Step], verbose: bool) -> RunResult {
    let (rp, tp) = prefixes();
    let (mut rctx, mut tctx) = (Ctx::new(rp), Ctx::new(tp));
    let mut transcript = Vec::new();
    let mut mismatch = None;
    for (i, step) in steps.iter().enumerate() {
        let (rm, rt, rb) = rctx.materialise(step);
        let (tm, tt, tb) = tctx.materialise(step);
        // Both at once: a blocking read costs its wait once.
        let (ro, to) = std::thread::scope(|s| {
            let r = s.spawn(|| call(pair.real, rm, &rt, rb.as_deref()));
            let t = call(pair.test, tm, &tt, tb.as_deref());
            (
                r.join()
                    .unwrap_or_else(|_| Outcome::NoAnswer("client thread panicked".into())),
                t,
            )
        });
        let rn = rctx.normalise(step, &ro);
        let tn = tctx.normalise(step, &to);
        let body = rb
            .as_deref()
            .map(|b| {
                format!(
                    "  body={}",
                    trunc(&rctx.norm_text(&String::from_utf8_lossy(b)), 400)
                )
            })
            .unwrap_or_default();
        let request = format!("{rm} {}{body}", rctx.norm_text(&rt));
        if verbose {
            let raw = |o: &Outcome| match o {
                Outcome::Answer(a) => format!(
                    "{:.3}s, X-Consul-Index {}",
                    a.elapsed.as_secs_f64(),
                    a.header("x-consul-index").unwrap_or("-")
                ),
                Outcome::NoAnswer(_) => String::new(),
            };
            println!(
                "  [{i}] {rm} {rt}\n      real {} ({})\n      test {} ({})",
                show(&rn),
                raw(&ro),
                show(&tn),
                raw(&to)
            );
        }
        let found = compare(step, &rn, &tn, &rctx, &tctx);
        transcript.push(Exchange {
            request,
            real: rn,
            test: tn,
        });
        if let Some((class, detail)) = found {
            mismatch = Some((i, class, detail));
            break;
        }
    }
    cleanup(pair.real, &rctx);
    cleanup(pair.test, &tctx);
    RunResult {
        mismatch,
        transcript,
    }
}

/// Destroys the run's sessions and deletes its prefix.
fn cleanup(addr: SocketAddr, ctx: &Ctx) {
    for id in &ctx.sessions {
        call(
            addr,
            "PUT",
            &format!("/v1/session/destroy/{}", norm::encode(id, gen::Enc::Slash)),
            None,
        );
    }
    assert!(ctx.prefix.starts_with("fz") && ctx.prefix.len() == 11 && ctx.prefix.ends_with('/'));
    call(
        addr,
        "DELETE",
        &format!("/v1/kv/{}?recurse", ctx.prefix),
        None,
    );
}

fn class_of(r: &RunResult) -> Option<&str> {
    r.mismatch.as_ref().map(|(_, c, _)| c.as_str())
}

/// Greedy removal of steps, then of the last step's query parameters, keeping the class.
fn minimise(pair: &Pair, steps: &[Step], class: &str) -> Option<(Vec<Step>, RunResult)> {
    let mut budget = MINIMISE_BUDGET;
    let mut still = |cand: &[Step]| -> Option<(usize, RunResult)> {
        if budget == 0 {
            return None;
        }
        budget -= 1;
        let r = run_sequence(pair, cand, false);
        match &r.mismatch {
            Some((at, c, _)) if c == class => Some((*at, r)),
            _ => None,
        }
    };
    let (at, mut best_run) = still(steps)?;
    let mut best: Vec<Step> = steps[..=at].to_vec();
    let mut i = 0;
    while i + 1 < best.len() {
        let mut cand = best.clone();
        cand.remove(i);
        match still(&cand) {
            Some((at, r)) => {
                best = cand[..=at].to_vec();
                best_run = r;
            }
            None => i += 1,
        }
    }
    let mut q = 0;
    while q < best.last().map_or(0, |s| s.query.len()) {
        let last = best.len() - 1;
        if best[last].query[q].0 == "wait" {
            q += 1; // ?index without ?wait blocks for minutes
            continue;
        }
        let mut cand = best.clone();
        cand[last].query.remove(q);
        match still(&cand) {
            Some((at, r)) if at == last => {
                best = cand;
                best_run = r;
            }
            _ => q += 1,
        }
    }
    Some((best, best_run))
}

fn reproducer(run: &RunResult) -> String {
    let mut lines = Vec::new();
    let n = run.transcript.len();
    for (j, x) in run.transcript.iter().enumerate() {
        lines.push(format!("    {}. {}", j + 1, x.request));
        if j + 1 == n {
            lines.push(format!("       real: {}", show(&x.real)));
            lines.push(format!("       test: {}", show(&x.test)));
        }
    }
    lines.join("\n")
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    if v == "random" {
        return Some(fastrand::u64(..1_000_000));
    }
    match v.parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={v:?} is not a number (or `random`); unset it or give one"),
    }
}

/// The agent's node name, from `/v1/agent/self`.
fn node_name(addr: SocketAddr) -> String {
    let Outcome::Answer(r) = call(addr, "GET", "/v1/agent/self", None) else {
        panic!("the real agent did not answer /v1/agent/self");
    };
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    match v["Config"]["NodeName"].as_str() {
        Some(n) => n.to_string(),
        None => panic!(
            "no Config.NodeName in the agent's /v1/agent/self: {}",
            String::from_utf8_lossy(&r.body)
        ),
    }
}

/// Waits (with blocking queries on the catalog, not a timer) until the agent has registered
/// its own node: it does that shortly after it elects itself, at a Raft index that would
/// otherwise fall among the first sequences' writes and make the node's indexes (read by
/// txn `Node` ops) order differently against them than the test server's fixed ones.
fn wait_for_node_registration(addr: SocketAddr, node: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut index = String::from("0");
    while Instant::now() < deadline {
        let target = format!("/v1/catalog/node/{node}?index={index}&wait=2s");
        if let Outcome::Answer(r) = call(addr, "GET", &target, None) {
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            if v["Node"]["Node"].as_str() == Some(node) {
                return;
            }
            index = r.header("x-consul-index").unwrap_or("0").to_string();
        }
    }
    panic!("the real agent did not register its node {node:?} in its catalog within 30 s");
}

/// Both servers get a session, a held key and 150 more writes, so that every index is past
/// the small numbers error texts contain (such as 64 in "too many operations").
fn warm_up(addr: SocketAddr) {
    let Outcome::Answer(r) = call(addr, "PUT", "/v1/session/create", Some(br#"{"TTL": "1h"}"#))
    else {
        panic!("warm-up: no answer from {addr}");
    };
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
    let id = v["ID"].as_str().unwrap_or_else(|| {
        panic!(
            "warm-up: session create on {addr}: {}",
            String::from_utf8_lossy(&r.body)
        )
    });
    call(
        addr,
        "PUT",
        &format!("/v1/kv/warm/held?acquire={id}"),
        Some(b"w"),
    );
    for i in 0..150 {
        call(addr, "PUT", &format!("/v1/kv/warm/{}", i % 10), Some(b"w"));
    }
}

#[derive(Default)]
struct Class {
    count: usize,
    first_seq: u64,
    detail: String,
    repro: String,
}

#[test]
fn the_test_server_answers_as_a_real_consul_agent() {
    let Some(bin) = ConsulBinary::find() else {
        eprintln!(
            "skipped the differential test: no Consul binary found (set CONSUL_BIN to its path or put \
             consul on PATH); it starts its own dev agent, CONSUL_HTTP_ADDR alone is not used"
        );
        return;
    };
    let agent = RealAgent::start_dev(&bin)
        .unwrap_or_else(|e| panic!("could not start a Consul dev agent: {e}"));
    let node = node_name(agent.addr());
    let server = TestServer::start_with(
        ServerConfig::default()
            .session_ttl_min(Duration::from_secs(1))
            .node_name(&node),
    )
    .unwrap_or_else(|e| panic!("could not start the test server: {e}"));
    let pair = Pair {
        real: agent.addr(),
        test: server.addr(),
    };
    wait_for_node_registration(pair.real, &node);
    std::thread::scope(|s| {
        s.spawn(|| warm_up(pair.real));
        warm_up(pair.test);
    });

    let seed = env_u64("CONSUL_LOCK_DIFF_SEED").unwrap_or(DEFAULT_SEED);
    let count = env_u64("CONSUL_LOCK_DIFF_SEQUENCES").unwrap_or(DEFAULT_SEQUENCES);
    println!(
        "differential: {} at {} (node {node}) vs the test server at {}; seed {seed}, {count} sequences \
         (CONSUL_LOCK_DIFF_SEED / CONSUL_LOCK_DIFF_SEQUENCES to change)",
        bin.path().display(),
        pair.real,
        pair.test
    );
    if let Some(only) = env_u64("CONSUL_LOCK_DIFF_ONLY") {
        let r = run_sequence(&pair, &Gen::sequence(seed, only, &node), true);
        if let Some((at, class, detail)) = &r.mismatch {
            panic!("sequence {only}: mismatch at step {at}: {class}\n  {detail}");
        }
        return;
    }

    let started = Instant::now();
    let mut classes: BTreeMap<String, Class> = BTreeMap::new();
    let mut not_reproduced: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let (mut steps_sent, mut stopped) = (0usize, 0usize);
    // What the generator reached: per step kind, Consul's statuses (0: no answer).
    let mut coverage: BTreeMap<String, BTreeMap<u16, usize>> = BTreeMap::new();
    for idx in 0..count {
        if idx > 0 && idx % 500 == 0 {
            println!("... {idx} sequences, {:.0?}", started.elapsed());
        }
        let steps = Gen::sequence(seed, idx, &node);
        let r = run_sequence(&pair, &steps, false);
        steps_sent += r.transcript.len();
        for (step, x) in steps.iter().zip(&r.transcript) {
            let status = match &x.real {
                Norm::Answer(a) => a.status,
                Norm::NoAnswer(_) => 0,
            };
            *coverage
                .entry(step.kind.clone())
                .or_default()
                .entry(status)
                .or_default() += 1;
        }
        let Some((_, class, detail)) = r.mismatch.clone() else {
            continue;
        };
        stopped += 1;
        if let Some(c) = classes.get_mut(&class) {
            c.count += 1;
            continue;
        }
        if let Some(c) = not_reproduced.get_mut(&class) {
            c.0 += 1;
            continue;
        }
        // A new class: does it show again?
        let again = (0..2).any(|_| class_of(&run_sequence(&pair, &steps, false)) == Some(&class));
        if !again {
            println!("[seq {idx}] not reproduced: {class} :: {detail}");
            not_reproduced.insert(class, (1, detail));
            continue;
        }
        let repro = match minimise(&pair, &steps, &class) {
            Some((_, run)) => reproducer(&run),
            None => reproducer(&r),
        };
        println!("[seq {idx}] NEW CLASS: {class}\n  {detail}\n{repro}");
        classes.insert(
            class,
            Class {
                count: 1,
                first_seq: idx,
                detail,
                repro,
            },
        );
    }
    let elapsed = started.elapsed();
    println!(
        "\ndifferential: seed {seed}: {count} sequences, {steps_sent} steps compared, {stopped} sequences \
         stopped by a mismatch, {} classes, {} not reproduced, {elapsed:.1?}",
        classes.len(),
        not_reproduced.len()
    );
    println!("coverage (step kind: Consul's status x count):");
    for (kind, statuses) in &coverage {
        let list: Vec<String> = statuses.iter().map(|(st, n)| format!("{st}x{n}")).collect();
        println!("  {kind}: {}", list.join(" "));
    }
    for (class, (n, detail)) in &not_reproduced {
        println!("  not reproduced [{n}]: {class} :: {detail}");
    }
    let mut failing = Vec::new();
    for (class, c) in &classes {
        let known = KNOWN.iter().find(|(k, _)| class.starts_with(k));
        match known {
            Some((_, why)) => println!("\n[{}] known: {class} ({why})", c.count),
            None => failing.push(class.clone()),
        }
        println!(
            "\n[{}] {class}   (first: seq {})\n  {}\n{}",
            c.count, c.first_seq, c.detail, c.repro
        );
    }
    assert!(
        failing.is_empty(),
        "the test server and Consul differ in {} classes (seed {seed}; each printed above with a reproducer; \
         replay one with CONSUL_LOCK_DIFF_SEED={seed} CONSUL_LOCK_DIFF_ONLY=<seq>):\n  {}",
        failing.len(),
        failing.join("\n  ")
    );
}
