//! `consul-lock list`, `show`, `release`, `wait`, `--help` and errors, run as a user runs them
//! against the embedded test server (or the agent named by `CONSUL_HTTP_ADDR`).

mod common;

use common::{Env, BIN};
use serde_json::Value;

#[test]
fn help_documents_the_subcommands_and_every_exit_status() {
    let env = Env::new("help");
    let help = env.run(&["--help"]);
    assert_eq!(help.code(), 0);
    for needle in [
        "list",
        "show",
        "run",
        "release",
        "wait",
        "CONSUL_HTTP_ADDR",
        "Exit status:",
    ] {
        assert!(
            help.stdout.contains(needle),
            "{needle} missing: {}",
            help.stdout
        );
    }
    for status in [
        "0 ", "1 ", "2 ", "3 ", "123", "124", "125", "126", "127", "128+N",
    ] {
        assert!(help.stdout.contains(status), "status {status} missing");
    }
    let run = env.run(&["run", "--help"]);
    for needle in [
        "CONSUL_LOCK_KEY",
        "CONSUL_LOCK_FENCING_TOKEN",
        "CONSUL_LOCK_SESSION",
        "--kill-on-loss",
        "--lock-timeout",
        "--renew",
        "--prefix",
        "--full-key",
        "SIGTERM",
    ] {
        assert!(
            run.stdout.contains(needle),
            "{needle} missing: {}",
            run.stdout
        );
    }
    let bad = env.run(&["wait", "k", "--timeout", "soon"]);
    assert_eq!(bad.code(), 2);
    assert!(bad.stderr.contains("like `500ms`"), "{}", bad.stderr);
}

#[test]
fn list_shows_held_locks_with_holder_age_ttl_waiters_and_token() {
    let env = Env::new("list");
    let email = env.hold("send/user-42/welcome-email");
    let report = env.hold("reports/nightly");
    // A waiter, as a user starts one: it queues behind the test's lock.
    let waiter = env.spawn(&[
        "run",
        "send/user-42/welcome-email",
        "--prefix",
        &env.prefix,
        "--timeout",
        "30s",
        "--",
        "true",
    ]);
    env.wait_for_waiters("send/user-42/welcome-email", 1);

    // A key under the prefix that no session holds is not a lock.
    let plain = env.consul_key("config/not-a-lock");
    env.put_plain(&plain, Some("x"));

    let table = env.run(&["list", "--prefix", &env.prefix]);
    assert_eq!(table.code(), 0, "{table:?}");
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "a header and two locks (no queue entry): {lines:?}"
    );
    for column in [
        "KEY",
        "HOST",
        "PID",
        "LOCKED AT",
        "AGE",
        "TTL",
        "NODE",
        "WAITERS",
        "TOKEN",
    ] {
        assert!(lines[0].contains(column), "{column} missing: {}", lines[0]);
    }
    let pid = std::process::id().to_string();
    let row = |key: &str| -> Vec<String> {
        let line = lines
            .iter()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("{key} not listed: {lines:?}"));
        line.split_whitespace().map(str::to_owned).collect()
    };
    let email_row = row("send/user-42/welcome-email");
    assert_eq!(email_row[2], pid);
    // The lock is on the test client's shared session (15 s), not a session of its own.
    assert_eq!(email_row[5], "15s(shared)", "{email_row:?}");
    assert_eq!(email_row[7], "1", "one waiter: {email_row:?}");
    assert_eq!(email_row[8], email.fencing_token().to_string());
    let report_row = row("reports/nightly");
    assert_eq!(report_row[7], "0");
    assert_eq!(report_row[8], report.fencing_token().to_string());

    // The filter, as written in the attribute.
    let filtered = env.run(&["list", "send/", "--prefix", &env.prefix, "--json"]);
    let json: Value = serde_json::from_str(&filtered.stdout).expect("JSON");
    let locks = json.as_array().expect("an array");
    assert_eq!(locks.len(), 1);
    let lock = &locks[0];
    assert_eq!(lock["key"], "send/user-42/welcome-email");
    assert_eq!(
        lock["consul_key"],
        env.consul_key("send/user-42/welcome-email")
    );
    assert_eq!(lock["holder"]["pid"], std::process::id());
    assert!(lock["holder"]["host"].is_string());
    assert!(lock["holder"]["locked_at"].is_string());
    assert!(lock["holder"]["age_ms"].is_u64());
    assert_eq!(lock["session"]["id"], email.session_id());
    assert_eq!(lock["session"]["ttl"], "15s");
    assert_eq!(lock["session"]["shared"], true);
    assert!(lock["session"]["node"].is_string());
    assert_eq!(lock["fencing_token"], email.fencing_token());
    assert_eq!(lock["waiters"], 1);

    email.release_blocking().expect("release");
    report.release_blocking().expect("release");
    env.put_plain(&plain, None);
    let waited = waiter.finish();
    assert_eq!(
        waited.code(),
        0,
        "the waiter ran after the release: {waited:?}"
    );
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
    let empty = env.run(&["list", "--prefix", &env.prefix]);
    assert_eq!(empty.code(), 0);
    assert_eq!(
        empty.stdout,
        format!("no locks held under `{}`", env.prefix)
    );
    let none = env.run(&["list", "--prefix", &env.prefix, "--json"]);
    assert_eq!(none.stdout, "[]");
}

