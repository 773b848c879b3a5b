//! The election workload on the embedded test server, in the README's test command: four
//! candidate processes and two observer processes; the leader process killed (SIGKILL) and
//! paused (SIGSTOP) longer than twice the TTL, a Consul leader election, the agent frozen
//! (requests held without an answer) longer than the TTL, and a resignation. The checker
//! (`election_history::check`) fails on two processes that both believed they led, tokens out
//! of order, an observer that missed a leader or a no-leader gap, work that outlived its
//! grace or ran into the next leadership, and a fenced write applied after the next
//! leadership began; the run must leave no session and no key behind.
//!
//! It injects faults, so against a real agent (`CONSUL_HTTP_ADDR`) it skips and says so;
//! `election_cluster.rs` runs the workload on a real cluster.

use std::path::Path;
use std::time::{Duration, Instant};

use consul_lock_reliability::candidates::{ProcessSpec, Processes, Role};
use consul_lock_reliability::election_candidate::CandidateConfig;
use consul_lock_reliability::election_history::check;
use consul_lock_reliability::support::{
    client, consul, fault_server, leftovers, unique_prefix, TEST_TTL_MIN,
};

const TTL: Duration = Duration::from_secs(2);
const GRACE: Duration = Duration::from_millis(400);
/// The longest a hand-over may take here: a dead leader's session ends within 2 × TTL.
const HANDOVER_LIMIT: Duration = Duration::from_secs(10);

/// Where the leaders' fenced writes go: beside the election's prefix, not under it (the
/// leftover check covers the election's sessions and keys).
fn data_prefix(prefix: &str) -> String {
    prefix.replacen("reliability/", "reliability-data/", 1)
}

fn specs(url: &str, prefix: &str) -> Vec<ProcessSpec> {
    let key = format!("{prefix}jobs/leader");
    let mut specs: Vec<ProcessSpec> = (1..=4)
        .map(|i| ProcessSpec {
            name: format!("c{i}"),
            url: url.to_owned(),
            ttl_min: TEST_TTL_MIN,
            role: Role::Candidate(CandidateConfig {
                name: format!("c{i}"),
                key: key.clone(),
                data_key: format!("{}state", data_prefix(prefix)),
                ttl: TTL,
                grace: GRACE,
                // c4 winds down for longer than its grace: the runner cancels it.
                wind_down: if i == 4 { GRACE * 3 } else { GRACE / 4 },
            }),
        })
        .collect();
    for i in 1..=2 {
        specs.push(ProcessSpec {
            name: format!("o{i}"),
            url: url.to_owned(),
            ttl_min: TEST_TTL_MIN,
            role: Role::Observer { key: key.clone() },
        });
    }
    specs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_two_leaders_through_kills_pauses_elections_and_freezes() {
    let consul = consul();
    let Some(server) = fault_server(&consul, "election workload on the test server") else {
        return;
    };
    let client = client(&consul);
    let prefix = unique_prefix("election");
    let exe = Path::new(env!("CARGO_BIN_EXE_election-candidate"));
    let specs = specs(&consul.url(), &prefix);
    let mut procs = Processes::spawn(exe, &specs).expect("start the candidates and observers");
    let began = Instant::now();
    let mut faults = Vec::new();
    let next = |procs: &mut Processes, above: u64, what: &str| {
        procs
            .wait_new_leader(above, HANDOVER_LIMIT)
            .unwrap_or_else(|| panic!("no new leader within {HANDOVER_LIMIT:?} after {what}"))
    };

    // Round 1: the leader process is killed; it comes back as a candidate.
    let (leader, token) = next(&mut procs, 0, "the start");
    procs.run_for(Duration::from_millis(500));
    procs.kill(&leader);
    faults.push(format!("{leader} SIGKILLed"));
    let killed = leader;
    let (leader, token) = next(&mut procs, token, "the kill");
    procs
        .respawn(&killed)
        .expect("restart the killed candidate");

    // Round 2: the leader paused longer than twice the TTL, then resumed.
    procs.run_for(Duration::from_millis(500));
    procs.pause(&leader);
    let paused_at = Instant::now();
    faults.push(format!("{leader} paused {:?}", TTL * 5 / 2));
    let (new_leader, new_token) = next(&mut procs, token, "the pause");
    procs.run_for((TTL * 5 / 2).saturating_sub(paused_at.elapsed()));
    procs.resume(&leader);
    let (leader, token) = (new_leader, new_token);

    // Round 3: a Consul leader election (writes fail, then every TTL timer restarts).
    procs.run_for(Duration::from_millis(500));
    server.election_for(Duration::from_secs(1));
    faults.push("Consul election 1 s".into());
    procs.run_for(Duration::from_secs(2));

    // Round 4: the agent frozen (requests held without answer) longer than the TTL.
    server.set_stalled(true);
    faults.push(format!("agent frozen {:?}", TTL * 2));
    procs.run_for(TTL * 2);
    server.set_stalled(false);
    let (leader, token) = match procs.wait_new_leader(token, HANDOVER_LIMIT) {
        Some(new) => new,
        None => (leader, token), // the leader's lease outlived the freeze
    };

    // Round 5: the leader resigns (its process stops).
    procs.run_for(Duration::from_millis(500));
    procs.stop_one(&leader);
    faults.push(format!("{leader} resigned"));
    let _ = next(&mut procs, token, "the resignation");
    procs.run_for(Duration::from_secs(1));

    let records = procs.stop();
    let verdict = check(&records);
    println!(
        "election workload on the test server, {:.1} s, faults: {}",
        began.elapsed().as_secs_f64(),
        faults.join(", ")
    );
    println!("{}", verdict.table());
    assert!(verdict.ok(), "the election history has violations (above)");
    assert!(
        verdict.terms.len() >= 5,
        "a leader per round: {}",
        verdict.terms.len()
    );
    assert!(
        verdict.terms.iter().any(|t| t.cancelled),
        "c4's long wind-down was cancelled at the grace"
    );

    // Every process resigned or withdrew as it stopped; nothing waits for a TTL.
    let left = leftovers(&client, &prefix).await;
    assert!(left.is_empty(), "left after the run: {left:?}");
}
