//! Leader election across clients on one key: a follower written the way Consul's guide
//! "Application leader election" writes one (a blocking GET on the key, its value read as the
//! leader's, no `Session` meaning no leader) sees this library's leader; a leader taken with
//! Go's `api.Lock` (the Go peer, or `consul lock` of a real Consul binary) excludes this
//! library's campaign, and the other way round. A peer that is not installed is skipped with
//! a plain `SKIPPED` message (`peers/install.sh` installs them). Runs against
//! `CONSUL_HTTP_ADDR` when it is set, else the embedded test server.

use std::time::Duration;

use base64::Engine as _;
use consul_lock::{Client, Election};
use consul_lock_bench::peers::{Peer, PeerKind};
use consul_lock_testkit::TestConsul;
use serde_json::Value;

const PATIENT: Duration = Duration::from_secs(30);

fn setup() -> (TestConsul, Client, String) {
    let consul =
        TestConsul::from_env_or_start().expect("start the test server or reach CONSUL_HTTP_ADDR");
    let client = Client::builder()
        .address(consul.url())
        .session_ttl_min(consul.session_ttl_min())
        .build()
        .expect("client");
    let run = format!("{:x}{:x}", std::process::id(), fastrand_like());
    (consul, client, run)
}

fn fastrand_like() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// What the guide's follower learns from one read: the leader's value, or none.
struct GuideRead {
    index: u64,
    leader: Option<String>,
}

