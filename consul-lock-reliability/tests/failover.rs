//! Failover against a real Consul cluster (3 servers + a client agent, started by the
//! testkit's `real` harness): the leader SIGKILLed, or the client agent SIGKILLed, while 8
//! tasks lock 3 keys over and over; and one renewed lock held through two elections.
//!
//! They need a Consul binary (`CONSUL_BIN`, or `consul` on `PATH`) and say plainly that they
//! skipped without one. They run one at a time (each starts its own cluster).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use consul_lock::{flush_releases, Client, Lock};
use consul_lock_reliability::clock::monotonic_ns;
use consul_lock_reliability::failover::{FailoverSummary, Outage, Workload, WorkloadConfig};
use consul_lock_reliability::support::{leftovers, run, unique_prefix};
use consul_lock_testkit::real::{ClusterConfig, ConsulBinary, RealCluster};

/// A fault every 12 s, the killed agent back 4 s later.
const PERIOD: Duration = Duration::from_secs(12);
const DOWN: Duration = Duration::from_secs(4);
const ROUNDS: usize = 4;
/// The least time with a leader between the end of one outage and the next fault.
const LEADER_BETWEEN: Duration = Duration::from_secs(8);
/// How long an election may take before the test gives up on the cluster.
const ELECTION_LIMIT: Duration = Duration::from_secs(30);
/// The longest acquire allowed after an outage: well below the 10 s lock timeout.
const MAX_WAIT_AFTER_OUTAGE: Duration = Duration::from_secs(8);
/// Scenario D's acquire timeout: longer than an election at Consul's default timing (12-19 s
/// on two quiet cores, 20-26 s when the machine is busy with the rest of CI).
const D_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(45);
/// How long scenario D's acquires may go on after the last election they overlapped ended.
const D_WAIT_PAST_ELECTION: Duration = Duration::from_secs(5);

/// One cluster at a time: the scenarios are timed and the machine may have 2 cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn binary(test: &str) -> Option<ConsulBinary> {
    let bin = ConsulBinary::find();
    if bin.is_none() {
        eprintln!(
            "skipped {test}: no Consul binary found (set CONSUL_BIN to its path or put consul \
             on PATH); this test needs a real Consul cluster"
        );
    }
    bin
}

type Shared = Arc<Mutex<RealCluster>>;

/// Runs `f` on the cluster on a blocking thread (the harness's calls block while they wait
/// for Consul).
async fn on_cluster<T: Send + 'static>(
    cluster: &Shared,
    f: impl FnOnce(&mut RealCluster) -> T + Send + 'static,
) -> T {
    let cluster = cluster.clone();
    tokio::task::spawn_blocking(move || f(&mut cluster.lock().unwrap_or_else(|e| e.into_inner())))
        .await
        .expect("cluster operation panicked")
}

async fn start_cluster(bin: ConsulBinary) -> Shared {
    start_cluster_with(bin, ClusterConfig::default()).await
}

async fn start_cluster_with(bin: ConsulBinary, config: ClusterConfig) -> Shared {
    let started = Instant::now();
    let cluster = tokio::task::spawn_blocking(move || RealCluster::start_with(&bin, config))
        .await
        .expect("join")
        .expect("start a 3-server Consul cluster and a client agent");
    println!("cluster up in {:?}", started.elapsed());
    Arc::new(Mutex::new(cluster))
}

fn client_for(cluster: &Shared) -> Client {
    let url = cluster
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .client_url();
    // A shared session of 5 s, under the workload's lock timeout of 10 s: its locks share it.
    Client::builder()
        .address(url)
        .session_ttl_min(Duration::from_secs(1))
        .shared_session_ttl(Duration::from_secs(5))
        .build()
        .expect("build the client")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    KillLeader,
    KillClientAgent,
}

