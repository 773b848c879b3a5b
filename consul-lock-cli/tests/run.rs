//! `consul-lock run KEY -- CMD…`, run as a user runs it: the command's status, signals,
//! a lock not acquired in time, a lock lost while the command runs.

mod common;

use std::io::Write as _;
use std::process::Stdio;

use common::{Env, Running, BIN};
use nix::sys::signal::{kill, Signal};
use serde_json::Value;

fn run_args<'a>(
    env: &'a Env,
    key: &'a str,
    options: &[&'a str],
    command: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec!["run", key, "--prefix", env.prefix.as_str()];
    args.extend_from_slice(options);
    args.push("--");
    args.extend_from_slice(command);
    args
}

#[test]
fn the_command_runs_under_the_lock_with_key_token_and_session() {
    let env = Env::new("run-env");
    // The command looks at the lock itself, with the CLI, while it runs.
    let script = format!(
        "echo \"$CONSUL_LOCK_KEY $CONSUL_LOCK_FENCING_TOKEN $CONSUL_LOCK_SESSION\"; \
         '{BIN}' show --full-key \"$CONSUL_LOCK_KEY\" --json"
    );
    let done = env.run(&run_args(&env, "jobs/report", &[], &["sh", "-c", &script]));
    assert_eq!(done.code(), 0, "{done:?}");
    let (first, shown) = done.stdout.split_once('\n').expect("two parts");
    let parts: Vec<&str> = first.split(' ').collect();
    assert_eq!(parts[0], env.consul_key("jobs/report"));
    let token: u64 = parts[1].parse().expect("a fencing token");
    assert!(token > 0);
    let shown: Value = serde_json::from_str(shown).expect("show --json");
    assert_eq!(
        shown["session"]["id"], parts[2],
        "held by the session given to the command"
    );
    assert_eq!(shown["fencing_token"], token);
    assert!(shown["holder"]["pid"].as_u64().is_some());
    assert_ne!(
        shown["holder"]["pid"],
        std::process::id(),
        "held by consul-lock, not the test"
    );
    assert!(
        env.leftovers().is_empty(),
        "released after the command: {:?}",
        env.leftovers()
    );
}

#[test]
fn the_exit_status_is_the_commands() {
    let env = Env::new("run-status");
    let ok = env.run(&run_args(&env, "jobs/a", &[], &["true"]));
    assert_eq!(ok.code(), 0, "{ok:?}");
    let failed = env.run(&run_args(
        &env,
        "jobs/a",
        &[],
        &["sh", "-c", "echo failing >&2; exit 3"],
    ));
    assert_eq!(failed.code(), 3, "{failed:?}");
    assert_eq!(failed.stderr, "failing", "only the command's own output");
    let killed = env.run(&run_args(
        &env,
        "jobs/a",
        &[],
        &["sh", "-c", "kill -KILL $$"],
    ));
    assert_eq!(killed.code(), 128 + 9, "killed by SIGKILL: {killed:?}");
    let missing = env.run(&run_args(
        &env,
        "jobs/a",
        &[],
        &["no-such-command-for-consul-lock"],
    ));
    assert_eq!(missing.code(), 127, "{missing:?}");
    assert!(
        missing
            .stderr
            .starts_with("error: command `no-such-command-for-consul-lock` not found"),
        "{}",
        missing.stderr
    );
    let not_executable = env.run(&run_args(&env, "jobs/a", &[], &["/"]));
    assert_eq!(not_executable.code(), 126, "{not_executable:?}");
    assert!(
        env.leftovers().is_empty(),
        "released every time: {:?}",
        env.leftovers()
    );
}

#[test]
fn signals_are_forwarded_to_the_command() {
    let env = Env::new("run-signals");
    for (signal, name) in [
        (Signal::SIGTERM, "TERM"),
        (Signal::SIGINT, "INT"),
        (Signal::SIGHUP, "HUP"),
    ] {
        // The command reports the signal it gets, and ends with status 7.
        let script = format!(
            "sleep 60 >/dev/null 2>&1 & child=$!; \
             trap 'kill $child; echo got {name}; exit 7' {name}; \
             echo ready; wait $child"
        );
        let mut running = env.spawn(&run_args(&env, "jobs/signals", &[], &["sh", "-c", &script]));
        running.expect_stdout("ready");
        kill(running.pid(), signal).expect("signal consul-lock");
        running.expect_stdout(&format!("got {name}"));
        let done = running.finish();
        assert_eq!(done.code(), 7, "{signal}: {done:?}");
        assert_eq!(env.holder("jobs/signals"), None, "released after {signal}");
    }
    assert!(env.leftovers().is_empty());
}

