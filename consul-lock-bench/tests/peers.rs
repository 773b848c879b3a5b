//! Interoperability with the other lock clients a company's services use on the same keys:
//! Consul's Go client (`api.Lock`, through the `consul lock` command of a real Consul binary,
//! or the Go peer program when it is built) and the Python library `consul-lock` 0.1.6.
//!
//! Each direction is checked: this library holds a key → the peer waits (no conflict error)
//! and takes it after this library's release; the peer holds → this library waits in its
//! queue and takes the key after the peer's release. A peer that is not installed is skipped
//! with a plain `SKIPPED` message saying what is missing (`peers/install.sh` installs them).
//! Runs against `CONSUL_HTTP_ADDR` when it is set, else the embedded test server.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use consul_lock::{Blocker, Client, Error, Lock, LockGuard, GO_LOCK_FLAG, WAITERS_SUFFIX};
use consul_lock_bench::peers::{HeldLock, Peer, PeerError, PeerKind, TryOutcome};
use consul_lock_testkit::TestConsul;

/// Longer than any hand-over here takes: the waits are ended by events, this only bounds them.
const PATIENT: Duration = Duration::from_secs(30);

/// How often a test looks again for a change in another process (a peer's session, a waiter's
/// queue entry); no blocking query covers the session list.
const POLL: Duration = Duration::from_millis(10);

/// The tests watch the session list for a peer's session: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// The Go-dialect peer: the Go program if built, else `consul lock`; `None` (with the reasons
/// printed) when neither is there.
fn go_peer() -> Option<Peer> {
    let go = match Peer::find(PeerKind::Go) {
        Ok(p) => return Some(p),
        Err(a) => a,
    };
    match Peer::find(PeerKind::ConsulCli) {
        Ok(p) => {
            eprintln!(
                "peers: the Go peer is absent ({}); using {} instead (api.Lock inside the CLI)",
                go.reason,
                p.describe()
            );
            Some(p)
        }
        Err(cli) => {
            eprintln!(
                "SKIPPED (no Go-dialect peer): the Go peer: {}; consul lock: {}",
                go.reason, cli.reason
            );
            None
        }
    }
}

/// `kind`, or `None` after saying plainly that the test is skipped and why.
fn peer(kind: PeerKind) -> Option<Peer> {
    match Peer::find(kind) {
        Ok(p) => Some(p),
        Err(absent) => {
            eprintln!("SKIPPED ({} is absent): {}", kind.label(), absent.reason);
            None
        }
    }
}

/// A Consul (test server or `CONSUL_HTTP_ADDR`), a client, and a run id for unique keys.
struct Fixture {
    _serial: MutexGuard<'static, ()>,
    _consul: TestConsul,
    url: String,
    client: Client,
    run: String,
}

fn fixture(peer: &Peer) -> Fixture {
    let serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let consul =
        TestConsul::from_env_or_start().expect("start the test server or reach CONSUL_HTTP_ADDR");
    let url = consul.url();
    let client = Client::builder()
        .address(url.clone())
        .session_ttl_min(consul.session_ttl_min())
        .build()
        .expect("a client for the test server");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let run = format!("{:x}{nanos:x}", std::process::id());
    eprintln!(
        "peer: {}; server: {url} ({})",
        peer.describe(),
        if consul.is_embedded() {
            "embedded test server"
        } else {
            "real agent"
        }
    );
    Fixture {
        _serial: serial,
        _consul: consul,
        url,
        client,
        run,
    }
}

impl Fixture {
    /// The ids of every session now.
    fn session_ids(&self) -> HashSet<String> {
        self.block_on(self.client.sessions())
            .expect("list sessions")
            .into_iter()
            .map(|s| s.id)
            .collect()
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(f)
    }

    /// Waits until a session that is not this library's and not in `before` exists: the
    /// peer process started on its lock (it creates its session first).
    fn wait_for_peer_session(&self, before: &HashSet<String>, peer: &JoinHandle<impl Sized>) {
        let deadline = Instant::now() + PATIENT;
        loop {
            let sessions = self
                .block_on(self.client.sessions())
                .expect("list sessions");
            if sessions
                .iter()
                .any(|s| !before.contains(&s.id) && !s.name.starts_with("consul-lock: "))
            {
                return;
            }
            assert!(
                !peer.is_finished(),
                "the peer ended before it created a session"
            );
            assert!(
                Instant::now() < deadline,
                "the peer never created a session"
            );
            std::thread::sleep(POLL);
        }
    }

