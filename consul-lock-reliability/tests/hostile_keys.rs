//! Hostile keys and options: template values that try to leave their segment or confuse the
//! URL are acquired for real (through the `#[consul_lock]` attribute) and the stored key is
//! read back; property tests show the escaping is injective and segment-preserving; options
//! out of range and oversized values fail clearly before any request.

use std::time::Duration;

use consul_lock::key::{render, validate, KeyPart};
use consul_lock::{consul_lock, Client, Error, Lock, MAX_VALUE_SIZE};
use consul_lock_reliability::support::{assert_clean, client, consul, ttl, unique_prefix};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Where the attribute puts its keys (the default key prefix).
const DEFAULT_PREFIX: &str = "locks/ephemeral/";

/// Takes `reliability/hostile-<run>/v-<value>` and, while holding it, lists the keys under the
/// run's prefix as Consul stores them.
#[consul_lock(
    key = "reliability/hostile-<run>/v-<value>",
    client = client,
    guard = lock,
    lock_timeout_seconds = 10,
    acquire_timeout_ms = 2000
)]
async fn take_async(client: &Client, run: &str, value: &str) -> Result<Taken, Error> {
    let listed = client
        .kv_keys(&format!("{DEFAULT_PREFIX}reliability/hostile-{run}/"))
        .await?;
    let entry = client.kv_get(lock.key()).await?;
    Ok(Taken {
        key: lock.key().to_owned(),
        listed,
        holder: entry.and_then(|e| e.session),
        session: lock.session_id().to_owned(),
    })
}

/// The same through a sync function (the blocking path).
#[consul_lock(
    key = "reliability/hostile-<run>/s-<value>",
    client = client,
    guard = lock,
    lock_timeout_seconds = 10,
    acquire_timeout_ms = 2000
)]
fn take_sync(client: &Client, run: &str, value: &str) -> Result<String, Error> {
    Ok(lock.key().to_owned())
}

struct Taken {
    key: String,
    listed: Vec<String>,
    holder: Option<String>,
    session: String,
}

