//! A release through a leader election longer than 2 × TTL from the session's last renewal.
//! In a test binary of its own: its release goes on in the background for the whole election,
//! and `flush_releases()` (which other tests call) waits for every background release of the
//! process.

mod common;

use std::time::{Duration, Instant};

use common::Env;
use consul_lock_runtime::Client;

/// A new leader restarts every session's TTL timer, so an election longer than 2 × TTL from
/// the last renewal does not end the session: the release keeps trying until the election is
/// over and Consul confirms, rather than giving up when the TTL would have run out (which left
/// the key held, through elections, by a session nobody destroyed).
#[tokio::test]
async fn a_release_outlasts_an_election_longer_than_twice_the_ttl() {
    let env = Env::new("release-long-election");
    if !env.embedded_or_skip("release-long-election") {
        return;
    }
    let server = env.consul.server().unwrap();
    let ttl = Duration::from_secs(3).max(env.min_ttl());
    // A request timeout well inside the election: the release gives up no sooner than one.
    let client = Client::builder()
        .address(env.consul.url())
        .session_ttl_min(env.min_ttl())
        .request_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let lock = env.lock("job").client(&client).lock_timeout(ttl);
    let guard = lock.acquire().await.unwrap();
    let election = ttl * 2 + Duration::from_secs(1);
    let election_end = Instant::now() + election;
    server.election_for(election);
    guard
        .release()
        .await
        .expect("a release that goes on in the background is not an error");
    consul_lock_runtime::flush_releases().await;
    assert!(
        Instant::now() >= election_end,
        "the release gave up during the election"
    );
    assert!(
        env.client.kv_get(&env.key("job")).await.unwrap().is_none(),
        "the key is free once the election is over"
    );
    // Freed by the release, not by the TTL the new leader gave the session.
    assert!(Instant::now() < election_end + ttl);
    assert!(env.my_sessions().await.is_empty());
}
