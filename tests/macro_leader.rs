//! `#[consul_lock::leader(name = "...")]`: the body runs only while leading, is cancelled when
//! the leadership is lost, and the function campaigns again; against the embedded test
//! server (or a real agent when `CONSUL_HTTP_ADDR` is set).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consul_lock::{Client, Election, Error, Leadership};
use consul_lock_testkit::TestConsul;

struct Env {
    _consul: TestConsul,
    client: Client,
    inside: AtomicUsize,
    most: AtomicUsize,
    terms: Mutex<Vec<Leadership>>,
}

impl Env {
    fn new() -> Arc<Env> {
        let consul = common::consul();
        Arc::new(Env {
            client: common::client(&consul),
            _consul: consul,
            inside: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            terms: Mutex::new(Vec::new()),
        })
    }

    fn election(&self, name: &str) -> Election {
        Election::new(name).client(&self.client)
    }
}

#[derive(Debug)]
enum AppError {
    Lock(#[allow(dead_code)] Error),
    Job(&'static str),
}

impl From<Error> for AppError {
    fn from(e: Error) -> Self {
        AppError::Lock(e)
    }
}

#[consul_lock::leader(name = "macro-leader/once", client = env.client, lock_timeout_seconds = 10)]
async fn once(leadership: Leadership, env: Arc<Env>) -> Result<u64, AppError> {
    let now = env.inside.fetch_add(1, Ordering::SeqCst) + 1;
    env.most.fetch_max(now, Ordering::SeqCst);
    assert!(leadership.is_leader());
    tokio::time::sleep(Duration::from_millis(30)).await;
    env.inside.fetch_sub(1, Ordering::SeqCst);
    Ok(leadership.fencing_token())
}

#[tokio::test]
async fn the_body_runs_only_while_leading_one_caller_at_a_time() {
    let env = Env::new();
    let calls: Vec<_> = (0..3).map(|_| tokio::spawn(once(env.clone()))).collect();
    let mut tokens = Vec::new();
    for call in calls {
        tokens.push(call.await.unwrap().unwrap());
    }
    assert_eq!(
        env.most.load(Ordering::SeqCst),
        1,
        "never two bodies at once"
    );
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), 3, "three leaderships, three tokens");
    let election = env.election("macro-leader/once");
    assert!(
        election.leader().await.unwrap().is_none(),
        "resigned when the body returned"
    );
}

#[consul_lock::leader(name = "macro-leader/again", client = env.client, lock_timeout_seconds = 10, grace_ms = 500)]
async fn until_second_term(leadership: Leadership, env: Arc<Env>) -> Result<usize, AppError> {
    let term = {
        let mut terms = env.terms.lock().unwrap();
        terms.push(leadership.clone());
        terms.len()
    };
    if term == 1 {
        // Ignores `stopping()`: cancelled when the leadership is lost.
        futures::future::pending::<()>().await;
    }
    Ok(term)
}

#[tokio::test]
async fn a_lost_leadership_cancels_the_body_and_the_function_campaigns_again() {
    let env = Env::new();
    let running = tokio::spawn(until_second_term(env.clone()));
    let first = loop {
        if let Some(first) = env.terms.lock().unwrap().first().cloned() {
            break first;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    env.client
        .destroy_session(first.session_id())
        .await
        .unwrap(); // an operator ends it
    let term = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the second term returns")
        .unwrap()
        .unwrap();
    assert_eq!(term, 2);
    assert!(!first.is_leader());
    let second = env.terms.lock().unwrap()[1].clone();
    assert!(second.fencing_token() > first.fencing_token());
    assert!(!second.is_leader(), "resigned after returning");
}

struct Service {
    client: Client,
    address: String,
}

impl Service {
    #[consul_lock::leader(name = "macro-leader/method", client = self.client, value = &self.address)]
    async fn lead(&self, leadership: Leadership, fail: bool) -> Result<String, AppError> {
        if fail {
            return Err(AppError::Job("the job failed"));
        }
        let election = Election::new("macro-leader/method").client(&self.client);
        let leader = election.leader().await?.expect("this process leads");
        assert_eq!(leader.session, leadership.session_id());
        Ok(leader.value_str().unwrap_or_default().to_owned())
    }
}

#[tokio::test]
async fn methods_values_and_the_bodys_errors() {
    let consul = common::consul();
    let service = Service {
        client: common::client(&consul),
        address: "10.0.0.7:8080".into(),
    };
    assert_eq!(service.lead(false).await.unwrap(), "10.0.0.7:8080");
    assert!(matches!(
        service.lead(true).await,
        Err(AppError::Job("the job failed"))
    ));
    let election = Election::new("macro-leader/method").client(&service.client);
    assert!(election.leader().await.unwrap().is_none());
}