/// One outage: kill, wait for a leader (through the client agent once it is back), restart
/// `DOWN` after the kill.
async fn outage(cluster: &Shared, fault: Fault) -> Outage {
    let start_ns = monotonic_ns();
    let killed_at = Instant::now();
    match fault {
        Fault::KillLeader => {
            let old = on_cluster(cluster, |c| {
                c.wait_for_leader(ELECTION_LIMIT)?;
                c.kill_leader()
            })
            .await
            .expect("kill the leader");
            let new = on_cluster(cluster, |c| c.wait_for_leader(ELECTION_LIMIT))
                .await
                .expect("a new leader is elected");
            let back_ns = monotonic_ns();
            println!(
                "killed leader s{}; s{} leader after {:?}",
                old + 1,
                new + 1,
                killed_at.elapsed()
            );
            tokio::time::sleep_until((killed_at + DOWN).into()).await;
            on_cluster(cluster, move |c| c.restart_server(old))
                .await
                .expect("restart the old leader");
            Outage {
                start_ns,
                back_ns,
                restarted_ns: monotonic_ns(),
            }
        }
        Fault::KillClientAgent => {
            on_cluster(cluster, |c| c.kill_client_agent()).await;
            tokio::time::sleep_until((killed_at + DOWN).into()).await;
            on_cluster(cluster, |c| c.restart_client_agent())
                .await
                .expect("restart the client agent");
            let now = monotonic_ns();
            Outage {
                start_ns,
                back_ns: now,
                restarted_ns: now,
            }
        }
    }
}

/// Scenario A or B: the workload for `ROUNDS` outages, one every `PERIOD`.
async fn failover_scenario(bin: ConsulBinary, name: &str, fault: Fault) -> FailoverSummary {
    let cluster = start_cluster(bin).await;
    let config = WorkloadConfig::failover();
    timed_failover(cluster, name, fault, &config, PERIOD, ROUNDS).await
}

/// The workload for `rounds` outages, one every `period`, on `cluster`; a fault never comes
/// sooner than [`LEADER_BETWEEN`] after the cluster answered with a leader again, so that an
/// acquire rides out one election at a time (under load an election at Consul's default
/// timing can outlast the period, and the next kill came as the leader was back).
async fn timed_failover(
    cluster: Shared,
    name: &str,
    fault: Fault,
    config: &WorkloadConfig,
    period: Duration,
    rounds: usize,
) -> FailoverSummary {
    let client = client_for(&cluster);
    let prefix = unique_prefix(name);
    let workload = Workload::start(&client, &prefix, config);
    let mut next = Instant::now() + period;
    let mut leader_back = Instant::now();
    let mut outages = Vec::new();
    for _ in 0..rounds {
        tokio::time::sleep_until(next.max(leader_back + LEADER_BETWEEN).into()).await;
        let started = Instant::now();
        let outage = outage(&cluster, fault).await;
        leader_back = started + Duration::from_nanos(outage.back_ns - outage.start_ns);
        next = started + period;
        outages.push(outage);
    }
    // The last outage ended about 4 s after its start; keep the workload running until
    // `period` after it began, so acquisitions after it are measured too.
    tokio::time::sleep_until((next - DOWN).max(leader_back + LEADER_BETWEEN).into()).await;
    let report = workload.stop().await;
    on_cluster(&cluster, |c| c.wait_for_leader(ELECTION_LIMIT))
        .await
        .expect("a leader after the run");
    flush_releases().await;
    let left = leftovers(&client, &prefix).await;
    let summary = FailoverSummary::new(name, &report, &outages, left);
    println!("{}", summary.table());
    summary
}

#[test]
fn real_cluster_failover_a_leader_killed_loses_no_lock_and_leaves_nothing() {
    let Some(bin) = binary("real_cluster_failover_a_leader_killed") else {
        return;
    };
    let _serial = serial();
    let summary = run(failover_scenario(
        bin,
        "failover-A-leader-killed",
        Fault::KillLeader,
    ));
    summary.assert_ok(MAX_WAIT_AFTER_OUTAGE);
}

#[test]
fn real_cluster_failover_b_client_agent_killed_loses_no_lock_and_leaves_nothing() {
    let Some(bin) = binary("real_cluster_failover_b_client_agent_killed") else {
        return;
    };
    let _serial = serial();
    let summary = run(failover_scenario(
        bin,
        "failover-B-client-agent-killed",
        Fault::KillClientAgent,
    ));
    summary.assert_ok(MAX_WAIT_AFTER_OUTAGE);
}

