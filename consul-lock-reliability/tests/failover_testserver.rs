//! Scenario A of `failover.rs` on the embedded test server, so it runs on every machine:
//! 8 tasks lock 3 keys over and over while the server plays two leader elections the way a
//! real cluster does (writes fail at once with Consul's RPC error texts, then every session's
//! TTL timer restarts), and writes answered `500 EOF` after they were applied.
//! It injects faults, so against a real agent (`CONSUL_HTTP_ADDR`) it skips and says so;
//! `failover.rs` covers the real cluster.

use std::time::{Duration, Instant};

use consul_lock_reliability::clock::monotonic_ns;
use consul_lock_reliability::failover::{FailoverSummary, Outage, Workload, WorkloadConfig};
use consul_lock_reliability::support::{
    client_builder, consul, fault_server, leftovers, unique_prefix,
};

const ELECTION: Duration = Duration::from_secs(1);
/// Elections start at these offsets from the start of the run, which lasts `RUN`.
const ELECTIONS_AT: [Duration; 2] = [Duration::from_millis(1500), Duration::from_millis(4500)];
const RUN: Duration = Duration::from_secs(8);
/// Writes answered `500 EOF` after being applied, at the start of each election.
const APPLIED_THEN_FAILED: usize = 3;
/// The longest acquire allowed after an election of 1 s.
const MAX_WAIT_AFTER_ELECTION: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elections_on_the_test_server_lose_no_lock_and_leave_nothing() {
    let consul = consul();
    let Some(server) = fault_server(&consul, "elections_on_the_test_server") else {
        return;
    };
    // A shared session of 5 s, under the workload's lock timeout of 10 s: its locks share it.
    let client = client_builder(&consul)
        .shared_session_ttl(Duration::from_secs(5))
        .build()
        .expect("build the client");
    let prefix = unique_prefix("failover-testserver");
    let workload = Workload::start(&client, &prefix, &WorkloadConfig::failover());
    let begin = Instant::now();
    let mut outages = Vec::new();
    for at in ELECTIONS_AT {
        tokio::time::sleep_until((begin + at).into()).await;
        let start_ns = monotonic_ns();
        server.apply_then_fail_next(APPLIED_THEN_FAILED);
        server.election_for(ELECTION);
        let end_ns = start_ns + ELECTION.as_nanos() as u64;
        outages.push(Outage {
            start_ns,
            back_ns: end_ns,
            restarted_ns: end_ns,
        });
    }
    tokio::time::sleep_until((begin + RUN).into()).await;
    let report = workload.stop().await;
    consul_lock::flush_releases().await;
    let left = leftovers(&client, &prefix).await;
    let summary = FailoverSummary::new("failover on the test server", &report, &outages, left);
    println!("{}", summary.table());
    summary.assert_ok(MAX_WAIT_AFTER_ELECTION);
}