#[test]
fn the_default_prefix_is_the_librarys() {
    let env = Env::new("default-prefix");
    let key = format!("{}job", env.prefix);
    let guard = consul_lock_runtime::Lock::new(key.as_str())
        .client(&env.client)
        .acquire_blocking()
        .expect("lock with the default prefix");
    assert_eq!(guard.key(), format!("locks/ephemeral/{key}"));
    let shown = env.run(&["show", &key, "--json"]);
    assert_eq!(shown.code(), 0, "{shown:?}");
    let json: Value = serde_json::from_str(&shown.stdout).expect("JSON");
    assert_eq!(json["consul_key"], guard.key());
    let full = env.run(&["show", guard.key(), "--full-key", "--json"]);
    assert_eq!(full.code(), 0, "{full:?}");
    let listed = env.run(&["list", &env.prefix, "--json"]);
    let json: Value = serde_json::from_str(&listed.stdout).expect("JSON");
    assert_eq!(json[0]["key"], key.as_str());
    guard.release_blocking().expect("release");
}

#[test]
fn show_prints_one_lock_with_its_queue_in_order() {
    let env = Env::new("show");
    let key = "send/user-42/welcome-email";
    let guard = env.hold(key);
    let waiter = |n: &str| {
        env.spawn(&[
            "run",
            key,
            "--prefix",
            &env.prefix,
            "--timeout",
            "30s",
            "--",
            "sh",
            "-c",
            &format!("echo waiter {n} ran"),
        ])
    };
    let first = waiter("1");
    let queued = env.wait_for_waiters(key, 1);
    let second = waiter("2");
    let both = env.wait_for_waiters(key, 2);
    let first_entry = queued[0].clone();
    let second_entry = both
        .iter()
        .find(|k| **k != first_entry)
        .expect("a second entry")
        .clone();
    let session_of = |entry: &str| entry.rsplit('/').next().expect("session").to_owned();

    let text = env.run(&["show", key, "--prefix", &env.prefix]);
    assert_eq!(text.code(), 0, "{text:?}");
    let pid = std::process::id();
    for needle in [
        format!("key:           {key}"),
        format!("consul key:    {}", env.consul_key(key)),
        format!("held by:       pid {pid} on "),
        "locked at:     ".to_owned(),
        format!("session:       {}", guard.session_id()),
        "session ttl:   15s (the holder's shared session".to_owned(),
        format!("fencing token: {}", guard.fencing_token()),
        "waiters:       2".to_owned(),
        format!("  1. session {}", session_of(&first_entry)),
        format!("  2. session {}", session_of(&second_entry)),
    ] {
        assert!(
            text.stdout.contains(&needle),
            "{needle:?} missing:\n{}",
            text.stdout
        );
    }
    let json: Value = serde_json::from_str(
        &env.run(&["show", key, "--prefix", &env.prefix, "--json"])
            .stdout,
    )
    .expect("JSON");
    let queue = json["queue"].as_array().expect("the queue");
    assert_eq!(queue.len(), 2);
    assert_eq!(queue[0]["position"], 1);
    assert_eq!(queue[0]["session"]["id"], session_of(&first_entry));
    assert_eq!(queue[1]["session"]["id"], session_of(&second_entry));
    assert!(queue[0]["queued_index"].as_u64() < queue[1]["queued_index"].as_u64());

    guard.release_blocking().expect("release");
    let (first, second) = (first.finish(), second.finish());
    assert_eq!(
        (first.code(), second.code()),
        (0, 0),
        "{first:?} {second:?}"
    );
    assert_eq!(first.stdout, "waiter 1 ran");
    assert!(env.leftovers().is_empty());

    let free = env.run(&["show", key, "--prefix", &env.prefix]);
    assert_eq!(free.code(), 1, "not held: exit status 1");
    assert_eq!(free.stdout, "");
    assert_eq!(free.stderr.lines().count(), 1);
    assert!(
        free.stderr
            .starts_with(&format!("error: lock `{key}` is not held")),
        "{}",
        free.stderr
    );
}

