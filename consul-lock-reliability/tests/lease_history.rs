//! The history checker on a real Consul cluster: 3 servers and 2 client agents (the testkit's
//! `real` harness, each agent on a loopback address of its own), five holder processes, each
//! on its own agent (two on the client agents, three on the servers directly, as small
//! deployments do), taking two keys over and over with a lock timeout of 5 s, each
//! acquisition sampled with `is_held()` and written through its fence. Faults, one after the
//! other: the leader killed (and restarted), a client agent frozen longer than the TTL, a
//! holder paused longer than twice the TTL, a client agent killed and restarted, a client agent
//! cut off from the servers, and the leader cut off from the other servers (nftables on
//! loopback; where rules cannot be made, the run says so and freezes the agent instead). The
//! checker fails on overlapping holds, tokens out of order, a fenced write applied after the
//! next holder took the key, a loss `lost()` did not report, a failed acquire or release, and
//! anything left in Consul.
//!
//! Needs a Consul binary (`CONSUL_BIN`, or `consul` on `PATH`); says plainly that it skipped
//! without one.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use consul_lock::Client;
use consul_lock_reliability::clock::monotonic_ns;
use consul_lock_reliability::holder::HolderConfig;
use consul_lock_reliability::holders::{HolderSpec, Holders};
use consul_lock_reliability::lease_history::{check_history, notable};
use consul_lock_reliability::support::{leftovers, run, unique_prefix};
use consul_lock_testkit::real::{ClusterConfig, ConsulBinary, Partition, RealCluster};

const TTL: Duration = Duration::from_secs(5);
/// How long the cluster may take to elect a leader.
const ELECTION_LIMIT: Duration = Duration::from_secs(60);

type Shared = Arc<Mutex<RealCluster>>;

async fn on_cluster<T: Send + 'static>(
    cluster: &Shared,
    f: impl FnOnce(&mut RealCluster) -> T + Send + 'static,
) -> T {
    let cluster = cluster.clone();
    tokio::task::spawn_blocking(move || f(&mut cluster.lock().unwrap_or_else(|e| e.into_inner())))
        .await
        .expect("cluster operation panicked")
}

/// The faults of the run, as the log shows them.
#[derive(Default)]
struct Log {
    begin: Option<Instant>,
    lines: Vec<String>,
}

impl Log {
    fn note(&mut self, what: String) {
        let begin = *self.begin.get_or_insert_with(Instant::now);
        let at = begin.elapsed();
        println!("+{:>6.1} s  {what}", at.as_secs_f64());
        self.lines
            .push(format!("+{:.1} s {what}", at.as_secs_f64()));
    }
}

