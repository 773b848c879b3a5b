//! The election workload on a real Consul cluster (3 servers and a client agent, started by
//! the testkit's `real` harness): four candidate processes (two through the client agent, two
//! straight to server agents, as small deployments do) and two observers (client agent, a
//! server). Faults, one after another: the leader process killed (SIGKILL), the leader process
//! paused longer than twice the TTL, Consul's leader server killed (and restarted), the
//! client agent killed for twice the TTL (its candidates and observer cut off) and restarted,
//! the client agent frozen (`SIGSTOP`) for twice the TTL, and a resignation. The checker is `election_history::check`, as on the test server
//! (`election_testserver.rs`); nothing may be left in Consul.
//!
//! It needs a Consul binary (`CONSUL_BIN`, or `consul` on `PATH`, or the project's
//! `../shared/consul/consul`) and says plainly that it skipped without one.

use std::path::Path;
use std::time::{Duration, Instant};

use consul_lock::Client;
use consul_lock_reliability::candidates::{ProcessSpec, Processes, Role};
use consul_lock_reliability::election_candidate::CandidateConfig;
use consul_lock_reliability::election_history::check;
use consul_lock_reliability::support::{leftovers, run, unique_prefix};
use consul_lock_testkit::real::{ConsulBinary, RealCluster};

const TTL: Duration = Duration::from_secs(3);
const GRACE: Duration = Duration::from_millis(600);
/// The cluster's `session_ttl_min`.
const TTL_MIN: Duration = Duration::from_secs(1);
/// The longest a hand-over may take: a dead leader's session ends within 2 × TTL, plus an
/// election of the servers.
const HANDOVER_LIMIT: Duration = Duration::from_secs(20);
const ELECTION_LIMIT: Duration = Duration::from_secs(30);

fn spec(name: &str, url: String, role: Role) -> ProcessSpec {
    ProcessSpec {
        name: name.to_owned(),
        url,
        ttl_min: TTL_MIN,
        role,
    }
}