#[test]
fn release_refuses_without_force_and_says_whose_lock_it_would_end() {
    let env = Env::new("release-refused");
    let guard = env.hold("jobs/stuck");
    let refused = env.run(&["release", "jobs/stuck", "--prefix", &env.prefix]);
    assert_eq!(refused.code(), 3, "{refused:?}");
    assert_eq!(refused.stderr.lines().count(), 1);
    for needle in [
        "refusing to release `jobs/stuck` without --force".to_owned(),
        format!("pid {}", std::process::id()),
        format!("session {}", guard.session_id()),
        format!("fencing token {}", guard.fencing_token()),
    ] {
        assert!(
            refused.stderr.contains(&needle),
            "{needle:?} missing: {}",
            refused.stderr
        );
    }
    assert_eq!(
        env.holder("jobs/stuck").as_deref(),
        Some(guard.session_id()),
        "nothing changed"
    );
    guard.release_blocking().expect("release");
}

#[test]
fn release_force_destroys_the_holders_session() {
    let env = Env::new("release-force");
    let guard = env.hold_own_session("jobs/stuck");
    let released = env.run(&["release", "jobs/stuck", "--prefix", &env.prefix, "--force"]);
    assert_eq!(released.code(), 0, "{released:?}");
    for needle in [
        format!(
            "released `jobs/stuck` (Consul key `{}`)",
            env.consul_key("jobs/stuck")
        ),
        "destroyed the session of".to_owned(),
        format!("pid {}", std::process::id()),
        format!("session {}", guard.session_id()),
        "locked at ".to_owned(),
    ] {
        assert!(
            released.stdout.contains(&needle),
            "{needle:?} missing: {}",
            released.stdout
        );
    }
    assert_eq!(env.holder("jobs/stuck"), None);
    let sessions = env.block_on(env.client.sessions()).expect("sessions");
    assert!(
        sessions.iter().all(|s| s.id != guard.session_id()),
        "the session is gone"
    );
    assert!(env.leftovers().is_empty());

    let again = env.run(&["release", "jobs/stuck", "--prefix", &env.prefix, "--force"]);
    assert_eq!(again.code(), 1, "not held any more: {again:?}");
    drop(guard);
}

#[test]
fn release_force_of_a_lock_on_a_shared_session_deletes_its_key_alone() {
    let env = Env::new("release-shared");
    let guard = env.hold("jobs/stuck");
    let other = env.hold("jobs/other");
    assert_eq!(guard.session_id(), other.session_id(), "the shared session");
    let listed = env.run(&["list", "--prefix", &env.prefix]);
    assert!(listed.stdout.contains("15s(shared)"), "{}", listed.stdout);
    let shown = env.run(&["show", "jobs/stuck", "--prefix", &env.prefix]);
    assert!(shown.stdout.contains("shared session"), "{}", shown.stdout);
    let released = env.run(&["release", "jobs/stuck", "--prefix", &env.prefix, "--force"]);
    assert_eq!(released.code(), 0, "{released:?}");
    assert!(
        released
            .stdout
            .contains("deleted the key held by the shared session of"),
        "{}",
        released.stdout
    );
    assert_eq!(env.holder("jobs/stuck"), None);
    assert_eq!(
        env.holder("jobs/other").as_deref(),
        Some(other.session_id()),
        "the other lock on the session is kept"
    );
    assert!(other.is_held());
    drop((guard, other));
    consul_lock_runtime::flush_releases_blocking().expect("flush");
    assert!(env.leftovers().is_empty());
}

#[test]
fn wait_returns_when_the_lock_is_released() {
    let env = Env::new("wait");
    let guard = env.hold("jobs/nightly");
    let mut waiting = env.spawn(&["wait", "jobs/nightly", "--prefix", &env.prefix]);
    waiting.expect_stderr(&format!("held by session {}", guard.session_id()));
    guard.release_blocking().expect("release");
    let done = waiting.finish();
    assert_eq!(done.code(), 0, "{done:?}");
    assert!(
        done.stdout.starts_with("`jobs/nightly` is free (waited "),
        "{}",
        done.stdout
    );

    let free = env.run(&[
        "wait",
        "jobs/nightly",
        "--prefix",
        &env.prefix,
        "--timeout",
        "5s",
    ]);
    assert_eq!(free.code(), 0, "free at once: {free:?}");
}

