//! Leader election: campaigns in the key's queue, leadership and its loss, the record,
//! observers (every leader once, the no-leader gaps), the runner's grace and events. Against
//! a real agent (CONSUL_HTTP_ADDR) the fault-injection tests print why they skip.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Env;
use consul_lock_runtime::{
    Election, Error, LostReason, Observation, RunEvent, StopCause, RECORD_SUFFIX,
};
use futures::StreamExt as _;

fn election(env: &Env, name: &str) -> Election {
    Election::new(name)
        .key_prefix(env.prefix.clone())
        .client(&env.client)
        .ttl(env.min_ttl())
}

/// Waits until `check` holds, up to `limit` (polling: these wait for Consul's state as
/// another process would see it).
async fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn candidates_are_elected_in_the_order_they_queued_with_growing_tokens() {
    let env = Env::new("election-order");
    let first = election(&env, "order").campaign().await.unwrap();
    assert_eq!(
        first.key(),
        format!("{}order/leader", env.prefix),
        "the key of Consul's guide under the prefix"
    );
    let mut standbys = Vec::new();
    for i in 0..3 {
        let client = env.another_client();
        let e = election(&env, "order").client(&client);
        standbys.push((i, tokio::spawn(async move { e.campaign().await })));
        env.until_queued(&env.key("order/leader"), i + 1).await;
    }
    let listed = election(&env, "order").candidates().await.unwrap();
    assert_eq!(listed.len(), 3, "three candidates queued: {listed:?}");
    assert!(listed.iter().all(|c| c.node.is_some()));

    let mut tokens = vec![first.fencing_token()];
    first.resign().await.unwrap();
    for (_, task) in standbys {
        let leadership = task.await.unwrap().unwrap();
        assert!(leadership.is_leader());
        let leader = election(&env, "order").leader().await.unwrap().unwrap();
        assert_eq!(leader.session, leadership.session_id());
        assert_eq!(leader.fencing_token, leadership.fencing_token());
        tokens.push(leadership.fencing_token());
        leadership.resign().await.unwrap();
    }
    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "tokens grow: {tokens:?}"
    );
    assert!(election(&env, "order").leader().await.unwrap().is_none());
    assert!(
        env.my_keys().await.is_empty(),
        "nothing left: {:?}",
        env.my_keys().await
    );
    assert!(env.my_sessions().await.is_empty());
}

#[tokio::test]
async fn the_record_goes_with_the_leadership_and_a_proclaim_keeps_the_token() {
    let env = Env::new("election-record");
    let e = election(&env, "record").value("first");
    let leadership = e.campaign().await.unwrap();
    let record_key = format!("{}{RECORD_SUFFIX}", leadership.key());
    let record = env
        .client
        .kv_get(&record_key)
        .await
        .unwrap()
        .expect("record");
    assert_eq!(record.session.as_deref(), Some(leadership.session_id()));
    let json: serde_json::Value = serde_json::from_slice(&record.value).unwrap();
    assert_eq!(json["fencing_token"], leadership.fencing_token());

    leadership.proclaim("second").await.unwrap();
    let key = env.client.kv_get(leadership.key()).await.unwrap().unwrap();
    assert_eq!(key.value, b"second");
    assert!(
        key.modify_index > leadership.fencing_token(),
        "a proclaim is a write"
    );
    assert_eq!(
        key.flags,
        consul_lock_runtime::GO_LOCK_FLAG,
        "Go's lock flag kept"
    );
    let leader = e.leader().await.unwrap().unwrap();
    assert_eq!(
        leader.fencing_token,
        leadership.fencing_token(),
        "the token does not move"
    );
    assert_eq!(leader.value_str(), Some("second"));
    let since = leader.since.expect("since, from the record");
    assert!(since <= std::time::SystemTime::now());

    // A deposed leader's proclaim is refused by Consul and writes nothing.
    let stale = leadership.clone();
    env.client
        .destroy_session(leadership.session_id())
        .await
        .unwrap();
    let refused = stale.proclaim("stale").await.unwrap_err();
    assert!(
        matches!(&refused, Error::LockLost { key, .. } if key == leadership.key()),
        "{refused}"
    );
    assert!(refused.to_string().contains("no longer leads"), "{refused}");
    assert!(env.client.kv_get(leadership.key()).await.unwrap().is_none());
    assert!(
        env.client.kv_get(&record_key).await.unwrap().is_none(),
        "the record went with the session"
    );
}