#[test]
fn real_cluster_failover_election_no_two_leaders_through_kills_pauses_and_consul_failures() {
    let Some(bin) = ConsulBinary::find() else {
        eprintln!(
            "skipped the election workload on a real cluster: no Consul binary found (set \
             CONSUL_BIN to its path or put consul on PATH)"
        );
        return;
    };
    let mut cluster = RealCluster::start(&bin).expect("start 3 servers and a client agent");
    let prefix = unique_prefix("election-cluster");
    let key = format!("{prefix}jobs/leader");
    let data_key = format!(
        "{}state",
        prefix.replacen("reliability/", "reliability-data/", 1)
    );
    let client_url = cluster.client_url();
    let server_url = |i: usize| format!("http://{}", cluster.server_addr(i));
    let candidate = |name: &str, wind_down: Duration| {
        Role::Candidate(CandidateConfig {
            name: name.to_owned(),
            key: key.clone(),
            data_key: data_key.clone(),
            ttl: TTL,
            grace: GRACE,
            wind_down,
        })
    };
    let specs = vec![
        spec("c1", client_url.clone(), candidate("c1", GRACE / 4)),
        spec("c2", client_url.clone(), candidate("c2", GRACE / 4)),
        spec("c3", server_url(0), candidate("c3", GRACE / 4)),
        // Winds down for longer than its grace: the runner cancels it.
        spec("c4", server_url(1), candidate("c4", GRACE * 3)),
        spec(
            "o1",
            client_url.clone(),
            Role::Observer { key: key.clone() },
        ),
        spec("o2", server_url(2), Role::Observer { key: key.clone() }),
    ];
    let exe = Path::new(env!("CARGO_BIN_EXE_election-candidate"));
    let mut procs = Processes::spawn(exe, &specs).expect("start the candidates and observers");
    let began = Instant::now();
    let mut faults: Vec<String> = Vec::new();
    let next = |procs: &mut Processes, above: u64, what: &str| {
        procs
            .wait_new_leader(above, HANDOVER_LIMIT)
            .unwrap_or_else(|| panic!("no new leader within {HANDOVER_LIMIT:?} after {what}"))
    };

    // The leader process killed; it comes back as a candidate.
    let (leader, token) = next(&mut procs, 0, "the start");
    procs.run_for(Duration::from_secs(1));
    procs.kill(&leader);
    faults.push(format!("{leader} SIGKILLed"));
    let (new_leader, token) = next(&mut procs, token, "the kill");
    procs
        .respawn(&leader)
        .expect("restart the killed candidate");
    let leader = new_leader;

    // The leader process paused longer than twice the TTL.
    procs.run_for(Duration::from_secs(1));
    procs.pause(&leader);
    let paused_at = Instant::now();
    faults.push(format!("{leader} paused {:?}", TTL * 5 / 2));
    let (new_leader, token) = next(&mut procs, token, "the pause");
    procs.run_for((TTL * 5 / 2).saturating_sub(paused_at.elapsed()));
    procs.resume(&leader);
    let leader = new_leader;

    // Consul's leader server killed, and restarted once another leads.
    procs.run_for(Duration::from_secs(1));
    let killed = cluster.kill_leader().expect("a Consul leader to kill");
    faults.push(format!("Consul leader s{} SIGKILLed", killed + 1));
    cluster
        .wait_for_leader(ELECTION_LIMIT)
        .expect("a new Consul leader");
    procs.run_for(TTL);
    cluster.restart_server(killed).expect("restart the server");
    cluster
        .wait_for_leader(ELECTION_LIMIT)
        .expect("the cluster whole again");
    procs.run_for(TTL);

    // The client agent killed for twice the TTL (c1, c2 and o1 cut off), then restarted.
    cluster.kill_client_agent();
    faults.push(format!("client agent killed for {:?}", TTL * 2));
    procs.run_for(TTL * 2);
    cluster
        .restart_client_agent()
        .expect("restart the client agent");
    procs.run_for(TTL * 2);

    // The client agent frozen for twice the TTL (its requests held, no answer), then thawed.
    cluster.freeze_client(0);
    faults.push(format!("client agent frozen for {:?}", TTL * 2));
    procs.run_for(TTL * 2);
    cluster.thaw_client(0);
    procs.run_for(TTL * 2);

    // The leader resigns: the newest leader so far, or the one that led through it all.
    let (leader, token) = match procs.wait_new_leader(token, Duration::ZERO) {
        Some(newer) => newer,
        None => (leader, token),
    };
    let (leader, token) = latest(&mut procs, leader, token);
    procs.stop_one(&leader);
    faults.push(format!("{leader} resigned"));
    let _ = next(&mut procs, token, "the resignation");
    procs.run_for(Duration::from_secs(1));

    let records = procs.stop();
    let verdict = check(&records);
    println!(
        "election workload on a real cluster (3 servers, client agent), {:.1} s, faults: {}",
        began.elapsed().as_secs_f64(),
        faults.join(", ")
    );
    println!("{}", verdict.table());
    assert!(verdict.ok(), "the election history has violations (above)");
    assert!(verdict.terms.len() >= 4, "leaders: {}", verdict.terms.len());

    let client = Client::builder()
        .address(cluster.client_url())
        .session_ttl_min(TTL_MIN)
        .build()
        .expect("client");
    let left = run(async move { leftovers(&client, &prefix).await });
    assert!(left.is_empty(), "left after the run: {left:?}");
}

/// The most recent leader: newer `Started` records than `(leader, token)` win.
fn latest(procs: &mut Processes, leader: String, token: u64) -> (String, u64) {
    let (mut leader, mut token) = (leader, token);
    while let Some(newer) = procs.wait_new_leader(token, Duration::ZERO) {
        (leader, token) = newer;
    }
    (leader, token)
}