    /// Waits until this library's waiter has queued on `key` (its queue entry exists).
    fn wait_for_our_waiter(&self, key: &str, waiter: &JoinHandle<impl Sized>) {
        let queue = format!("{key}{WAITERS_SUFFIX}");
        let deadline = Instant::now() + PATIENT;
        while self
            .block_on(self.client.kv_keys(&queue))
            .expect("list the queue")
            .is_empty()
        {
            assert!(
                !waiter.is_finished(),
                "this library's acquire ended instead of waiting for the peer"
            );
            assert!(
                Instant::now() < deadline,
                "this library's waiter never queued"
            );
            std::thread::sleep(POLL);
        }
    }

    /// The key's flags now (`None`: no key).
    fn flags(&self, key: &str) -> Option<u64> {
        self.block_on(self.client.kv_get(key))
            .expect("read the key")
            .map(|e| e.flags)
    }
}

/// This library holds `lock`; `peer` locks the same key (`full_key`) and must wait (no
/// conflict error), then take it after the release.
fn peer_waits_for_us(f: &Fixture, peer: &Peer, lock: &Lock) {
    let key = lock.full_key().expect("a valid key");
    let guard = lock
        .acquire_blocking()
        .expect("this library locks a free key");
    assert_eq!(
        f.flags(&key),
        Some(GO_LOCK_FLAG),
        "the lock key carries Go's flag"
    );
    let before = f.session_ids();
    let (p, url, k) = (peer.clone(), f.url.clone(), key.clone());
    let waiting = std::thread::spawn(move || p.hold(&url, &k, PATIENT));
    f.wait_for_peer_session(&before, &waiting);
    assert!(guard.is_held(), "this library still holds the key");
    let token = guard.fencing_token();
    guard.release_blocking().expect("release");
    let held: Result<HeldLock, PeerError> = waiting.join().expect("the peer thread");
    let held = held.unwrap_or_else(|e| {
        panic!("the peer did not take the key after this library's release (it must wait, not fail): {e}")
    });
    assert!(
        held.fencing_index() > token,
        "the peer locked after this library's release: index {} > token {token}",
        held.fencing_index()
    );
    eprintln!(
        "{} waited for this library's hold and locked after its release (index {} > {token})",
        peer.kind().label(),
        held.fencing_index()
    );
    held.release().expect("the peer unlocks");
}

/// `peer` holds `full_key`; this library's `lock` on it waits in its queue and takes the key
/// after the peer's release.
fn we_wait_for_peer(f: &Fixture, peer: &Peer, lock: &Lock) {
    let key = lock.full_key().expect("a valid key");
    let held = peer
        .hold(&f.url, &key, PATIENT)
        .expect("the peer locks a free key");
    let waiter = lock.clone().acquire_timeout(PATIENT);
    let waiting = std::thread::spawn(move || waiter.acquire_blocking());
    f.wait_for_our_waiter(&key, &waiting);
    let index = held.fencing_index();
    held.release().expect("the peer unlocks and exits cleanly");
    let guard: Result<LockGuard, Error> = waiting.join().expect("the waiter thread");
    let guard = guard.unwrap_or_else(|e| {
        panic!("this library did not take the key after the peer's release: {e}")
    });
    assert!(
        guard.fencing_token() > index,
        "taken after the peer's release: token {} > index {index}",
        guard.fencing_token()
    );
    eprintln!(
        "this library waited for {}'s hold and took the key after its release (token {} > {index})",
        peer.kind().label(),
        guard.fencing_token()
    );
    guard.release_blocking().expect("release");
}

/// Go's `api.Lock` and this library exclude each other without errors: a one-try from either
/// side on a key the other holds answers "held" / "timeout", never "Existing key does not
/// match lock use".
#[test]
fn go_and_this_library_see_each_others_locks_as_held_not_as_conflicts() {
    let Some(peer) = go_peer() else { return };
    let f = fixture(&peer);
    // Keys end in /.lock so that `consul lock PREFIX` (which locks PREFIX/.lock) can be used.
    let go_holds = Lock::consul_cli(format!("peers-tests/{}/go-holds", f.run)).client(&f.client);
    let we_hold = Lock::consul_cli(format!("peers-tests/{}/we-hold", f.run)).client(&f.client);

    // 1. Go holds a key: this library's one try on it answers None (held).
    let go_key = go_holds.full_key().expect("key");
    let held = peer
        .hold(&f.url, &go_key, PATIENT)
        .expect("the Go peer locks a free key");
    assert_eq!(f.flags(&go_key), Some(GO_LOCK_FLAG));
    let attempt = go_holds
        .try_acquire_blocking()
        .expect("a try on a key Go holds answers without an error");
    assert!(
        attempt.is_none(),
        "this library must not take a key Go holds"
    );
    held.release().expect("the Go peer unlocks and exits");

    // 2. This library holds a key: Go's one try on it times out (held), no conflict error.
    let guard = we_hold
        .try_acquire_blocking()
        .expect("acquire a free key")
        .expect("the key is free");
    let outcome = peer
        .try_lock(
            &f.url,
            &we_hold.full_key().expect("key"),
            Duration::from_millis(300),
        )
        .expect("the Go peer answers");
    assert_eq!(
        outcome,
        TryOutcome::Timeout,
        "Go must see this library's key as held"
    );
    eprintln!("Go's one try on a key this library holds: {outcome:?}");
    guard.release_blocking().expect("release our key");
}

