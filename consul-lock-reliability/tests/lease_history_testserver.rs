//! The history checker on the embedded test server (in the README's test command): three
//! holder processes take two keys over and over, each acquisition sampled with `is_held()`
//! and written through its fence, while the server's faults run (the node's health critical,
//! an election, latency, cut connections, a stall longer than twice the TTL, writes applied
//! and answered 500) and one holder is paused longer than twice the TTL. The checker then
//! fails on overlapping holds, tokens out of order, a fenced write applied after the next
//! holder took the key, a loss `lost()` did not report, a failed acquire or release, and
//! anything left in Consul. Against a real agent (`CONSUL_HTTP_ADDR`) only the holder pause
//! runs, and the test says so.

use std::path::Path;
use std::time::{Duration, Instant};

use consul_lock_reliability::clock::monotonic_ns;
use consul_lock_reliability::holder::HolderConfig;
use consul_lock_reliability::holders::{HolderSpec, Holders};
use consul_lock_reliability::lease_history::{check_history, notable};
use consul_lock_reliability::support::{client, consul, leftovers, run, ttl, unique_prefix};
use consul_lock_testkit::NodeHealth;

#[test]
fn holders_under_test_server_faults_keep_the_lease_promise() {
    run(async {
        let consul = consul();
        let client = client(&consul);
        let ttl = ttl(&consul);
        let prefix = unique_prefix("history");
        let data_prefix = format!("{prefix}data/");
        let lock_prefix = format!("{prefix}locks/");
        let specs: Vec<HolderSpec> = [("h1", true), ("h2", false), ("h3", true)]
            .into_iter()
            .map(|(name, renew)| HolderSpec {
                config: HolderConfig {
                    name: name.into(),
                    agent: "test server".into(),
                    prefix: lock_prefix.clone(),
                    data_prefix: data_prefix.clone(),
                    keys: 2,
                    lock_timeout: ttl,
                    acquire_timeout: ttl * 12,
                    hold: Duration::from_millis(150),
                    renew,
                },
                url: consul.url(),
                ttl_min: consul.session_ttl_min(),
            })
            .collect();
        let exe = Path::new(env!("CARGO_BIN_EXE_history-holder"));
        let mut holders = Holders::spawn(exe, &specs).expect("start the holders");
        let begin = Instant::now();
        let begin_ns = monotonic_ns();
        let mut faults = Vec::new();
        let pause = ttl * 2 + ttl / 2;
        if let Some(server) = consul.server() {
            tokio::time::sleep(ttl).await;
            server.set_node_health(NodeHealth::Critical);
            faults.push("the node's health critical for 0.5 s");
            tokio::time::sleep(Duration::from_millis(500)).await;
            server.set_node_health(NodeHealth::Passing);
            server.election_for(Duration::from_millis(1500));
            faults.push("an election of 1.5 s");
            tokio::time::sleep(Duration::from_secs(2)).await;
            server.set_latency(Duration::from_millis(300));
            faults.push("300 ms latency for 2 s");
            tokio::time::sleep(Duration::from_secs(2)).await;
            server.set_latency(Duration::ZERO);
            for _ in 0..3 {
                server.drop_connections();
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            faults.push("every connection cut, 3 times");
            server.apply_then_fail_next(3);
            faults.push("3 writes applied and answered 500");
            server.set_stalled(true);
            faults.push("the server stalled for 2.5 x TTL");
            tokio::time::sleep(pause).await;
            server.set_stalled(false);
        } else {
            println!(
                "lease history: against a real agent only the holder pause runs (the server's \
                 faults need the embedded test server)"
            );
        }
        if holders.wait_holding("h2", ttl * 10) {
            holders.pause("h2");
            faults.push("holder h2 paused for 2.5 x TTL while holding");
            tokio::time::sleep(pause).await;
            holders.resume("h2");
        }
        tokio::time::sleep(ttl * 2).await;
        let ran = begin.elapsed();
        let (acquisitions, acquire_errors) = tokio::task::spawn_blocking(move || holders.stop())
            .await
            .expect("stop");
        consul_lock::flush_releases().await;
        let left = leftovers(&client, &lock_prefix).await;
        let verdict = check_history(&acquisitions, &acquire_errors, left);
        println!("{}", verdict.table("lease history, test server"));
        println!("ran {ran:?}; faults: {}", faults.join("; "));
        println!(
            "acquisitions to look at:\n  {}",
            notable(&acquisitions, begin_ns).join("\n  ")
        );
        assert!(
            verdict.ok(),
            "{}",
            verdict.table("lease history, test server")
        );
        assert!(verdict.acquisitions > 20, "too few acquisitions");
        // What the holders wrote is theirs to keep; the test deletes it.
        let guard = consul_lock::Lock::new("clean-up")
            .key_prefix(prefix.clone())
            .client(&client)
            .acquire()
            .await
            .expect("clean-up lock");
        guard
            .fence()
            .txn([consul_lock::KvOp::delete_tree(prefix.clone())])
            .await
            .expect("delete the run's keys");
        drop(guard);
        consul_lock::flush_releases().await;
    });
}
