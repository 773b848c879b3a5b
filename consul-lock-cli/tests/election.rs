//! `consul-lock leader NAME` and `consul-lock elect NAME -- CMD`, run as an operator runs
//! them: who leads, the hand-over when the leader stops, a command stopped when its
//! leadership is taken away and run again when elected again.

mod common;

use common::Env;
use nix::sys::signal::{kill, Signal};
use serde_json::Value;

fn elect<'a>(env: &'a Env, name: &'a str, value: &'a str, script: &'a str) -> Vec<&'a str> {
    vec![
        "elect",
        name,
        "--prefix",
        env.prefix.as_str(),
        "--ttl",
        "10s",
        "--value",
        value,
        "--",
        "sh",
        "-c",
        script,
    ]
}

const SCRIPT: &str = "echo \"leading $CONSUL_LOCK_FENCING_TOKEN $CONSUL_LOCK_SESSION\"; \
                      trap 'echo stopped by SIGTERM; exit 0' TERM; while :; do sleep 0.05; done";

#[test]
fn leader_shows_who_leads_and_elect_hands_over_on_stop() {
    let env = Env::new("elect-handover");
    let nobody = env.run(&["leader", "sched", "--prefix", &env.prefix]);
    assert_eq!(nobody.code(), 1, "{nobody:?}");
    assert!(
        nobody.stderr.contains("nobody leads election `sched`"),
        "{nobody:?}"
    );

    let mut a = env.spawn(&elect(&env, "sched", "node-a", SCRIPT));
    let line = a.expect_stdout("leading ");
    let token_a: u64 = line
        .split(' ')
        .nth(1)
        .and_then(|t| t.parse().ok())
        .expect("token");
    let mut b = env.spawn(&elect(&env, "sched", "node-b", SCRIPT));
    env.wait_for_waiters("sched/leader", 1);

    let shown = env.run(&["leader", "sched", "--prefix", &env.prefix, "--json"]);
    assert_eq!(shown.code(), 0, "{shown:?}");
    let shown: Value = serde_json::from_str(&shown.stdout).expect("leader --json");
    assert_eq!(shown["value"], "node-a");
    assert_eq!(shown["fencing_token"], token_a);
    assert!(shown["since"].is_string());
    assert_eq!(shown["candidates"].as_array().map(Vec::len), Some(1));

    // node-a is stopped: its command gets SIGTERM, it resigns, node-b takes over.
    kill(a.pid(), Signal::SIGTERM).expect("signal elect");
    a.expect_stdout("stopped by SIGTERM");
    let done = a.finish();
    assert_eq!(done.code(), 128 + 15, "{done:?}");
    let line = b.expect_stdout("leading ");
    let token_b: u64 = line
        .split(' ')
        .nth(1)
        .and_then(|t| t.parse().ok())
        .expect("token");
    assert!(token_b > token_a);
    let text = env.run(&["leader", "sched", "--prefix", &env.prefix]);
    assert!(
        text.stdout.contains("node-b") && text.stdout.contains(&token_b.to_string()),
        "{text:?}"
    );
    kill(b.pid(), Signal::SIGINT).expect("signal elect");
    assert_eq!(b.finish().code(), 128 + 2);
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}

#[test]
fn a_command_whose_leadership_is_taken_away_is_stopped_and_run_again_when_elected() {
    let env = Env::new("elect-lost");
    let mut a = env.spawn(&elect(&env, "lost", "node-a", SCRIPT));
    let line = a.expect_stdout("leading ");
    let session = line.split(' ').nth(2).expect("session").to_owned();
    // An operator ends the leader's session.
    env.block_on(env.client.destroy_session(&session))
        .expect("destroy");
    a.expect_stderr("no longer leads");
    // Lost: another may lead now, so the command is killed at once (no SIGTERM grace).
    let again = a.expect_stdout("leading ");
    assert!(
        !again.contains(&session),
        "elected again with a new session: {again}"
    );
    assert!(
        !a.out.iter().any(|l| l.contains("stopped by SIGTERM")),
        "{:?}",
        a.out
    );

    // The command exiting by itself ends `elect` with its status, resigned.
    let done = env.run(&elect(&env, "lost-once", "node-b", "exit 7"));
    assert_eq!(done.code(), 7, "{done:?}");
    kill(a.pid(), Signal::SIGTERM).expect("signal elect");
    a.finish();
    assert!(env.leftovers().is_empty(), "{:?}", env.leftovers());
}
