//! What a lock cycle costs Consul, in Raft writes: two on the client's shared session (take,
//! give back), three with a session of the lock's own (create, take, destroy). A test binary of
//! its own, so that no other test writes meanwhile: a real agent's commit index counts every
//! write. Against the test server and, with `CONSUL_HTTP_ADDR` set, a real agent.

mod common;

use common::Env;

/// The Raft index of the test's Consul now: a real agent's `Stats.raft.commit_index`
/// (`/v1/agent/self`); on the test server (which has no Raft) the index of a probe write and
/// its delete (see [`PROBE_WRITES`]).
async fn raft_index(env: &Env) -> u64 {
    // Through a client of its own, so that the test's client counts only the locks' requests.
    if env.consul.is_embedded() {
        let probe = format!("{}probe", env.prefix);
        let url = format!("{}/v1/kv/{probe}", env.client.address());
        let http = reqwest::Client::new();
        http.put(&url)
            .body("x")
            .send()
            .await
            .expect("write the probe");
        let entry: serde_json::Value = http
            .get(&url)
            .send()
            .await
            .expect("read the probe")
            .json()
            .await
            .expect("JSON");
        http.delete(&url).send().await.expect("delete the probe");
        entry[0]["ModifyIndex"].as_u64().expect("ModifyIndex") + 1
    } else {
        let url = format!("{}/v1/agent/self", env.client.address());
        let body: serde_json::Value = reqwest::get(url)
            .await
            .expect("agent/self")
            .json()
            .await
            .expect("JSON");
        body["Stats"]["raft"]["commit_index"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("Stats.raft.commit_index")
    }
}

/// The writes [`raft_index`] makes itself between two readings: on the test server, the
/// second reading's probe and its delete.
fn probe_writes(env: &Env) -> u64 {
    if env.consul.is_embedded() {
        2
    } else {
        0
    }
}

#[tokio::test]
async fn a_lock_cycle_costs_two_raft_writes_on_the_shared_session_and_three_on_its_own() {
    let env = Env::new("shared-writes");
    let lock = env.lock("job");
    // The first lock creates the shared session (one write more, once).
    lock.hold(|_| async {}).await.unwrap();
    const CYCLES: u64 = 20;
    let (before, requests) = (raft_index(&env).await, env.client.requests_sent());
    for _ in 0..CYCLES {
        lock.hold(|_| async {}).await.unwrap();
    }
    let sent = env.client.requests_sent() - requests;
    let writes = raft_index(&env).await - before - probe_writes(&env);
    eprintln!("shared session: {writes} Raft writes and {sent} requests for {CYCLES} cycles");
    assert_eq!(sent, 2 * CYCLES, "take and give back");
    // A real agent commits some writes of its own now and then (coordinates, autopilot).
    let noise = if env.consul.is_embedded() { 0 } else { 2 };
    assert!(
        (2 * CYCLES..=2 * CYCLES + noise).contains(&writes),
        "{writes} Raft writes for {CYCLES} cycles"
    );
    let own = env.lock("own").own_session(true);
    let before = raft_index(&env).await;
    for _ in 0..CYCLES {
        own.hold(|_| async {}).await.unwrap();
    }
    let writes = raft_index(&env).await - before - probe_writes(&env);
    eprintln!("own sessions: {writes} Raft writes for {CYCLES} cycles");
    assert!(
        (3 * CYCLES..=3 * CYCLES + noise).contains(&writes),
        "{writes} Raft writes for {CYCLES} cycles"
    );
}