#[tokio::test]
async fn a_candidate_whose_session_ends_while_it_waits_is_no_phantom_leader() {
    // etcd's complaint: Campaign returned after the candidate's own session had expired.
    let env = Env::new("election-phantom");
    let leader = election(&env, "phantom").campaign().await.unwrap();
    let client = env.another_client();
    let standby = election(&env, "phantom").client(&client);
    let waiting = tokio::spawn(async move { standby.campaign().await });
    env.until_queued(&env.key("phantom/leader"), 1).await;
    let waiter = env.session_other_than(leader.session_id()).await;
    env.client.destroy_session(&waiter).await.unwrap(); // the candidate's session ends
    leader.resign().await.unwrap();
    let elected = waiting.await.unwrap().unwrap();
    assert_ne!(elected.session_id(), waiter, "elected with a live session");
    let held = env.client.kv_get(elected.key()).await.unwrap().unwrap();
    assert_eq!(
        held.session.as_deref(),
        Some(elected.session_id()),
        "Consul agrees"
    );
    assert!(elected.is_leader());
    elected.resign().await.unwrap();
}

async fn next(observer: &mut consul_lock_runtime::Observe) -> Observation {
    tokio::time::timeout(Duration::from_secs(20), observer.next())
        .await
        .expect("an observation in time")
        .expect("the stream goes on")
        .expect("no error")
}

#[tokio::test]
async fn observers_see_every_leader_once_and_every_gap() {
    let env = Env::new("election-observe");
    let e = election(&env, "observe");
    let mut observer = e.observe();
    assert_eq!(
        next(&mut observer).await,
        Observation::NoLeader,
        "the state first"
    );

    let a = e.campaign().await.unwrap();
    match next(&mut observer).await {
        Observation::Leader(l) => {
            assert_eq!(
                (l.session.as_str(), l.fencing_token),
                (a.session_id(), a.fencing_token())
            );
            assert!(l.since.is_some(), "the record was waited for");
            assert!(l.node.is_some());
        }
        other => panic!("expected leader A, got {other:?}"),
    }
    a.proclaim("moved").await.unwrap();
    match next(&mut observer).await {
        Observation::Proclaimed(l) => assert_eq!(l.value, b"moved"),
        other => panic!("expected the proclaim, got {other:?}"),
    }

    // A hand-over to a queued candidate: the gap is too short to see, and still reported.
    let client = env.another_client();
    let standby = e.clone().client(&client);
    let waiting = tokio::spawn(async move { standby.campaign().await });
    env.until_queued(&env.key("observe/leader"), 1).await;
    a.resign().await.unwrap();
    let b = waiting.await.unwrap().unwrap();
    assert_eq!(next(&mut observer).await, Observation::NoLeader);
    match next(&mut observer).await {
        Observation::Leader(l) => assert_eq!(l.fencing_token, b.fencing_token()),
        other => panic!("expected leader B, got {other:?}"),
    }
    b.resign().await.unwrap();
    assert_eq!(next(&mut observer).await, Observation::NoLeader);
}

#[tokio::test]
async fn a_lost_leadership_stops_the_work_at_once_and_the_runner_campaigns_again() {
    let env = Env::new("election-lost");
    let e = election(&env, "lost");
    let events = Arc::new(Mutex::new(Vec::<RunEvent>::new()));
    let log = events.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let terms = Arc::new(Mutex::new(Vec::new()));
    let seen = terms.clone();
    let runner = e
        .runner()
        .on_event(move |event| log.lock().unwrap().push(event))
        .until(async move {
            let _ = stopped.await;
        });
    let running = tokio::spawn(runner.run(move |leadership| {
        seen.lock().unwrap().push(leadership.clone());
        async move {
            // Work that never looks at `stopping()`: it must be cancelled.
            futures::future::pending::<()>().await;
            Ok::<(), Error>(())
        }
    }));
    eventually(Duration::from_secs(20), "first term", || {
        terms.lock().unwrap().len() == 1
    })
    .await;
    let first = terms.lock().unwrap()[0].clone();
    env.client
        .destroy_session(first.session_id())
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "second term", || {
        terms.lock().unwrap().len() == 2
    })
    .await;
    assert!(!first.is_leader());
    // The session destroyed: the key watch tells it from a deleted key.
    assert!(matches!(
        first.stop_cause(),
        Some(StopCause::Lost(LostReason::SessionInvalidated))
    ));
    let second = terms.lock().unwrap()[1].clone();
    assert!(second.fencing_token() > first.fencing_token());
    eventually(
        Duration::from_secs(20),
        "the observer sees the second term",
        || {
            let token = second.fencing_token();
            events
                .lock()
                .unwrap()
                .iter()
                .any(|e| matches!(e, RunEvent::NewLeader(l) if l.fencing_token == token))
        },
    )
    .await;
    stop.send(()).unwrap();
    assert_eq!(running.await.unwrap().unwrap(), None);
    assert!(!second.is_leader(), "resigned when stopped");

    let events = events.lock().unwrap().clone();
    let ours: Vec<&RunEvent> = events
        .iter()
        .filter(|e| matches!(e, RunEvent::Started { .. } | RunEvent::Stopped { .. }))
        .collect();
    assert_eq!(ours.len(), 4, "{ours:?}");
    match ours[1] {
        RunEvent::Stopped {
            cause: StopCause::Lost(_),
            cancelled,
            took,
            fencing_token,
        } => {
            assert!(*cancelled, "the work ignored the signal: cancelled");
            assert!(*took < Duration::from_millis(100), "at once: {took:?}");
            assert_eq!(*fencing_token, first.fencing_token());
        }
        other => panic!("expected a loss, got {other}"),
    }
    assert!(matches!(
        ours[3],
        RunEvent::Stopped {
            cause: StopCause::Resigned,
            ..
        }
    ));
    assert!(events
        .iter()
        .any(|e| matches!(e, RunEvent::NewLeader(l) if l.fencing_token == second.fencing_token())));
    assert!(env.my_sessions().await.is_empty(), "no standby left behind");
    assert!(env.my_keys().await.is_empty());
}