/// Scenario D: scenario A with Consul's default election timing (`raft_multiplier` 5, where an
/// election takes 11-26 s on two busy cores): the leader SIGKILLed every 16 s, 3 times, and
/// never sooner than 8 s after a leader was back. The acquire timeout is longer than such an
/// election (45 s: an acquire shorter than the election cannot ride it out, and reports that
/// it was not acquired). No acquire may fail, no release
/// may return an error (one Consul does not confirm in time goes on in the background), and
/// every acquire must be done within 5 s of its start or of the end of the last election it
/// overlapped (one that starts just before a kill rides out that kill's election).
#[test]
fn real_cluster_failover_d_default_election_timing_loses_no_lock() {
    let Some(bin) = binary("real_cluster_failover_d_default_election_timing") else {
        return;
    };
    let _serial = serial();
    let summary = run(async move {
        let config = ClusterConfig::default().raft_multiplier(5);
        let cluster = start_cluster_with(bin, config).await;
        let name = "failover-D-leader-killed-raft-multiplier-5";
        let workload = WorkloadConfig {
            acquire_timeout: D_ACQUIRE_TIMEOUT,
            ..WorkloadConfig::failover()
        };
        let period = Duration::from_secs(16);
        timed_failover(cluster, name, Fault::KillLeader, &workload, period, 3).await
    });
    assert!(
        summary.longest_wait_past_outage <= D_WAIT_PAST_ELECTION,
        "an acquire went on {:?} past the end of the elections it overlapped\n{}",
        summary.longest_wait_past_outage,
        summary.table()
    );
    summary.assert_ok(D_ACQUIRE_TIMEOUT);
}

/// Scenario C: one renewed lock (lock timeout 10 s) held 45 s while the leader is killed
/// twice; `is_held()` is sampled every 100 ms and `lost()` must not complete.
#[test]
fn real_cluster_failover_c_renewed_lock_stays_held_through_two_elections() {
    let Some(bin) = binary("real_cluster_failover_c_renewed_lock") else {
        return;
    };
    let _serial = serial();
    run(async move {
        let cluster = start_cluster(bin).await;
        let client = client_for(&cluster);
        let prefix = unique_prefix("failover-C-renewed-hold");
        let guard = Lock::new("k")
            .client(&client)
            .key_prefix(&prefix)
            .lock_timeout(Duration::from_secs(10))
            .acquire_timeout(Duration::from_secs(15))
            .renew(true)
            .acquire()
            .await
            .expect("acquire");
        let token = guard.fencing_token();
        let begin = Instant::now();
        let hold_for = Duration::from_secs(45);
        // Sample is_held() every 100 ms on its own task.
        let handle = guard.handle();
        let sampler = tokio::spawn(async move {
            let (mut samples, mut not_held, mut first_false) = (0u32, 0u32, None);
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            while begin.elapsed() < hold_for {
                tick.tick().await;
                samples += 1;
                if !handle.is_held() {
                    not_held += 1;
                    first_false.get_or_insert(begin.elapsed());
                }
            }
            (samples, not_held, first_false)
        });
        let faults = {
            let cluster = cluster.clone();
            async move {
                let mut outages = Vec::new();
                for round in 1..=2u32 {
                    tokio::time::sleep_until((begin + PERIOD * round).into()).await;
                    outages.push(outage(&cluster, Fault::KillLeader).await);
                }
                outages
            }
        };
        let lost = guard.lost();
        let hold = tokio::time::sleep_until((begin + hold_for).into());
        let (lost_during_hold, outages) = tokio::join!(
            async {
                tokio::select! {
                    reason = lost => Some((begin.elapsed(), reason)),
                    () = hold => None,
                }
            },
            faults
        );
        let (samples, not_held, first_false) = sampler.await.expect("sampler");
        let held_at_end = guard.is_held();
        on_cluster(&cluster, |c| c.wait_for_leader(ELECTION_LIMIT))
            .await
            .expect("a leader after the hold");
        let release = guard.release().await;
        flush_releases().await;
        let left = leftovers(&client, &prefix).await;
        println!("==== failover-C-renewed-hold ====");
        println!(
            "elections {} | held {:?} | is_held() samples {samples}, false in {not_held} \
             (first at {first_false:?}) | lost() during the hold: {lost_during_hold:?} | \
             held at end: {held_at_end} | token {token} | release: {release:?} | left: {left:?}",
            outages.len(),
            begin.elapsed()
        );
        for (i, o) in outages.iter().enumerate() {
            println!(
                "election {}: leader back after {:.0} ms, old leader restarted after {:.0} ms",
                i + 1,
                (o.back_ns - o.start_ns) as f64 / 1e6,
                (o.restarted_ns - o.start_ns) as f64 / 1e6
            );
        }
        assert_eq!(
            not_held, 0,
            "is_held() was false during the hold (first at {first_false:?})"
        );
        assert!(
            lost_during_hold.is_none(),
            "lost() completed during the hold: {lost_during_hold:?}"
        );
        assert!(held_at_end);
        assert!(release.is_ok(), "release: {release:?}");
        assert!(left.is_empty(), "left in Consul: {left:?}");
    });
}