#[test]
fn real_cluster_history_keeps_the_lease_promise_through_every_fault() {
    let Some(bin) = ConsulBinary::find() else {
        eprintln!(
            "skipped real_cluster_history: no Consul binary found (set CONSUL_BIN to its path or \
             put consul on PATH); this test needs a real Consul cluster"
        );
        return;
    };
    run(async move {
        let started = Instant::now();
        let config = ClusterConfig::default().clients(2);
        let cluster = tokio::task::spawn_blocking(move || RealCluster::start_with(&bin, config))
            .await
            .expect("join")
            .expect("start 3 servers and 2 client agents");
        println!("cluster up in {:?}", started.elapsed());
        let cluster: Shared = Arc::new(Mutex::new(cluster));
        let partitions = Partition::available();
        if let Err(why) = &partitions {
            println!(
                "real_cluster_history: no loopback partitions here ({why}); the run freezes the \
                 agents it would have cut off instead"
            );
        }
        let prefix = unique_prefix("history-real");
        let lock_prefix = format!("{prefix}locks/");
        let data_prefix = format!("{prefix}data/");
        let agents: Vec<(String, String)> = {
            let c = cluster.lock().unwrap_or_else(|e| e.into_inner());
            vec![
                ("c1".into(), c.client_url_of(0)),
                ("c2".into(), c.client_url_of(1)),
                ("s1".into(), c.server_url(0)),
                ("s2".into(), c.server_url(1)),
                ("s3".into(), c.server_url(2)),
            ]
        };
        let specs: Vec<HolderSpec> = agents
            .iter()
            .enumerate()
            .map(|(i, (agent, url))| HolderSpec {
                config: HolderConfig {
                    name: format!("h{}", i + 1),
                    agent: agent.clone(),
                    prefix: lock_prefix.clone(),
                    data_prefix: data_prefix.clone(),
                    keys: 2,
                    lock_timeout: TTL,
                    acquire_timeout: Duration::from_secs(40),
                    hold: Duration::from_millis(300),
                    renew: i % 2 == 0,
                },
                url: url.clone(),
                ttl_min: Duration::from_secs(1),
            })
            .collect();
        let exe = Path::new(env!("CARGO_BIN_EXE_history-holder"));
        let holders = Holders::spawn(exe, &specs).expect("start the holder processes");
        let holders = Arc::new(Mutex::new(holders));
        let begin_ns = monotonic_ns();
        let mut log = Log::default();
        log.note(format!(
            "5 holders: h1 on c1 (renew), h2 on c2, h3 on s1 (renew), h4 on s2, h5 on s3 (renew); \
             2 keys, lock timeout {TTL:?}"
        ));
        tokio::time::sleep(Duration::from_secs(5)).await;

        // 1. The leader killed, restarted 4 s later.
        let old = on_cluster(&cluster, |c| {
            c.wait_for_leader(ELECTION_LIMIT)?;
            c.kill_leader()
        })
        .await
        .expect("kill the leader");
        let killed = Instant::now();
        let new = on_cluster(&cluster, |c| c.wait_for_leader(ELECTION_LIMIT))
            .await
            .expect("a new leader");
        log.note(format!(
            "leader s{} killed; s{} leader after {:.1} s",
            old + 1,
            new + 1,
            killed.elapsed().as_secs_f64()
        ));
        tokio::time::sleep_until((killed + Duration::from_secs(4)).into()).await;
        on_cluster(&cluster, move |c| c.restart_server(old))
            .await
            .expect("restart the old leader");
        log.note(format!("s{} restarted", old + 1));
        settle(&cluster).await;

        // 2. A client agent frozen longer than the TTL, while its holder holds a key.
        let holding = wait_holding(&holders, "h1").await;
        on_cluster(&cluster, |c| c.freeze_client(0)).await;
        log.note(format!(
            "c1 frozen (SIGSTOP) for {:?}{}",
            TTL + Duration::from_secs(2),
            if holding { ", h1 holding" } else { "" }
        ));
        tokio::time::sleep(TTL + Duration::from_secs(2)).await;
        on_cluster(&cluster, |c| c.thaw_client(0)).await;
        log.note("c1 thawed".into());
        settle(&cluster).await;

        // 3. A holder process paused longer than twice the TTL, while it holds a key.
        let holding = wait_holding(&holders, "h2").await;
        holders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pause("h2");
        log.note(format!(
            "h2 paused (SIGSTOP) for {:?}{}",
            TTL * 2 + Duration::from_secs(2),
            if holding { " while holding" } else { "" }
        ));
        tokio::time::sleep(TTL * 2 + Duration::from_secs(2)).await;
        holders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .resume("h2");
        log.note("h2 resumed".into());
        // Its stale fenced write and its report of the loss, before the next fault.
        tokio::time::sleep(Duration::from_secs(2)).await;

        // 4. A client agent killed and restarted.
        on_cluster(&cluster, |c| c.kill_client(1)).await;
        log.note("c2 killed (SIGKILL)".into());
        tokio::time::sleep(Duration::from_secs(3)).await;
        on_cluster(&cluster, |c| c.restart_client(1))
            .await
            .expect("restart c2");
        log.note("c2 restarted".into());
        settle(&cluster).await;

        // 5. A client agent cut off from the servers.
        let cut_for = TTL + Duration::from_secs(2);
        match &partitions {
            Ok(()) => {
                let cut = on_cluster(&cluster, |c| c.partition_client(0))
                    .await
                    .expect("partition c1");
                log.note(format!("c1 cut off from the servers for {cut_for:?}"));
                tokio::time::sleep(cut_for).await;
                cut.heal();
            }
            Err(_) => {
                on_cluster(&cluster, |c| c.freeze_client(0)).await;
                log.note(format!(
                    "c1 frozen for {cut_for:?} (instead of a partition)"
                ));
                tokio::time::sleep(cut_for).await;
                on_cluster(&cluster, |c| c.thaw_client(0)).await;
            }
        }
        log.note("c1 back".into());
        settle(&cluster).await;

        // 6. The leader cut off from the other servers.
        let leader = on_cluster(&cluster, |c| c.wait_for_leader(ELECTION_LIMIT))
            .await
            .expect("a leader");
        match &partitions {
            Ok(()) => {
                let cut = on_cluster(&cluster, move |c| c.partition_server(leader))
                    .await
                    .expect("partition the leader");
                log.note(format!(
                    "leader s{} cut off from the other servers for {cut_for:?}",
                    leader + 1
                ));
                tokio::time::sleep(cut_for).await;
                cut.heal();
            }
            Err(_) => {
                on_cluster(&cluster, move |c| c.freeze_server(leader)).await;
                log.note(format!(
                    "leader s{} frozen for {cut_for:?} (instead of a partition)",
                    leader + 1
                ));
                tokio::time::sleep(cut_for).await;
                on_cluster(&cluster, move |c| c.thaw_server(leader)).await;
            }
        }
        log.note(format!("s{} back", leader + 1));
        settle(&cluster).await;
        tokio::time::sleep(Duration::from_secs(5)).await;

        let holders = Arc::try_unwrap(holders)
            .ok()
            .expect("the holders")
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        let (acquisitions, acquire_errors) = tokio::task::spawn_blocking(move || holders.stop())
            .await
            .expect("stop");
        log.note("holders stopped".into());
        settle(&cluster).await;
        let url = cluster
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .client_url_of(1);
        let client = Client::builder()
            .address(url)
            .session_ttl_min(Duration::from_secs(1))
            .build()
            .expect("client");
        // A session whose release the holder gave up on ends with its TTL (twice it, from the
        // last renewal or election): wait for that, then count what is left.
        let deadline = Instant::now() + TTL * 2 + Duration::from_secs(5);
        let left = loop {
            let left = leftovers(&client, &lock_prefix).await;
            if left.is_empty() || Instant::now() >= deadline {
                break left;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let verdict = check_history(&acquisitions, &acquire_errors, left);
        let table = verdict.table("lease history, real cluster (3 servers, 2 client agents)");
        println!("{table}");
        let mut per_holder: Vec<String> = specs
            .iter()
            .map(|s| {
                let name = &s.config.name;
                let n = acquisitions.iter().filter(|a| &a.holder == name).count();
                format!("{name} on {}: {n}", s.config.agent)
            })
            .collect();
        per_holder.sort();
        println!("acquisitions per holder: {}", per_holder.join(", "));
        println!("faults:\n  {}", log.lines.join("\n  "));
        println!(
            "acquisitions to look at:\n  {}",
            notable(&acquisitions, begin_ns).join("\n  ")
        );
        delete_data(&client, &prefix).await;
        assert!(verdict.ok(), "{table}");
        assert!(verdict.acquisitions > 50, "too few acquisitions\n{table}");
    });
}

/// Waits (up to 20 s) until holder `name` says it took a key; whether it did.
async fn wait_holding(holders: &Arc<Mutex<Holders>>, name: &'static str) -> bool {
    let holders = holders.clone();
    tokio::task::spawn_blocking(move || {
        holders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .wait_holding(name, Duration::from_secs(20))
    })
    .await
    .unwrap_or(false)
}

/// Waits until the cluster has a leader every agent sees.
async fn settle(cluster: &Shared) {
    on_cluster(cluster, |c| c.wait_for_leader(ELECTION_LIMIT))
        .await
        .expect("a leader");
}

/// Deletes what the holders wrote (theirs to keep; the test's to clean up).
async fn delete_data(client: &Client, prefix: &str) {
    let guard = consul_lock::Lock::new("clean-up")
        .key_prefix(prefix)
        .client(client)
        .acquire()
        .await
        .expect("clean-up lock");
    guard
        .fence()
        .txn([consul_lock::KvOp::delete_tree(prefix)])
        .await
        .expect("delete the run's keys");
    drop(guard);
    consul_lock::flush_releases().await;
}