#[test]
fn consul_cli_waits_for_our_hold_and_takes_the_key_after_the_release() {
    let Some(peer) = peer(PeerKind::ConsulCli) else {
        return;
    };
    let f = fixture(&peer);
    let lock = Lock::consul_cli(format!("peers-tests/{}/cli-waits", f.run)).client(&f.client);
    peer_waits_for_us(&f, &peer, &lock);
}

#[test]
fn we_wait_for_a_consul_cli_hold_and_take_the_key_after_its_release() {
    let Some(peer) = peer(PeerKind::ConsulCli) else {
        return;
    };
    let f = fixture(&peer);
    let lock = Lock::consul_cli(format!("peers-tests/{}/we-wait-cli", f.run)).client(&f.client);
    we_wait_for_peer(&f, &peer, &lock);
}

/// Go's `Unlock()` leaves the key (flag set, no session): this library takes it. When Go's
/// session ends without an unlock, Consul's lock-delay (15 s for Go's sessions) keeps the
/// free key from this library, which says so (`Blocker::LockDelay`).
#[test]
fn a_key_go_unlocked_is_taken_and_go_lock_delay_is_respected() {
    let Some(peer) = go_peer() else { return };
    let f = fixture(&peer);
    let lock = Lock::consul_cli(format!("peers-tests/{}/go-left", f.run)).client(&f.client);
    let key = lock.full_key().expect("key");

    // Go locks and unlocks (the CLI then deletes the key it no longer holds): a key Go left
    // behind is written here as Go's Unlock leaves it, with its flag and no session.
    peer.hold(&f.url, &key, PATIENT)
        .expect("Go locks")
        .release()
        .expect("Go unlocks");
    let put = f
        .block_on(
            reqwest::Client::new()
                .put(format!("{}/v1/kv/{key}?flags={GO_LOCK_FLAG}", f.url))
                .body("left by Go")
                .send(),
        )
        .expect("write the key as Go's Unlock leaves it");
    assert!(put.status().is_success(), "{:?}", put.status());
    let guard = lock
        .try_acquire_blocking()
        .expect("no error")
        .expect("a key Go left with its flag and no session is free");
    guard.release_blocking().expect("release");

    // Go holds, and its session ends without an unlock (an operator destroys it, as Consul
    // does when Go's process dies): the key is free but under Go's lock-delay.
    let before = f.session_ids();
    let held = peer.hold(&f.url, &key, PATIENT).expect("Go locks");
    let go_session = f
        .block_on(f.client.sessions())
        .expect("list sessions")
        .into_iter()
        .find(|s| !before.contains(&s.id) && !s.name.starts_with("consul-lock: "))
        .expect("Go's session");
    f.block_on(f.client.destroy_session(&go_session.id))
        .expect("destroy Go's session");
    drop(held); // the CLI ends its child on the lost lock; the handle kills what is left
    let seen = lock
        .clone()
        .acquire_timeout(Duration::from_millis(500))
        .acquire_blocking();
    match seen {
        Err(Error::NotAcquired {
            blocked_by: Blocker::LockDelay,
            ..
        }) => {}
        other => panic!("expected a refusal for Go's lock-delay, got {other:?}"),
    }
}

#[test]
fn python_waits_for_our_hold_and_takes_the_key_after_the_release() {
    let Some(peer) = peer(PeerKind::Python) else {
        return;
    };
    let f = fixture(&peer);
    let lock = Lock::new(format!("peers-tests/{}/python-waits", f.run)).client(&f.client);
    peer_waits_for_us(&f, &peer, &lock);
}

#[test]
fn we_wait_for_a_python_hold_and_take_the_key_after_its_release() {
    let Some(peer) = peer(PeerKind::Python) else {
        return;
    };
    let f = fixture(&peer);
    let lock = Lock::new(format!("peers-tests/{}/we-wait-python", f.run)).client(&f.client);
    we_wait_for_peer(&f, &peer, &lock);
}