#[tokio::test]
async fn a_process_that_never_led_is_never_told_it_stopped() {
    // client-go's complaint: OnStoppedLeading fired for a process that never led.
    let env = Env::new("election-never-led");
    let e = election(&env, "never");
    let leader = e.campaign().await.unwrap();
    let client = env.another_client();
    let events = Arc::new(Mutex::new(Vec::<RunEvent>::new()));
    let log = events.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = e
        .clone()
        .client(&client)
        .runner()
        .on_event(move |event| log.lock().unwrap().push(event))
        .until(async move {
            let _ = stopped.await;
        });
    let running = tokio::spawn(runner.run(|_| async { Ok::<(), Error>(()) }));
    env.until_queued(&env.key("never/leader"), 1).await;
    eventually(
        Duration::from_secs(20),
        "the standby sees the leader",
        || {
            events
                .lock()
                .unwrap()
                .iter()
                .any(|e| matches!(e, RunEvent::NewLeader(_)))
        },
    )
    .await;
    stop.send(()).unwrap();
    assert_eq!(running.await.unwrap().unwrap(), None);
    let events = events.lock().unwrap().clone();
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, RunEvent::Started { .. } | RunEvent::Stopped { .. })),
        "{events:?}"
    );
    assert!(leader.is_leader());
    leader.resign().await.unwrap();
    assert!(env.my_sessions().await.is_empty(), "the standby withdrew");
}

#[tokio::test]
async fn work_that_returns_ends_the_run_and_resigns() {
    let env = Env::new("election-returns");
    let e = election(&env, "returns");
    let token = e
        .run(|leadership| async move { Ok::<u64, Error>(leadership.fencing_token()) })
        .await
        .unwrap();
    assert!(token > 0);
    assert!(e.leader().await.unwrap().is_none());
    let failed: Result<(), Error> = e
        .run(|_| async {
            Err(Error::Runtime {
                reason: "the work's own error".into(),
            })
        })
        .await;
    assert!(failed
        .unwrap_err()
        .to_string()
        .contains("the work's own error"));
    assert!(env.my_sessions().await.is_empty());
}

#[tokio::test]
async fn renewals_that_get_no_answer_stop_the_work_before_the_lease_runs_out() {
    let env = Env::new("election-expiring");
    if !env.embedded_or_skip("renewals_that_get_no_answer_stop_the_work_before_the_lease_runs_out")
    {
        return;
    }
    let server = env.consul.server().unwrap();
    let e = election(&env, "expiring"); // TTL 1 s, grace 200 ms
    let leadership = e.campaign().await.unwrap();
    let grace = leadership.grace();
    let watched = leadership.clone();
    let work = tokio::spawn(async move {
        // Works until told to stop, then takes 50 ms to wind down.
        let cause = watched.stopping().await;
        let told = Instant::now();
        let held_when_told = watched.is_leader();
        tokio::time::sleep(Duration::from_millis(50)).await;
        (cause, told, held_when_told, watched.is_leader())
    });
    server.set_stalled(true); // renewals get no answer
    let (cause, told, held_when_told, held_after) =
        tokio::time::timeout(Duration::from_secs(10), work)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(cause, StopCause::Expiring);
    assert!(
        held_when_told && held_after,
        "told while still leader, and done in the grace"
    );
    // The lease ends about `grace` after the work was told.
    eventually(Duration::from_secs(10), "the lease ends", || {
        !leadership.is_leader()
    })
    .await;
    let left = told.elapsed();
    assert!(
        left + Duration::from_millis(100) >= grace,
        "told {left:?} before the end, grace {grace:?}"
    );
    server.set_stalled(false);
    drop(leadership);
}