#[test]
fn a_lock_not_acquired_in_time_runs_nothing_and_exits_124() {
    let env = Env::new("run-timeout");
    let guard = env.hold("jobs/busy");
    let started = std::time::Instant::now();
    let done = env.run(&run_args(
        &env,
        "jobs/busy",
        &["--timeout", "200ms"],
        &["sh", "-c", "echo ran"],
    ));
    assert_eq!(done.code(), 124, "{done:?}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(200));
    assert_eq!(done.stdout, "", "the command did not run");
    assert_eq!(done.stderr.lines().count(), 1);
    assert!(
        done.stderr.starts_with(&format!(
            "error: lock `jobs/busy` is held by pid {} on ",
            std::process::id()
        )),
        "{}",
        done.stderr
    );
    assert!(done
        .stderr
        .contains("was not released within 200ms; nothing was run"));
    assert_eq!(env.holder("jobs/busy").as_deref(), Some(guard.session_id()));
    guard.release_blocking().expect("release");
    assert!(
        env.leftovers().is_empty(),
        "the waiter left nothing: {:?}",
        env.leftovers()
    );
}

/// Starts `run` with a command that says `ready` and then waits for a line on its stdin.
fn start_reader(env: &Env, key: &str, options: &[&str]) -> Running {
    let script = "echo ready; read line; echo finished";
    let mut cmd = env.command(&run_args(env, key, options, &["sh", "-c", script]));
    cmd.stdin(Stdio::piped());
    let mut running = Running::start(cmd);
    running.expect_stdout("ready");
    running
}

#[test]
fn a_lost_lock_is_reported_and_the_status_says_so() {
    let env = Env::new("run-lost");
    for options in [&[][..], &["--renew"][..]] {
        let mut running = start_reader(&env, "jobs/lost", options);
        // An operator ends the lock from outside.
        let released = env.run(&["release", "jobs/lost", "--prefix", &env.prefix, "--force"]);
        assert_eq!(released.code(), 0, "{released:?}");
        let warning =
            running.expect_stderr("warning: lock `jobs/lost` was lost while the command ran");
        assert!(warning.contains("the command goes on"), "{warning}");
        // The command goes on until it is done.
        writeln!(running.child.stdin.as_mut().expect("stdin"), "go on").expect("write");
        running.expect_stdout("finished");
        let done = running.finish();
        assert_eq!(done.code(), 123, "{options:?}: {done:?}");
        let last = done.stderr.lines().last().expect("an error line");
        assert!(
            last.starts_with("error: lock `jobs/lost` was lost while the command ran")
                && last.ends_with("the command exited with status 0"),
            "{last}"
        );
    }
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[test]
fn kill_on_loss_stops_the_command() {
    let env = Env::new("run-kill");
    let script = "sleep 60 >/dev/null 2>&1 & child=$!; \
                  trap 'kill $child; echo stopping; exit 9' TERM; \
                  echo ready; wait $child";
    let mut running = env.spawn(&run_args(
        &env,
        "jobs/kill",
        &["--renew", "--kill-on-loss"],
        &["sh", "-c", script],
    ));
    running.expect_stdout("ready");
    let session = env.holder("jobs/kill").expect("held");
    match env.consul.server() {
        // The test server can expire the session as if its TTL had run out.
        Some(server) => assert!(server.expire_session(&session)),
        None => {
            eprintln!("against a real agent: destroying the session instead of expiring it");
            env.block_on(env.client.destroy_session(&session))
                .expect("destroy");
        }
    }
    running.expect_stderr("stopping the command (SIGTERM, then SIGKILL after 10s)");
    running.expect_stdout("stopping");
    let done = running.finish();
    assert_eq!(done.code(), 123, "{done:?}");
    assert!(
        done.stderr.ends_with("the command exited with status 9"),
        "{}",
        done.stderr
    );
    assert!(env.leftovers().is_empty());
}

#[test]
fn kill_on_loss_kills_a_command_that_ignores_sigterm() {
    let env = Env::new("run-kill-hard");
    let script = "trap 'echo ignoring TERM' TERM; echo ready; while :; do sleep 0.05; done";
    let mut running = env.spawn(&run_args(
        &env,
        "jobs/stubborn",
        &["--kill-on-loss", "--kill-grace", "300ms"],
        &["sh", "-c", script],
    ));
    running.expect_stdout("ready");
    let released = env.run(&[
        "release",
        "jobs/stubborn",
        "--prefix",
        &env.prefix,
        "--force",
    ]);
    assert_eq!(released.code(), 0, "{released:?}");
    running.expect_stdout("ignoring TERM");
    let done = running.finish();
    assert_eq!(done.code(), 123, "{done:?}");
    assert!(
        done.stderr
            .ends_with("the command was killed by signal 9 (SIGKILL)"),
        "{}",
        done.stderr
    );
    assert!(env.leftovers().is_empty());
}

#[test]
fn interrupted_while_waiting_for_the_lock_runs_nothing_and_leaves_the_queue() {
    let env = Env::new("run-interrupted");
    let guard = env.hold("jobs/busy");
    let running = env.spawn(&run_args(
        &env,
        "jobs/busy",
        &["--timeout", "30s"],
        &["sh", "-c", "echo ran"],
    ));
    env.wait_for_waiters("jobs/busy", 1);
    kill(running.pid(), Signal::SIGINT).expect("signal consul-lock");
    let done = running.finish();
    assert_eq!(done.code(), 128 + 2, "{done:?}");
    assert_eq!(done.stdout, "", "the command did not run");
    assert_eq!(
        done.stderr,
        "error: interrupted by SIGINT while waiting for lock `jobs/busy`; nothing was run"
    );
    // Its session and queue entry are gone; the holder still holds the key.
    assert_eq!(env.leftovers(), [env.consul_key("jobs/busy")]);
    assert_eq!(env.holder("jobs/busy").as_deref(), Some(guard.session_id()));
    guard.release_blocking().expect("release");
    assert!(env.leftovers().is_empty());
}