/// The guide's follower, with plain HTTP: `GET /v1/kv/<key>?index=<index>` (a blocking query
/// once an index is known); the key's `Session` says whether someone leads, its `Value`
/// (base64) who.
async fn guide_follower_read(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    index: u64,
) -> GuideRead {
    let mut req = http.get(format!("{url}/v1/kv/{key}"));
    if index > 0 {
        req = req.query(&[("index", index.to_string()), ("wait", "30s".to_owned())]);
    }
    let reply = req.send().await.expect("the follower's GET");
    let index = reply
        .headers()
        .get("X-Consul-Index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("X-Consul-Index");
    if reply.status() == 404 {
        return GuideRead {
            index,
            leader: None,
        };
    }
    let body: Value = reply.json().await.expect("KV JSON");
    let entry = &body[0];
    let leader = entry["Session"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(|_| {
            let value = entry["Value"].as_str().unwrap_or_default();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(value)
                .expect("base64 value");
            String::from_utf8(bytes).expect("UTF-8 value")
        });
    GuideRead { index, leader }
}

/// The guide's follower loop: blocking reads from `index` on, each from the index the last one
/// returned, until the leader it reads satisfies `wanted` (the guide's follower acts on a
/// change of leader; a read can also wake for a write beside the key, such as a candidate
/// joining the queue under it, and then reads the same leader again). Panics after
/// [`PATIENT`].
async fn guide_follower_until(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    mut index: u64,
    wanted: impl Fn(Option<&str>) -> bool,
) -> GuideRead {
    let deadline = tokio::time::Instant::now() + PATIENT;
    loop {
        let read = tokio::time::timeout_at(deadline, guide_follower_read(http, url, key, index))
            .await
            .expect("the follower saw the change within PATIENT");
        if wanted(read.leader.as_deref()) {
            return read;
        }
        index = read.index;
    }
}

#[test]
fn a_follower_written_from_consuls_guide_sees_our_leader_come_and_go() {
    let (consul, client, run) = setup();
    let election = Election::new(format!("guide-{run}"))
        .client(&client)
        .value("10.0.0.7:8080");
    let key = election.full_key().expect("key");
    let url = consul.url();
    rt().block_on(async {
        let http = reqwest::Client::new();
        let none = guide_follower_read(&http, &url, &key, 0).await;
        assert_eq!(none.leader, None, "nobody leads yet");
        // The follower blocks; the campaign wins; the follower wakes with the leader's value.
        let (h, u, k) = (http.clone(), url.clone(), key.clone());
        let follower = tokio::spawn(async move {
            guide_follower_until(&h, &u, &k, none.index, |l| l.is_some()).await
        });
        let leadership = election.campaign().await.expect("elected");
        let seen = follower.await.expect("join");
        assert_eq!(seen.leader.as_deref(), Some("10.0.0.7:8080"));
        // A proclaim is seen by the guide's follower too, the leadership unchanged.
        leadership
            .proclaim("10.0.0.8:8080")
            .await
            .expect("proclaim");
        let moved = guide_follower_until(&http, &url, &key, seen.index, |l| {
            l != Some("10.0.0.7:8080")
        })
        .await;
        assert_eq!(moved.leader.as_deref(), Some("10.0.0.8:8080"));
        leadership.resign().await.expect("resign");
        // The guide's follower sees no leader after the resignation (within PATIENT).
        let gone = guide_follower_until(&http, &url, &key, moved.index, |l| {
            l != Some("10.0.0.8:8080")
        })
        .await;
        assert_eq!(gone.leader, None, "no leader after the resignation");
    });
}

/// The Go-dialect peer (Go's api.Lock: the Go program, else `consul lock`), or `None` after
/// saying why.
fn go_peer() -> Option<Peer> {
    for kind in [PeerKind::Go, PeerKind::ConsulCli] {
        match Peer::find(kind) {
            Ok(p) => return Some(p),
            Err(a) => eprintln!("{} is absent: {}", kind.label(), a.reason),
        }
    }
    eprintln!("SKIPPED (no Go-dialect peer): build one with peers/install.sh, or set CONSUL_BIN");
    None
}

#[test]
fn a_leader_taken_with_go_api_lock_and_ours_exclude_each_other() {
    let Some(peer) = go_peer() else { return };
    let (consul, client, run) = setup();
    // `consul lock PREFIX` locks PREFIX/.lock: the election's whole key is that.
    let key = format!("service/go-{run}/leader/.lock");
    let election = Election::new(format!("go-{run}"))
        .key(key.clone())
        .client(&client);
    let url = consul.url();
    rt().block_on(async {
        // Go leads: our campaign waits, and wins once Go lets go.
        let held = peer
            .hold(&url, &key, PATIENT)
            .expect("the peer takes the free key");
        let e = election.clone();
        let campaign = tokio::spawn(async move { e.campaign().await });
        let leader = election.leader().await.expect("leader").expect("Go leads");
        assert_eq!(leader.since, None, "Go writes no leadership record");
        assert_eq!(leader.fencing_token, held.fencing_index());
        assert!(
            !campaign.is_finished(),
            "our candidate waits while Go leads"
        );
        let index = held.fencing_index();
        held.release().expect("the peer unlocks");
        let ours = tokio::time::timeout(PATIENT, campaign)
            .await
            .expect("elected after Go let go")
            .expect("join")
            .expect("campaign");
        assert!(ours.fencing_token() > index);

        // We lead: Go's lock waits (no conflict error), and takes the key after our resignation.
        let (p, u, k) = (peer.clone(), url.clone(), key.clone());
        let waiting = std::thread::spawn(move || p.hold(&u, &k, PATIENT));
        let token = ours.fencing_token();
        // Go's waiter shows as a session of its own (it has no place in our queue).
        loop {
            let sessions = client.sessions().await.expect("sessions");
            if sessions
                .iter()
                .any(|s| s.id != ours.session_id() && !s.name.starts_with("consul-lock:"))
            {
                break;
            }
            assert!(!waiting.is_finished(), "the peer gave up while we led");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(ours.is_leader());
        ours.resign().await.expect("resign");
        let go = waiting
            .join()
            .expect("peer thread")
            .expect("Go takes the key after our resignation");
        assert!(go.fencing_index() > token);
        go.release().expect("the peer unlocks");
    });
}