#[test]
fn wait_times_out_with_status_124() {
    let env = Env::new("wait-timeout");
    let guard = env.hold("jobs/nightly");
    let started = std::time::Instant::now();
    let timed_out = env.run(&[
        "wait",
        "jobs/nightly",
        "--prefix",
        &env.prefix,
        "--timeout",
        "300ms",
    ]);
    let took = started.elapsed();
    assert_eq!(timed_out.code(), 124, "{timed_out:?}");
    assert!(took >= std::time::Duration::from_millis(300), "{took:?}");
    let last = timed_out.stderr.lines().last().expect("an error line");
    assert!(
        last.starts_with(&format!(
            "error: `jobs/nightly` is still held by session {} after 300ms",
            guard.session_id()
        )),
        "{last}"
    );
    assert_eq!(
        env.holder("jobs/nightly").as_deref(),
        Some(guard.session_id())
    );
    guard.release_blocking().expect("release");
}

#[test]
fn errors_are_one_line_saying_what_to_do() {
    let env = Env::new("errors");
    // Nothing listens on port 1 of the loopback address.
    let unreachable = std::process::Command::new(BIN)
        .args(["list"])
        .env("CONSUL_HTTP_ADDR", "127.0.0.1:1")
        .output()
        .expect("run consul-lock");
    assert_eq!(unreachable.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: cannot reach Consul at http://127.0.0.1:1 to read the keys under a prefix (connection refused): is the agent running? set CONSUL_HTTP_ADDR"),
        "{stderr}"
    );

    let bad_key = env.run(&["show", "jobs//nightly", "--prefix", &env.prefix]);
    assert_eq!(bad_key.code(), 2, "{bad_key:?}");
    assert_eq!(bad_key.stderr.lines().count(), 1);
    assert!(
        bad_key.stderr.starts_with("error: invalid lock key"),
        "{}",
        bad_key.stderr
    );

    let bad_env = env
        .command(&["list"])
        .env("CONSUL_HTTP_SSL", "maybe")
        .output()
        .expect("run consul-lock");
    assert_eq!(bad_env.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_env.stderr).contains("CONSUL_HTTP_SSL"));
}

#[test]
fn keys_can_be_given_as_the_attributes_template() {
    let env = Env::new("template");
    // What `#[consul_lock(key = "reports/<month>/send")]` takes for month = "2024/05".
    let rendered = format!(
        "reports/{}/send",
        consul_lock_runtime::key::escape_value("2024/05")
    );
    let guard = env.hold(&rendered);
    let shown = env.run(&[
        "show",
        "reports/<month>/send",
        "--set",
        "month=2024/05",
        "--prefix",
        &env.prefix,
        "--json",
    ]);
    assert_eq!(shown.code(), 0, "{shown:?}");
    let json: Value = serde_json::from_str(&shown.stdout).expect("JSON");
    assert_eq!(json["key"], "reports/2024%2F05/send");
    assert_eq!(json["consul_key"], guard.key());
    assert_eq!(json["session"]["id"], guard.session_id());

    let missing = env.run(&["show", "reports/<month>/send", "--prefix", &env.prefix]);
    assert_eq!(missing.code(), 2, "{missing:?}");
    assert!(
        missing.stderr.contains("give --set month=VALUE"),
        "{}",
        missing.stderr
    );
    guard.release_blocking().expect("release");
}

#[test]
fn a_value_of_another_shape_is_shown_as_it_is() {
    let env = Env::new("custom-value");
    let guard = consul_lock_runtime::Lock::new("jobs/custom")
        .key_prefix(env.prefix.clone())
        .client(&env.client)
        .value_generator(|_| "worker-7 of the batch fleet".to_owned())
        .acquire_blocking()
        .expect("lock");
    let shown = env.run(&["show", "jobs/custom", "--prefix", &env.prefix]);
    assert_eq!(shown.code(), 0, "{shown:?}");
    assert!(
        shown
            .stdout
            .contains("held by:       value \"worker-7 of the batch fleet\""),
        "{}",
        shown.stdout
    );
    assert!(shown
        .stdout
        .contains("locked at:     - (the value does not say)"));
    let listed = env.run(&["list", "--prefix", &env.prefix, "--json"]);
    let json: Value = serde_json::from_str(&listed.stdout).expect("JSON");
    assert_eq!(json[0]["holder"]["value"], "worker-7 of the batch fleet");
    assert!(json[0]["holder"]["pid"].is_null());
    guard.release_blocking().expect("release");
}