fn hostile_values() -> Vec<(&'static str, String)> {
    vec![
        ("slash", "/".into()),
        ("slashes", "a/b/c".into()),
        ("percent", "%".into()),
        ("encoded slash", "%2F".into()),
        ("double encoded", "%252F".into()),
        ("dot", ".".into()),
        ("dot dot", "..".into()),
        ("three dots", "...".into()),
        ("traversal", "../../etc/passwd".into()),
        ("dot slash", "./".into()),
        ("double slash", "a//b".into()),
        ("empty", String::new()),
        ("space", " ".into()),
        ("spaces around", "  padded  ".into()),
        ("tab and newline", "\t\r\n".into()),
        ("unicode", "ünïcødé 日本語 🦀".into()),
        ("right-to-left override", "abc\u{202e}def".into()),
        ("NUL", "\0".into()),
        ("NUL inside", "a\0b".into()),
        ("10 KB", "x".repeat(10 * 1024)),
        ("query", "?acquire=x".into()),
        ("query and dc", "?dc=other&index=1".into()),
        ("fragment", "#".into()),
        ("fragment text", "#frag".into()),
        ("backslash", "a\\b".into()),
        ("plus", "a+b".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_template_values_become_their_own_escaped_keys() {
    let consul = consul();
    let client = client(&consul);
    let run = format!("{:016x}", fastrand::u64(..));
    let run_prefix = format!("{DEFAULT_PREFIX}reliability/hostile-{run}/");
    let mut seen: Vec<(String, &str)> = Vec::new();
    let mut errors = 0;
    for (name, value) in hostile_values() {
        match take_async(&client, &run, &value).await {
            Ok(taken) => {
                let shown: String = taken.key.chars().take(60).collect();
                println!("{name:>22}: {shown}");
                // The key stays under the run's prefix, in one segment after `v-`.
                let rest = taken
                    .key
                    .strip_prefix(&run_prefix)
                    .unwrap_or_else(|| panic!("{name}: {:?} left the prefix", taken.key));
                assert!(rest.starts_with("v-"), "{name}: {rest:?}");
                assert!(!rest.contains('/'), "{name}: {rest:?} has a `/`");
                validate(&taken.key).unwrap_or_else(|e| panic!("{name}: {e}"));
                // Consul stored exactly that key (it survived the wire encoding), held by
                // this guard's session, and nothing else is under the prefix.
                assert_eq!(taken.listed, vec![taken.key.clone()], "{name}");
                assert_eq!(
                    taken.holder.as_deref(),
                    Some(taken.session.as_str()),
                    "{name}"
                );
                if let Some((_, other)) = seen.iter().find(|(k, _)| *k == taken.key) {
                    panic!("{name} and {other} map to the same key {:?}", taken.key);
                }
                seen.push((taken.key, name));
            }
            Err(e) => {
                println!("{name:>22}: error: {e}");
                assert!(
                    matches!(&e, Error::InvalidKey { reason, .. } if reason.contains("<value>")),
                    "{name}: not a clear key error: {e:?}"
                );
                errors += 1;
            }
        }
    }
    // Only the empty value is refused.
    assert_eq!(errors, 1);
    // The sync form renders the same way.
    let value = "../a/%2F/.";
    let sync_key = tokio::task::spawn_blocking({
        let client = client.clone();
        let run = run.clone();
        move || take_sync(&client, &run, value)
    })
    .await
    .expect("join")
    .expect("sync acquire");
    assert_eq!(
        sync_key,
        format!("{run_prefix}s-..%2Fa%2F%252F%2F."),
        "sync form"
    );
    println!(
        "{} hostile values acquired as distinct keys, {errors} refused",
        seen.len()
    );
    assert_clean(&client, &run_prefix).await;
}

fn render_two(x: &str, y: &str) -> consul_lock::Result<String> {
    render(
        "t/<x>/mid/<y>",
        &[
            KeyPart::Literal("t/"),
            KeyPart::Value {
                name: "x",
                value: &x,
            },
            KeyPart::Literal("/mid/"),
            KeyPart::Value {
                name: "y",
                value: &y,
            },
        ],
    )
}

/// Values that stress the escaping: mostly the characters that matter.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[./%?#&= \\\\\\x00-\\x1f\\x7f]{1,8}",
        "(\\.|\\.\\.|/|%2F|%25|%){1,4}",
        any::<String>().prop_filter("non-empty", |s| !s.is_empty()),
    ]
}

proptest! {
    #![proptest_config(Config { cases: 2000, failure_persistence: None, ..Config::default() })]

    #[test]
    fn distinct_values_never_share_a_key_and_never_leave_their_segment(
        a in hostile_string(), b in hostile_string(), c in hostile_string(), d in hostile_string(),
    ) {
        let k1 = render_two(&a, &b).unwrap();
        let k2 = render_two(&c, &d).unwrap();
        for k in [&k1, &k2] {
            let segments: Vec<&str> = k.split('/').collect();
            prop_assert_eq!(segments.len(), 4, "{:?}", k);
            prop_assert_eq!(segments[0], "t");
            prop_assert_eq!(segments[2], "mid");
            prop_assert!(validate(k).is_ok(), "{:?}", k);
        }
        if (a.as_str(), b.as_str()) != (c.as_str(), d.as_str()) {
            prop_assert_ne!(k1, k2);
        } else {
            prop_assert_eq!(k1, k2);
        }
    }
}

#[test]
fn random_hostile_values_round_trip_through_consul() {
    let consul = consul();
    let client = client(&consul);
    let prefix = unique_prefix("hostile-prop");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let cases = std::cell::Cell::new(0u32);
    runner
        .run(&hostile_string(), |value| {
            cases.set(cases.get() + 1);
            let key = render(
                "v/<value>",
                &[
                    KeyPart::Literal("v/"),
                    KeyPart::Value {
                        name: "value",
                        value: &value,
                    },
                ],
            )
            .expect("non-empty values render");
            let guard = Lock::new(key.clone())
                .client(&client)
                .key_prefix(&prefix)
                .lock_timeout(ttl(&consul))
                .acquire_blocking()
                .expect("acquire");
            let (listed, entry) = rt.block_on(async {
                (
                    client.kv_keys(&prefix).await.expect("keys"),
                    client.kv_get(guard.key()).await.expect("get"),
                )
            });
            prop_assert_eq!(listed, vec![format!("{prefix}{key}")]);
            prop_assert_eq!(
                entry.and_then(|e| e.session),
                Some(guard.session_id().to_owned())
            );
            guard.release_blocking().expect("release");
            Ok(())
        })
        .expect("every hostile value is stored as its own key");
    println!(
        "{} random hostile values acquired and read back",
        cases.get()
    );
    rt.block_on(assert_clean(&client, &prefix));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_options_fail_clearly_before_any_request() {
    let consul = consul();
    let client = client(&consul);
    let prefix = unique_prefix("options");
    let min = ttl(&consul);
    let lock = || Lock::new("k").client(&client).key_prefix(&prefix);
    let before = client.requests_sent();

    for (what, timeout) in [
        ("zero", Duration::ZERO),
        ("below the agent's minimum", min / 2),
        ("above 24 h", Duration::from_secs(86_401)),
    ] {
        let err = lock()
            .lock_timeout(timeout)
            .acquire()
            .await
            .expect_err(what);
        println!("lock_timeout {what}: {err}");
        assert!(
            matches!(
                &err,
                Error::InvalidOption {
                    option: "lock_timeout",
                    ..
                }
            ),
            "{what}: {err:?}"
        );
    }
    for (what, key, prefix) in [
        ("empty key", "", prefix.as_str()),
        ("double slash", "a//b", prefix.as_str()),
        ("leading slash", "/a", prefix.as_str()),
        ("dot dot segment", "a/../b", prefix.as_str()),
        ("control character", "a\u{1}b", prefix.as_str()),
        ("prefix with a leading slash", "k", "/reliability/"),
        ("prefix with a dot segment", "k", "reliability/./x/"),
    ] {
        let err = Lock::new(key)
            .client(&client)
            .key_prefix(prefix)
            .lock_timeout(min)
            .acquire()
            .await
            .expect_err(what);
        println!("{what}: {err}");
        assert!(matches!(err, Error::InvalidKey { .. }), "{what}: {err:?}");
    }
    let err = Client::builder()
        .request_timeout(Duration::ZERO)
        .build()
        .expect_err("zero request timeout");
    println!("request_timeout zero: {err}");
    assert!(matches!(err, Error::InvalidOption { .. }), "{err:?}");
    for address in ["unix:///var/run/consul.sock", "ftp://h:1", "", "h:1/path"] {
        let err = Client::builder()
            .address(address)
            .build()
            .expect_err(address);
        println!("address {address:?}: {err}");
        assert!(matches!(err, Error::InvalidOption { .. }), "{err:?}");
    }
    let err = consul_lock::defaults::set_lock_timeout(Duration::ZERO).expect_err("zero");
    assert!(matches!(err, Error::InvalidOption { .. }), "{err:?}");

    // A value over Consul's 512 KiB limit.
    let err = lock()
        .lock_timeout(min)
        .value_generator(|_| "v".repeat(MAX_VALUE_SIZE + 1))
        .acquire()
        .await
        .expect_err("value over 512 KiB");
    println!("value of {} bytes: {err}", MAX_VALUE_SIZE + 1);
    assert!(
        matches!(&err, Error::InvalidOption { option: "value_generator", reason } if reason.contains("512") || reason.contains(&MAX_VALUE_SIZE.to_string())),
        "{err:?}"
    );
    assert_eq!(
        client.requests_sent(),
        before,
        "no request was sent for any of these"
    );
    assert_clean(&client, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_the_library_accepts_is_accepted_by_consul() {
    // The library checks the raw value against 512 KiB, but sends it base64-encoded inside a
    // JSON transaction, and Consul refuses request bodies over 512 KiB (HTTP 413). A value
    // the check lets through must either be stored or be refused before any request.
    let consul = consul();
    let client = client(&consul);
    let prefix = unique_prefix("big-value");
    for size in [300 * 1024, 400 * 1024, MAX_VALUE_SIZE] {
        let before = client.requests_sent();
        let result = Lock::new("k")
            .client(&client)
            .key_prefix(&prefix)
            .lock_timeout(ttl(&consul))
            .value_generator(move |_| "v".repeat(size))
            .acquire()
            .await;
        match result {
            Ok(guard) => {
                let stored = client
                    .kv_get(guard.key())
                    .await
                    .expect("read")
                    .expect("key");
                assert_eq!(stored.value.len(), size);
                println!("value of {size} bytes: stored");
                guard.release().await.expect("release");
            }
            Err(e) => {
                println!("value of {size} bytes: {e}");
                assert_eq!(
                    client.requests_sent(),
                    before,
                    "a {size}-byte value passed the library's {MAX_VALUE_SIZE}-byte check but Consul refused \
                     the request: {e}"
                );
            }
        }
    }
    assert_clean(&client, &prefix).await;
}
