//! `run KEY -- CMD ARGS…`: a command under a lock, like `consul lock`.
//!
//! Acquire with the library; run the command with the key, fencing token and session in its
//! environment; forward SIGINT, SIGTERM and SIGHUP to it; watch for the loss of the lock (and
//! with `--kill-on-loss` stop the command: SIGTERM, then SIGKILL after the grace period);
//! release when it exits; exit with its status.

use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt as _;
use std::process::ExitStatus;
use std::time::Duration;

use consul_lock_runtime::{Client, Error, LockGuard, Lost};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::Instant;

use crate::cli::RunArgs;
use crate::exit::{Failure, Outcome, CANNOT_EXECUTE, CONSUL, LOCK_LOST, NOT_FOUND, TIMED_OUT};
use crate::render;
use crate::state::{self, Target};

/// The environment variable with the full Consul key.
pub const ENV_KEY: &str = "CONSUL_LOCK_KEY";
/// The environment variable with the fencing token.
pub const ENV_FENCING_TOKEN: &str = "CONSUL_LOCK_FENCING_TOKEN";
/// The environment variable with the holder's session ID.
pub const ENV_SESSION: &str = "CONSUL_LOCK_SESSION";

/// How long one blocking query of the loss watch lasts at most.
const WATCH_WAIT: Duration = Duration::from_secs(300);
/// How long the loss watch waits after a failed read before it reads again.
const WATCH_RETRY: Duration = Duration::from_secs(1);

/// The signals forwarded to the command.
pub(crate) struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    pub(crate) fn install() -> Result<Signals, Failure> {
        let one = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| {
                Failure::new(
                    CONSUL,
                    format!("cannot handle {name}: {e}; nothing was run"),
                )
            })
        };
        Ok(Signals {
            int: one(SignalKind::interrupt(), "SIGINT")?,
            term: one(SignalKind::terminate(), "SIGTERM")?,
            hup: one(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    /// The next signal received.
    pub(crate) async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.int.recv() => Signal::SIGINT,
            _ = self.term.recv() => Signal::SIGTERM,
            _ = self.hup.recv() => Signal::SIGHUP,
        }
    }
}

/// The exit status a shell reports for a signal.
pub(crate) fn signal_status(signal: Signal) -> u8 {
    128u8.saturating_add(u8::try_from(signal as i32).unwrap_or(0))
}

/// The command's exit status as a shell reports it: its code, or 128+N for signal N.
pub(crate) fn status_of(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(u8::MAX),
        (None, Some(signal)) => 128u8.saturating_add(u8::try_from(signal).unwrap_or(0)),
        (None, None) => u8::MAX,
    }
}

/// `exited with status 3` / `was killed by signal 15 (SIGTERM)`.
pub(crate) fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(n)) => match Signal::try_from(n) {
            Ok(s) => format!("was killed by signal {n} ({s})"),
            Err(_) => format!("was killed by signal {n}"),
        },
        (None, None) => "ended".to_owned(),
    }
}

/// `run`.
pub async fn run(client: &Client, args: &RunArgs) -> Outcome {
    let target = Target::resolve(&args.key, &args.key_options, &args.template.values)?;
    let mut signals = Signals::install()?;
    // A session of its own: this process takes one lock, so a shared session would cost its
    // create and, once the process has exited, its expiry on top of take and give-back, and
    // would outlive the command (up to twice its TTL) instead of ending with the release.
    let lock = target
        .lock(client)
        .acquire_timeout(args.timeout)
        .lock_timeout(args.lock_timeout)
        .renew(args.renew)
        .own_session(true);
    let guard = tokio::select! {
        acquired = lock.acquire() => match acquired {
            Ok(guard) => guard,
            Err(Error::NotAcquired { .. }) => return Err(not_acquired(client, &target, args.timeout).await),
            Err(e) => return Err(e.into()),
        },
        signal = signals.next() => {
            // The cancelled acquire's session is destroyed in the background: wait for it.
            consul_lock_runtime::flush_releases().await;
            return Err(Failure::new(
                signal_status(signal),
                format!("interrupted by {signal} while waiting for lock `{}`; nothing was run", target.key),
            ));
        }
    };
    let child = match spawn(args, &guard) {
        Ok(child) => child,
        Err(failure) => {
            release(guard).await;
            return Err(failure);
        }
    };
    supervise(client, args, &target, guard, child, signals).await
}

/// The one-line error for a lock held past the acquire timeout, naming the holder.
async fn not_acquired(client: &Client, target: &Target, waited: Duration) -> Failure {
    let holder = match state::read_lock(client, target).await {
        Ok(Some(lock)) => format!("held by {}", render::whose(&lock)),
        _ => "held by another session".to_owned(),
    };
    Failure::new(
        TIMED_OUT,
        format!(
            "lock `{}` is {holder}, and was not released within {}; nothing was run: see \
             `consul-lock show {}`, or wait longer with --timeout",
            target.key,
            humantime::format_duration(waited),
            target.key
        ),
    )
}

