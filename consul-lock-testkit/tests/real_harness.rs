//! The real-Consul harness (`consul_lock_testkit::real`): a dev agent answers and has a
//! leader; a 3-server cluster elects a new leader when its leader is SIGKILLed, takes the old
//! one back, and survives a restart of its client agent. Skips, saying so, when no Consul
//! binary is found (`CONSUL_BIN`, or `consul` on `PATH`).

use std::net::TcpStream;
use std::time::{Duration, Instant};

use consul_lock_testkit::real::{ConsulBinary, RealAgent, RealCluster};

fn binary(test: &str) -> Option<ConsulBinary> {
    let bin = ConsulBinary::find();
    if bin.is_none() {
        eprintln!(
            "skipped {test}: no Consul binary found (set CONSUL_BIN to its path or put consul on PATH)"
        );
    }
    bin
}

async fn leader_through(url: &str) -> String {
    let text = reqwest::get(format!("{url}/v1/status/leader"))
        .await
        .expect("status request")
        .text()
        .await
        .expect("status body");
    text.trim().trim_matches('"').to_string()
}

#[tokio::test]
async fn a_dev_agent_starts_with_a_leader_and_is_gone_after_drop() {
    let Some(bin) = binary("a_dev_agent_starts_with_a_leader") else {
        return;
    };
    let agent = RealAgent::start_dev(&bin).expect("start a dev agent");
    let url = agent.url();
    assert_eq!(url, format!("http://{}", agent.addr()));
    assert!(!leader_through(&url).await.is_empty());
    // session_ttl_min = 1s: a 1 s TTL is accepted (the default floor is 10 s).
    let answer = reqwest::Client::new()
        .put(format!("{url}/v1/session/create"))
        .body(r#"{"TTL": "1s"}"#)
        .send()
        .await
        .expect("session create");
    assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
    let log = agent.log_path().to_path_buf();
    assert!(log.is_file());
    let addr = agent.addr();
    drop(agent);
    assert!(!log.exists(), "the agent's directory is removed on drop");
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
        "the agent is killed on drop"
    );
}

#[test]
fn a_missing_binary_is_reported_with_what_to_do() {
    let bin = ConsulBinary::at("/nonexistent/consul-lock-testkit/consul");
    let err = RealAgent::start_dev(&bin).expect_err("no such binary");
    let text = err.to_string();
    assert!(text.contains("set CONSUL_BIN"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_elects_a_new_leader_when_the_leader_is_killed() {
    let Some(bin) = binary("a_cluster_elects_a_new_leader") else {
        return;
    };
    let started = Instant::now();
    let mut cluster = tokio::task::spawn_blocking(move || RealCluster::start(&bin))
        .await
        .expect("join")
        .expect("start the cluster");
    println!("cluster up in {:?}", started.elapsed());
    let url = cluster.client_url();
    let old = cluster.leader().expect("a leader after start");
    assert!(!leader_through(&url).await.is_empty());

    let killed_at = Instant::now();
    assert_eq!(cluster.kill_leader().expect("kill the leader"), old);
    let (mut cluster, new) = tokio::task::spawn_blocking(move || {
        let new = cluster.wait_for_leader(Duration::from_secs(30));
        (cluster, new)
    })
    .await
    .expect("join");
    let new = new.expect("a new leader");
    println!(
        "leader s{} killed; s{} elected after {:?}",
        old + 1,
        new + 1,
        killed_at.elapsed()
    );
    assert_ne!(new, old);
    let named = leader_through(&url).await;
    assert_eq!(named, leader_addr(&cluster, new).await);

    cluster.restart_server(old).expect("restart the old leader");
    cluster.kill_client_agent();
    assert!(reqwest::get(format!("{url}/v1/status/leader"))
        .await
        .is_err());
    cluster
        .restart_client_agent()
        .expect("restart the client agent");
    assert!(!leader_through(&url).await.is_empty());
}

/// The leader address server `i` reports for itself.
async fn leader_addr(cluster: &RealCluster, i: usize) -> String {
    leader_through(&format!("http://{}", cluster.server_addr(i))).await
}

/// Two client agents, each on a loopback address of its own; one frozen and thawed, one cut
/// off from the servers by a partition and healed. The partition needs nftables and root:
/// without them the test says so and skips that part.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_agents_can_be_frozen_and_partitioned() {
    use consul_lock_testkit::real::{ClusterConfig, Partition};
    let Some(bin) = binary("client_agents_can_be_frozen_and_partitioned") else {
        return;
    };
    let mut cluster = tokio::task::spawn_blocking(move || {
        RealCluster::start_with(&bin, ClusterConfig::default().clients(2))
    })
    .await
    .unwrap()
    .expect("start 3 servers and 2 client agents");
    assert_eq!(cluster.client_count(), 2);
    assert_ne!(cluster.client_ip(0), cluster.client_ip(1));
    assert!(cluster.client_ip(1).is_loopback());
    let (c1, c2) = (cluster.client_url_of(0), cluster.client_url_of(1));
    assert!(!leader_through(&c2).await.is_empty());

    cluster.freeze_client(0);
    let frozen = reqwest::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap()
        .get(format!("{c1}/v1/status/leader"))
        .send()
        .await;
    assert!(frozen.is_err(), "a frozen agent answers nothing");
    cluster.thaw_client(0);
    assert!(!leader_through(&c1).await.is_empty());

    if let Err(why) = Partition::available() {
        eprintln!("client_agents_can_be_frozen_and_partitioned: no loopback partitions here ({why}); skipped that part");
        return;
    }
    let cut = cluster.partition_client(1).expect("partition");
    // Cut off from the servers, the agent has no server to reach: a consistent read hangs
    // (its RPC gives up after about 39 s on Consul 1.10.12, then answers 500), while the other
    // agent answers at once.
    let patient = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let answer = patient.get(format!("{c2}/v1/kv/x?consistent")).send().await;
    assert!(answer.is_err(), "a cut-off agent answered: {answer:?}");
    assert_eq!(
        reqwest::get(format!("{c1}/v1/kv/x"))
            .await
            .unwrap()
            .status(),
        404
    );
    cut.heal();
    let healed = Instant::now();
    loop {
        let answer = reqwest::get(format!("{c2}/v1/kv/x?consistent"))
            .await
            .unwrap();
        if answer.status() == 404 {
            break;
        }
        assert!(
            healed.elapsed() < Duration::from_secs(30),
            "no leader after healing"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
