//! `leader NAME` (who leads an election, since when, its token, the candidates; `--watch`
//! follows every change) and `elect NAME -- CMD` (run a command while this process leads: it
//! campaigns, runs CMD when elected, stops CMD when the leadership ends, campaigns again).

use std::process::ExitStatus;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use clap::Args;
use consul_lock_runtime::{
    Client, Election, Leader, Leadership, Observation, RunEvent, DEFAULT_ELECTION_PREFIX,
};
use futures::StreamExt as _;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Serialize;
use tokio::process::Command;

use crate::exit::{Failure, Outcome, CONSUL, NOT_HELD, OK};
use crate::render;
use crate::run::{describe, signal_status, spawn_error, status_of, Signals};

/// Which election: its name, and where its key is.
#[derive(Debug, Args, Clone)]
pub struct ElectionOptions {
    /// The election's name: its key is PREFIX + NAME + `/leader` (Consul's guide:
    /// `service/<name>/leader`).
    pub name: String,
    /// The prefix before NAME.
    #[arg(long, value_name = "PREFIX", default_value = DEFAULT_ELECTION_PREFIX)]
    pub prefix: String,
    /// The whole leader key instead of PREFIX + NAME + `/leader` (for `consul lock PREFIX`:
    /// `PREFIX/.lock`).
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
}

impl ElectionOptions {
    fn election(&self, client: &Client) -> Election {
        let mut election = Election::new(self.name.clone())
            .key_prefix(self.prefix.clone())
            .client(client);
        if let Some(key) = &self.key {
            election = election.key(key.clone());
        }
        election
    }
}

/// `leader`.
#[derive(Debug, Args)]
pub struct LeaderArgs {
    /// The election.
    #[command(flatten)]
    pub election: ElectionOptions,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
    /// Follow the election: print each new leader and each time nobody leads, until
    /// interrupted.
    #[arg(long)]
    pub watch: bool,
}