fn spawn(args: &RunArgs, guard: &LockGuard) -> Result<Child, Failure> {
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| Failure::new(crate::exit::USAGE, "no command given: add `-- CMD ARGS…`"))?;
    Command::new(program)
        .args(rest)
        .env(ENV_KEY, guard.key())
        .env(ENV_FENCING_TOKEN, guard.fencing_token().to_string())
        .env(ENV_SESSION, guard.session_id())
        .spawn()
        .map_err(|e| spawn_error(program, &e))
}

/// The failure for a command that could not be started.
pub(crate) fn spawn_error(program: &str, e: &std::io::Error) -> Failure {
    match e.kind() {
        ErrorKind::NotFound => Failure::new(
            NOT_FOUND,
            format!("command `{program}` not found: check its name and PATH; the lock was released"),
        ),
        ErrorKind::PermissionDenied => Failure::new(
            CANNOT_EXECUTE,
            format!("command `{program}` cannot be executed ({e}): check its permissions; the lock was released"),
        ),
        _ => Failure::new(
            CANNOT_EXECUTE,
            format!("command `{program}` could not be started: {e}; the lock was released"),
        ),
    }
}

/// Sends `signal` to the command; it may have exited already, which is not an error.
fn send(child: &Child, signal: Signal) {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// Waits for the command, forwarding signals and watching the lock.
async fn supervise(
    client: &Client,
    args: &RunArgs,
    target: &Target,
    guard: LockGuard,
    mut child: Child,
    mut signals: Signals,
) -> Outcome {
    let lost = lost(
        client.clone(),
        guard.lost(),
        guard.key().to_owned(),
        guard.session_id().to_owned(),
        args.renew,
    );
    tokio::pin!(lost);
    let mut lost_reason: Option<String> = None;
    let mut kill_at: Option<Instant> = None;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            signal = signals.next() => send(&child, signal),
            reason = &mut lost, if lost_reason.is_none() => {
                let action = if args.kill_on_loss {
                    kill_at = Some(Instant::now() + args.kill_grace);
                    send(&child, Signal::SIGTERM);
                    format!(
                        "stopping the command (SIGTERM, then SIGKILL after {})",
                        humantime::format_duration(args.kill_grace)
                    )
                } else {
                    "the command goes on, and its work may overlap another holder's \
                     (--kill-on-loss stops it); exit status 123 at the end"
                        .to_owned()
                };
                eprintln!("warning: lock `{}` was lost while the command ran: {reason}; {action}", target.key);
                lost_reason = Some(reason);
            }
            () = sleep_until(kill_at), if kill_at.is_some() => {
                kill_at = None;
                let _ = child.start_kill();
            }
        }
    };
    let status = status.map_err(|e| {
        Failure::new(
            CONSUL,
            format!("lost track of the command: {e}; it may still run"),
        )
    })?;
    // A loss the library saw as the command ended (the TTL running out) counts too.
    let lost_reason = lost_reason.or_else(|| guard.lost_reason().map(|r| r.to_string()));
    match lost_reason {
        Some(reason) => {
            release(guard).await;
            Err(Failure::new(
                LOCK_LOST,
                format!(
                    "lock `{}` was lost while the command ran ({reason}); the command {}",
                    target.key,
                    describe(status)
                ),
            ))
        }
        None => {
            release(guard).await;
            Ok(status_of(status))
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Releases the lock; a failure is a warning (Consul frees the key when the TTL runs out).
async fn release(guard: LockGuard) {
    let key = guard.key().to_owned();
    if let Err(e) = guard.release().await {
        eprintln!("warning: could not release lock `{key}`: {e}; Consul frees it when its session TTL runs out");
    }
}

/// Completes with a description when the lock is lost: from the library (TTL out, renewals
/// failed; with `renew` also a session destroyed or a key taken over), and without `renew`
/// from a watch of the key of our own, so that a `release --force` is seen at once too.
async fn lost(
    client: Client,
    by_library: Lost,
    key: String,
    session: String,
    renew: bool,
) -> String {
    if renew {
        return by_library.await.to_string();
    }
    let watch = watch_holder(&client, &key, &session);
    tokio::select! {
        reason = by_library => reason.to_string(),
        reason = watch => reason,
    }
}

/// Blocking queries on `key` until another session (or none) holds it.
async fn watch_holder(client: &Client, key: &str, session: &str) -> String {
    let mut index = 0;
    loop {
        match client.kv_watch(key, index, WATCH_WAIT).await {
            Ok((entry, new_index)) => {
                match entry.and_then(|e| e.session) {
                    Some(holder) if holder == session => {}
                    Some(other) => return format!("the key is now held by session {other}"),
                    None => {
                        return "the key was deleted or released from outside (its session \
                                was destroyed)"
                            .to_owned()
                    }
                }
                index = if new_index < index {
                    1
                } else {
                    new_index.max(1)
                };
            }
            // Consul unreachable for a while: the library reports the loss if the TTL runs
            // out meanwhile.
            Err(_) => tokio::time::sleep(WATCH_RETRY).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_as_shells_report_them() {
        assert_eq!(status_of(ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(status_of(ExitStatus::from_raw(15)), 143);
        assert_eq!(
            describe(ExitStatus::from_raw(9)),
            "was killed by signal 9 (SIGKILL)"
        );
        assert_eq!(signal_status(Signal::SIGINT), 130);
    }
}
