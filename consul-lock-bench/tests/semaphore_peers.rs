//! The semaphore shares its slots with Go's `api.Semaphore`, driven through `consul lock -n N
//! PREFIX cmd` (the Consul CLI, found through `CONSUL_BIN` or `consul` on `PATH`). Without the
//! binary the tests say so and pass without checking. Runs against `CONSUL_HTTP_ADDR` when it
//! is set, else the embedded test server.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use consul_lock::{Client, Semaphore};
use consul_lock_bench::peers::{Peer, PeerKind};
use consul_lock_testkit::TestConsul;

struct Setup {
    peer: Peer,
    _consul: TestConsul,
    url: String,
    client: Client,
    /// The semaphore's key, relative to the default key prefix.
    key: String,
    /// The full prefix, as `consul lock` is given it.
    prefix: String,
}

fn setup(name: &str) -> Option<Setup> {
    let peer = match Peer::find(PeerKind::ConsulCli) {
        Ok(p) => p,
        Err(absent) => {
            eprintln!("SKIPPED (no consul binary): {}", absent.reason);
            return None;
        }
    };
    let consul =
        TestConsul::from_env_or_start().expect("start the test server or reach CONSUL_HTTP_ADDR");
    let url = consul.url();
    let client = Client::builder()
        .address(url.clone())
        .session_ttl_min(consul.session_ttl_min())
        .build()
        .expect("a client");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let key = format!("sem-peers/{name}-{:x}{nanos:x}", std::process::id());
    let prefix = format!("{}{key}", consul_lock::defaults::key_prefix());
    eprintln!("peer: {}; server: {url}; prefix {prefix}", peer.describe());
    Some(Setup {
        peer,
        _consul: consul,
        url,
        client,
        key,
        prefix,
    })
}

/// A `consul lock -n N` holder: it prints `held` once it has a slot and keeps it until its
/// stdin closes.
struct CliHolder {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl CliHolder {
    fn spawn(s: &Setup, limit: u32) -> CliHolder {
        let mut c = s.peer.command(&s.url, "lock");
        c.args([
            "lock".to_owned(),
            format!("-n={limit}"),
            "-pass-stdin".to_owned(),
            "-name=consul-lock semaphore peer".to_owned(),
            s.prefix.clone(),
            "echo held; cat >/dev/null".to_owned(),
        ]);
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn consul lock");
        let stdin = child.stdin.take();
        CliHolder { child, stdin }
    }

    /// Blocks until the CLI says it holds a slot.
    fn wait_held(&mut self) {
        let stdout = self.child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read");
        assert_eq!(line.trim(), "held", "consul lock did not take a slot");
    }

