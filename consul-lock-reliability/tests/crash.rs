//! A holder killed with SIGKILL cannot release: the key must be freed by its TTL, no sooner
//! than the TTL after the holder's last session write and no later than 2 × TTL + lock-delay
//! (the library's lock-delay is 0). A lock on the client's shared session is freed by the
//! shared session's TTL: within 2 × that TTL, however long its lock timeout. The server lives
//! in this process and outlives the child.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use consul_lock::Lock;
use consul_lock_reliability::clock::{monotonic_ns, ms_between};
use consul_lock_reliability::support::{assert_clean, client, consul, ttl, unique_prefix};
use consul_lock_testkit::TestConsul;

/// Slack for scheduling and process start on a loaded machine.
const SLACK: Duration = Duration::from_millis(300);
/// The library sends `LockDelay: 0s`.
const LOCK_DELAY: Duration = Duration::ZERO;

struct Holder {
    child: Child,
    lines: std::io::Lines<BufReader<ChildStdout>>,
}

impl Holder {
    /// A holder of `key` with a lock timeout of the server's TTL minimum, or, with
    /// `shared_ttl`, of ten times that on a shared session with that TTL.
    fn start(
        consul: &TestConsul,
        prefix: &str,
        key: &str,
        renew: bool,
        shared_ttl: Option<Duration>,
    ) -> Holder {
        let ttl = ttl(consul);
        let lock_timeout = if shared_ttl.is_some() { ttl * 10 } else { ttl };
        let mut args = vec![
            consul.url(),
            ttl.as_millis().to_string(),
            prefix.to_owned(),
            key.to_owned(),
            lock_timeout.as_millis().to_string(),
            u8::from(renew).to_string(),
            u8::from(consul.server().is_none()).to_string(),
        ];
        args.extend(shared_ttl.map(|t| t.as_millis().to_string()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_crash-holder"))
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start crash-holder");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Holder { child, lines }
    }

    /// The next line the holder printed, split into words.
    fn next(&mut self) -> Vec<String> {
        let line = self
            .lines
            .next()
            .expect("the holder printed a line")
            .expect("read");
        line.split_whitespace().map(str::to_owned).collect()
    }

    fn kill(mut self) -> u64 {
        self.child.kill().expect("SIGKILL the holder");
        let at = monotonic_ns();
        let status = self.child.wait().expect("wait");
        assert!(!status.success(), "killed: {status}");
        at
    }
}

/// Runs one crash scenario and returns (started_ns, acquired_ns, killed_ns, taken_ns,
/// old token, new token).
async fn crash_and_take_over(
    consul: Arc<TestConsul>,
    prefix: String,
    key: &'static str,
    renew: bool,
    shared: bool,
) -> (u64, u64, u64, u64, u64, u64) {
    let consul = &*consul;
    let prefix = prefix.as_str();
    let client = client(consul);
    let ttl = ttl(consul);
    let mut holder = Holder::start(consul, prefix, key, renew, shared.then_some(ttl));
    let start = holder.next();
    assert_eq!(start[0], "START");
    let started_ns: u64 = start[1].parse().expect("ns");
    let acquired = holder.next();
    assert_eq!(acquired[0], "ACQUIRED", "{acquired:?}");
    let old_token: u64 = acquired[1].parse().expect("token");
    let acquired_ns: u64 = acquired[2].parse().expect("ns");
    let sessions = client.sessions().await.expect("list sessions");
    let session = sessions
        .iter()
        .find(|s| s.id == acquired[3])
        .expect("the holder's session");
    assert_eq!(
        session.name.starts_with("consul-lock: shared #"),
        shared,
        "{key}: {}",
        session.name
    );
    let lock = Lock::new(key)
        .client(&client)
        .key_prefix(prefix)
        .lock_timeout(ttl);
    if renew {
        // Renewal keeps the child's lock past its TTL: a one-try acquire after 1.5 × TTL fails.
        tokio::time::sleep(ttl * 3 / 2).await;
        assert!(
            lock.try_acquire().await.expect("try").is_none(),
            "the renewing holder lost the key before it was killed"
        );
    }
    let killed_ns = holder.kill();
    let guard = lock
        .clone()
        .acquire_timeout(ttl * 2 + LOCK_DELAY + SLACK * 2)
        .acquire()
        .await
        .expect("the key is freed by the TTL after the holder was killed");
    let taken_ns = monotonic_ns();
    let new_token = guard.fencing_token();
    assert!(
        new_token > old_token,
        "the new holder's token {new_token} is not above the killed holder's {old_token}"
    );
    guard.release().await.expect("release");
    (
        started_ns,
        acquired_ns,
        killed_ns,
        taken_ns,
        old_token,
        new_token,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_holder_frees_the_key_after_the_ttl() {
    let consul = consul();
    let prefix = unique_prefix("crash");
    let ttl = ttl(&consul);
    let ttl_ms = ttl.as_secs_f64() * 1000.0;
    let limit_ms = (ttl * 2 + LOCK_DELAY + SLACK).as_secs_f64() * 1000.0;

    // Both run at once: a holder without renewal, killed right after it acquired, and a
    // renewing holder, killed after it held the key for 1.5 × TTL.
    // Each scenario is its own task: reading the child's output blocks only that task.
    let consul = Arc::new(consul);
    let plain = tokio::spawn(crash_and_take_over(
        consul.clone(),
        prefix.clone(),
        "plain",
        false,
        false,
    ));
    let renewing = tokio::spawn(crash_and_take_over(
        consul.clone(),
        prefix.clone(),
        "renewing",
        true,
        false,
    ));
    // A lock timeout of 10 × TTL on a shared session with the TTL: freed by the session's.
    let shared = tokio::spawn(crash_and_take_over(
        consul.clone(),
        prefix.clone(),
        "shared",
        false,
        true,
    ));
    let plain = plain.await.expect("plain scenario");
    let renewing = renewing.await.expect("renewing scenario");
    let shared = shared.await.expect("shared-session scenario");

    let (started, acquired, killed, taken, old, new) = plain;
    println!(
        "plain holder: acquired {:.0} ms after start, killed {:.0} ms after acquiring, key taken {:.0} ms after the kill \
         ({:.0} ms after the holder's session was created at the earliest); tokens {old} -> {new}; TTL {ttl_ms:.0} ms",
        ms_between(started, acquired),
        ms_between(acquired, killed),
        ms_between(killed, taken),
        ms_between(started, taken),
    );
    // The session was created after START: the key cannot be free before START + TTL.
    assert!(
        ms_between(started, taken) >= ttl_ms,
        "the key was free {:.0} ms after the holder started, before its TTL",
        ms_between(started, taken)
    );
    // ...and must be free within 2 × TTL + lock-delay of the last session write, which
    // happened before ACQUIRED.
    assert!(
        ms_between(acquired, taken) <= limit_ms,
        "the key was taken {:.0} ms after the holder acquired it (limit {limit_ms:.0} ms)",
        ms_between(acquired, taken)
    );

    let (_, _, killed, taken, old, new) = renewing;
    println!(
        "renewing holder: key taken {:.0} ms after the kill; tokens {old} -> {new}",
        ms_between(killed, taken),
    );
    // The last renewal was before the kill: free within 2 × TTL + lock-delay of the kill.
    assert!(
        ms_between(killed, taken) <= limit_ms,
        "the key was taken {:.0} ms after the kill (limit {limit_ms:.0} ms)",
        ms_between(killed, taken)
    );

    let (_, acquired, killed, taken, old, new) = shared;
    println!(
        "holder on a shared session (lock timeout 10 × TTL): key taken {:.0} ms after the kill, \
         {:.0} ms after it acquired; tokens {old} -> {new}",
        ms_between(killed, taken),
        ms_between(acquired, taken),
    );
    // The shared session was renewed (or created) before the kill: free within 2 × its TTL.
    assert!(
        ms_between(killed, taken) <= limit_ms,
        "the key was taken {:.0} ms after the kill (limit {limit_ms:.0} ms, 2 x the shared \
         session's TTL; the lock timeout is 10 x TTL)",
        ms_between(killed, taken)
    );
    let client = client(&consul);
    assert_clean(&client, &prefix).await;
}