#[tokio::test]
async fn bad_options_are_refused_before_any_request() {
    let env = Env::new("election-options");
    let e = election(&env, "options");
    let long_grace = e.clone().grace(env.min_ttl());
    assert!(matches!(
        long_grace.campaign().await,
        Err(Error::InvalidOption {
            option: "grace",
            ..
        })
    ));
    let bad = Election::new("a//b").client(&env.client);
    assert!(matches!(
        bad.campaign().await,
        Err(Error::InvalidKey { .. })
    ));
    assert!(matches!(bad.leader().await, Err(Error::InvalidKey { .. })));
    let mut observer = bad.observe();
    assert!(matches!(
        observer.next().await,
        Some(Err(Error::InvalidKey { .. }))
    ));
    assert!(
        observer.next().await.is_none(),
        "an error that retrying cannot cure ends the stream"
    );
    let short = e.clone().ttl(Duration::from_millis(10));
    assert!(matches!(
        short.campaign().await,
        Err(Error::InvalidOption {
            option: "lock_timeout",
            ..
        })
    ));
    assert_eq!(env.client.requests_sent(), 0);
}

#[tokio::test]
async fn a_deposed_leader_queues_behind_the_candidates_that_waited() {
    let env = Env::new("election-deposed");
    let e = election(&env, "deposed");
    let terms = Arc::new(Mutex::new(Vec::new()));
    let seen = terms.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = e.runner().until(async move {
        let _ = stopped.await;
    });
    let running = tokio::spawn(runner.run(move |leadership| {
        seen.lock().unwrap().push(leadership.clone());
        async move {
            leadership.stopping().await;
            Ok::<(), Error>(())
        }
    }));
    eventually(Duration::from_secs(20), "elected", || {
        terms.lock().unwrap().len() == 1
    })
    .await;
    let client = env.another_client();
    let standby = e.clone().client(&client);
    let waiting = tokio::spawn(async move { standby.campaign().await });
    env.until_queued(&env.key("deposed/leader"), 1).await;
    let first = terms.lock().unwrap()[0].clone();
    env.client
        .destroy_session(first.session_id())
        .await
        .unwrap();
    let next = waiting.await.unwrap().unwrap();
    assert!(
        next.is_leader(),
        "the candidate that waited leads, not the deposed leader"
    );
    assert_eq!(
        terms.lock().unwrap().len(),
        1,
        "the deposed leader waits its turn"
    );
    stop.send(()).unwrap();
    assert_eq!(running.await.unwrap().unwrap(), None);
    next.resign().await.unwrap();
}

#[tokio::test]
async fn an_observer_survives_an_election_and_a_restart_that_loses_the_state() {
    if std::env::var_os("CONSUL_HTTP_ADDR").is_some() {
        eprintln!("observer restart test: restarts its own embedded server, also when CONSUL_HTTP_ADDR is set");
    }
    let config =
        consul_lock_testkit::ServerConfig::default().session_ttl_min(Duration::from_secs(1));
    let mut server = consul_lock_testkit::TestServer::start_with(config).unwrap();
    let client = consul_lock_runtime::Client::builder()
        .address(server.url())
        .session_ttl_min(Duration::from_secs(1))
        .build()
        .unwrap();
    let e = Election::new("restarts")
        .client(&client)
        .ttl(Duration::from_secs(1));
    let mut observer = e.observe();
    assert_eq!(next(&mut observer).await, Observation::NoLeader);
    let a = e.campaign().await.unwrap();
    assert!(
        matches!(next(&mut observer).await, Observation::Leader(l) if l.fencing_token == a.fencing_token())
    );

    // A Consul election: the observer's reads fail for a second, then go on; nothing changed.
    server.election_for(Duration::from_millis(500));
    // Writes fail during the election (as Consul's do: at once, with a 5xx); a leader retries.
    let started = Instant::now();
    while let Err(e) = a.proclaim("after the election").await {
        assert!(e.is_transient(), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still failing: {e}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        matches!(next(&mut observer).await, Observation::Proclaimed(l) if l.value == b"after the election")
    );

    // The agent restarts without its state: the leader is gone (its index starts over).
    server.restart(false).unwrap();
    assert_eq!(next(&mut observer).await, Observation::NoLeader);
    // Another process campaigns (in this task, `a` still counts as held: re-entry).
    let other = consul_lock_runtime::Client::builder()
        .address(server.url())
        .session_ttl_min(Duration::from_secs(1))
        .build()
        .unwrap();
    let b = e.clone().client(&other).campaign().await.unwrap();
    assert!(
        matches!(next(&mut observer).await, Observation::Leader(l) if l.session == b.session_id())
    );
    drop(a);
    b.resign().await.unwrap();
}