/// `elect`.
#[derive(Debug, Args)]
pub struct ElectArgs {
    /// The election.
    #[command(flatten)]
    pub election: ElectionOptions,
    /// The leader's lease (session TTL, 10s..=24h): a dead leader is replaced 1–2 × this later.
    #[arg(long, value_name = "DUR", default_value = "15s", value_parser = crate::cli::parse_duration)]
    pub ttl: Duration,
    /// How long before the lease would run out the command is stopped (SIGTERM), and how long
    /// it then has before SIGKILL; at most a third of the TTL (default: a fifth).
    #[arg(long, value_name = "DUR", value_parser = crate::cli::parse_duration)]
    pub grace: Option<Duration>,
    /// The leader's value in the key (an address, a host name); by default the host, pid and
    /// time as JSON.
    #[arg(long, value_name = "TEXT")]
    pub value: Option<String>,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// A leader as `leader --json` prints it.
#[derive(Serialize)]
struct LeaderView {
    key: String,
    value: String,
    session: String,
    node: Option<String>,
    since: Option<String>,
    leading_for_seconds: Option<f64>,
    fencing_token: u64,
    candidates: Vec<CandidateView>,
}

#[derive(Serialize)]
struct CandidateView {
    session: String,
    node: Option<String>,
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `leader NAME`.
pub async fn leader(client: &Client, args: &LeaderArgs) -> Outcome {
    let election = args.election.election(client);
    let key = election.full_key()?;
    if args.watch {
        return watch(&election, &key, args.json).await;
    }
    let Some(leader) = election.leader().await? else {
        return Err(Failure::new(
            NOT_HELD,
            format!(
                "nobody leads election `{}` now (Consul key `{key}`); candidates waiting: {}",
                args.election.name,
                election.candidates().await?.len()
            ),
        ));
    };
    let candidates = election.candidates().await?;
    let view = LeaderView {
        key: leader.key.clone(),
        value: String::from_utf8_lossy(&leader.value).into_owned(),
        session: leader.session.clone(),
        node: leader.node.clone(),
        since: leader.since.map(rfc3339),
        leading_for_seconds: leader.since.map(|_| leader.leading_for().as_secs_f64()),
        fencing_token: leader.fencing_token,
        candidates: candidates
            .into_iter()
            .map(|c| CandidateView {
                session: c.session,
                node: c.node,
            })
            .collect(),
    };
    if args.json {
        render::emit(&render::json(&view)?);
        return Ok(OK);
    }
    let mut out = format!(
        "election   {}\nkey        {}\nleader     {}\nsession    {} (node {})\n",
        args.election.name,
        view.key,
        view.value,
        view.session,
        view.node.as_deref().unwrap_or("unknown")
    );
    match (&view.since, view.leading_for_seconds) {
        (Some(since), Some(secs)) => out.push_str(&format!(
            "since      {since} ({} ago)\n",
            humantime::format_duration(Duration::from_secs(secs as u64))
        )),
        _ => out.push_str("since      unknown (no leadership record: not a consul-lock leader)\n"),
    }
    out.push_str(&format!("token      {}\n", view.fencing_token));
    out.push_str(&format!("candidates {}\n", view.candidates.len()));
    for (i, c) in view.candidates.iter().enumerate() {
        out.push_str(&format!(
            "  {}. session {} (node {})\n",
            i + 1,
            c.session,
            c.node.as_deref().unwrap_or("unknown")
        ));
    }
    render::emit(&out);
    Ok(OK)
}

fn describe_leader(leader: &Leader) -> String {
    format!(
        "leader {} (token {}, session {}, node {})",
        String::from_utf8_lossy(&leader.value),
        leader.fencing_token,
        leader.session,
        leader.node.as_deref().unwrap_or("unknown")
    )
}

/// `leader NAME --watch`.
async fn watch(election: &Election, key: &str, json: bool) -> Outcome {
    let mut signals = Signals::install()?;
    let mut changes = election.observe();
    loop {
        let seen = tokio::select! {
            signal = signals.next() => return Ok(signal_status(signal)),
            seen = changes.next() => seen,
        };
        let now = rfc3339(SystemTime::now());
        let line = match seen {
            None => return Ok(OK),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(seen)) if json => {
                let (what, token, value) = match &seen {
                    Observation::Leader(l) => ("leader", Some(l.fencing_token), Some(&l.value)),
                    Observation::Proclaimed(l) => {
                        ("proclaimed", Some(l.fencing_token), Some(&l.value))
                    }
                    _ => ("no_leader", None, None),
                };
                let value = value.map(|v| String::from_utf8_lossy(v).into_owned());
                let json = serde_json::json!({"at": now, "key": key, "what": what, "fencing_token": token, "value": value});
                format!("{json}\n")
            }
            Some(Ok(Observation::Leader(l))) => format!("{now}  {}\n", describe_leader(&l)),
            Some(Ok(Observation::Proclaimed(l))) => {
                format!("{now}  the leader proclaimed: {}\n", describe_leader(&l))
            }
            Some(Ok(_)) => format!("{now}  no leader\n"),
        };
        render::emit(&line);
    }
}

/// `elect NAME -- CMD`.
pub async fn elect(client: &Client, args: &ElectArgs) -> Outcome {
    let mut election = args.election.election(client).ttl(args.ttl);
    if let Some(grace) = args.grace {
        election = election.grace(grace);
    }
    if let Some(value) = &args.value {
        election = election.value(value.clone());
    }
    let key = election.full_key()?;
    election.resolved_grace()?;
    let mut signals = Signals::install()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let name = args.election.name.clone();
    let runner = election
        .runner()
        .on_event(move |event| match &event {
            RunEvent::Started { .. } | RunEvent::Stopped { .. } => {
                eprintln!("consul-lock elect {name}: {event}");
            }
            _ => {}
        })
        .until(async move {
            let _ = stopped.await;
        });
    let child: Arc<Mutex<Option<u32>>> = Arc::new(Mutex::new(None));
    let running = runner.run(|leadership| lead(leadership, args.command.clone(), child.clone()));
    tokio::pin!(running);
    let mut stop = Some(stop);
    let mut interrupted: Option<Signal> = None;
    let ended = loop {
        tokio::select! {
            ended = &mut running => break ended,
            signal = signals.next() => {
                if signal == Signal::SIGHUP {
                    forward(&child, signal);
                } else if let Some(stop) = stop.take() {
                    // Stop: the command gets SIGTERM and the grace, then the leadership is given up.
                    interrupted = Some(signal);
                    let _ = stop.send(());
                } else {
                    forward(&child, Signal::SIGKILL); // a second interrupt: at once
                }
            }
        }
    };
    match ended {
        Ok(Some(status)) => {
            eprintln!(
                "consul-lock elect {}: the command {}; resigned from `{key}`",
                args.election.name,
                describe(status)
            );
            Ok(status_of(status))
        }
        Ok(None) => Ok(interrupted.map_or(OK, signal_status)),
        Err(failure) => Err(failure),
    }
}

/// Sends `signal` to the running command, if there is one.
fn forward(child: &Arc<Mutex<Option<u32>>>, signal: Signal) {
    let pid = *child.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// One leadership: run the command; when told to stop, SIGTERM it and wait (the runner
/// SIGKILLs it, by dropping it, when the grace is over, or at once when the leadership is lost).
async fn lead(
    leadership: Leadership,
    command: Vec<String>,
    current: Arc<Mutex<Option<u32>>>,
) -> Result<ExitStatus, Failure> {
    let (program, rest) = command
        .split_first()
        .ok_or_else(|| Failure::new(crate::exit::USAGE, "no command given: add `-- CMD ARGS…`"))?;
    let mut child = Command::new(program)
        .args(rest)
        .env(crate::run::ENV_KEY, leadership.key())
        .env(
            crate::run::ENV_FENCING_TOKEN,
            leadership.fencing_token().to_string(),
        )
        .env(crate::run::ENV_SESSION, leadership.session_id())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| spawn_error(program, &e))?;
    *current.lock().unwrap_or_else(PoisonError::into_inner) = child.id();
    let waited = tokio::select! {
        status = child.wait() => status,
        cause = leadership.stopping() => {
            eprintln!("consul-lock elect: stopping the command (SIGTERM): {cause}");
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            child.wait().await
        }
    };
    *current.lock().unwrap_or_else(PoisonError::into_inner) = None;
    waited.map_err(|e| {
        Failure::new(
            CONSUL,
            format!("lost track of the command: {e}; it may still run"),
        )
    })
}