    /// Closes stdin: the command ends and the CLI gives its slot back.
    fn release(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let status = self.child.wait().expect("wait for consul lock");
        assert!(status.success(), "consul lock ended with {status}");
    }
}

impl Drop for CliHolder {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `consul lock -n N -timeout T PREFIX true`: whether the CLI got a slot within `T`.
fn cli_try(s: &Setup, limit: u32, timeout: Duration) -> (bool, String) {
    let mut c: Command = s.peer.command(&s.url, "lock");
    c.args([
        "lock".to_owned(),
        format!("-n={limit}"),
        format!("-timeout={}ms", timeout.as_millis()),
        s.prefix.clone(),
        "true".to_owned(),
    ]);
    let out = c.stdin(Stdio::null()).output().expect("run consul lock");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn block<T>(work: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(work)
}

fn holders(s: &Setup) -> serde_json::Map<String, serde_json::Value> {
    let entry = block(s.client.kv_get(&format!("{}/.lock", s.prefix)))
        .expect("read .lock")
        .expect(".lock exists");
    let value: serde_json::Value = serde_json::from_slice(&entry.value).expect("JSON");
    value["Holders"].as_object().cloned().unwrap_or_default()
}

/// The last holder gone (ours or the CLI's), nothing is left under the prefix: `.lock` is
/// deleted by whoever leaves last (this library, or the CLI, which calls Go's `Destroy`).
///
/// One exception, Go's and not ours: a `consul lock -n N` that gives up waiting closes its
/// session's renewal and exits, and the goroutine that would destroy the session may not run
/// before the process ends (seen on a real agent). Its contender key then stays, held by that
/// live session, until the session's TTL ends it and Consul deletes the key (behaviour
/// `delete`). So a key may be left only if a live `delete` session that is not one of ours
/// holds it; such sessions are ended here, as an operator would, and the prefix must then be
/// empty.
fn assert_nothing_left(s: &Setup) {
    let left = block(s.client.kv_list(&format!("{}/", s.prefix))).expect("list");
    if left.is_empty() {
        return;
    }
    let sessions = block(s.client.sessions()).expect("list sessions");
    for entry in &left {
        let holder = entry
            .session
            .as_deref()
            .and_then(|id| sessions.iter().find(|info| info.id == id));
        let Some(holder) = holder else {
            panic!("left under the prefix with no live session: {}", entry.key);
        };
        assert!(
            holder.behavior == "delete" && !holder.name.starts_with("consul-lock"),
            "left under the prefix, held by {holder:?}: {}",
            entry.key
        );
        eprintln!(
            "left by the Go CLI until its session's TTL ({}) ends: {}; ending session {}",
            holder.ttl, entry.key, holder.id
        );
        block(s.client.destroy_session(&holder.id)).expect("destroy the CLI's session");
    }
    let left = block(s.client.kv_keys(&format!("{}/", s.prefix))).expect("list");
    assert!(left.is_empty(), "left under the prefix: {left:?}");
}

#[test]
fn the_cli_and_this_library_share_the_slots() {
    let Some(s) = setup("share") else { return };
    let sem = Semaphore::new(s.key.clone(), 2)
        .client(&s.client)
        .acquire_timeout(Duration::from_secs(20));

    // The CLI takes one slot, this library the other: the semaphore is full for both.
    let mut cli = CliHolder::spawn(&s, 2);
    cli.wait_held();
    let ours = sem.acquire_blocking().expect("the second slot");
    assert_eq!(holders(&s).len(), 2, "one CLI holder and one of ours");
    let full = sem.clone().acquire_timeout(Duration::ZERO);
    assert!(full.try_acquire_blocking().expect("try").is_none());
    let (got, stderr) = cli_try(&s, 2, Duration::from_millis(500));
    assert!(!got, "the CLI took a third slot of two: {stderr}");

    // The CLI gives its slot back: a waiting holder of ours takes it.
    let waiter = std::thread::spawn({
        let sem = sem.clone();
        move || sem.acquire_blocking()
    });
    cli.release();
    let second = waiter.join().expect("waiter").expect("the CLI's slot");
    assert_eq!(holders(&s).len(), 2);

    // We give one back: the CLI gets it.
    ours.release_blocking().expect("release");
    let (got, stderr) = cli_try(&s, 2, Duration::from_secs(10));
    assert!(got, "the CLI did not get the slot we gave back: {stderr}");
    second.release_blocking().expect("release");
    assert_nothing_left(&s);
}

/// `consul lock -n 1` is Go's `api.Lock`, not the semaphore, so the smallest shared
/// semaphore is two slots: we hold both, the CLI waits, and wakes when we give one back.
#[test]
fn a_cli_waiter_wakes_on_our_release() {
    let Some(s) = setup("wake") else { return };
    let sem = Semaphore::new(s.key.clone(), 2).client(&s.client);
    let ours = sem.acquire_blocking().expect("a slot");
    let other = sem.acquire_blocking().expect("the other slot");
    let mut cli = CliHolder::spawn(&s, 2);
    let reader = std::thread::spawn(move || {
        cli.wait_held();
        (cli, std::time::Instant::now())
    });
    // The CLI has written its contender key (`.lock`, ours two, the CLI's): it is waiting
    // now, and cannot be a holder while we hold both slots.
    let tree = format!("{}/", s.prefix);
    let give_up = std::time::Instant::now() + Duration::from_secs(20);
    while block(s.client.kv_keys(&tree)).expect("list").len() < 4 {
        assert!(
            !reader.is_finished(),
            "the CLI ended or took a slot we hold"
        );
        assert!(
            std::time::Instant::now() < give_up,
            "the CLI never wrote its contender key"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(holders(&s).len(), 2);
    let released = std::time::Instant::now();
    ours.release_blocking().expect("release");
    let (cli, held_at) = reader.join().expect("the CLI takes the slot we gave back");
    let handoff = held_at.duration_since(released);
    eprintln!("hand-off to the CLI: {handoff:?}");
    assert!(handoff < Duration::from_secs(5), "hand-off {handoff:?}");
    let full = sem
        .clone()
        .acquire_timeout(Duration::ZERO)
        .try_acquire_blocking()
        .expect("try");
    assert!(full.is_none(), "the CLI and we hold both slots");
    cli.release();
    other.release_blocking().expect("release");
    assert_nothing_left(&s);
}

#[test]
fn a_limit_the_cli_disagrees_with_is_named() {
    let Some(s) = setup("mismatch") else { return };
    let mut cli = CliHolder::spawn(&s, 3);
    cli.wait_held();
    let err = Semaphore::new(s.key.clone(), 2)
        .client(&s.client)
        .acquire_blocking()
        .expect_err("limit 2 against the CLI's 3");
    eprintln!("{err}");
    assert!(err.to_string().contains("limit 3") && err.to_string().contains("limit 2"));
    cli.release();
}
