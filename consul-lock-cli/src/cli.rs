//! The command line as clap reads it: subcommands, options and the help text.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use consul_lock_runtime::defaults::DEFAULT_KEY_PREFIX;

/// Shown after every help text: keys, environment, exit statuses (their values: `exit.rs`).
const AFTER_HELP: &str = "\
Keys are given as the attribute renders them (`send/user-42/welcome-email`), or as its template
with the values of the placeholders (`'send/user-<user_id>/welcome-email' --set user_id=42`).
The prefix (--prefix, default `locks/ephemeral/`) is put before them as the library does; give
--full-key to name the Consul key itself.

Consul is found as the library and the Consul CLI find it: CONSUL_HTTP_ADDR (default
127.0.0.1:8500), CONSUL_HTTP_TOKEN / CONSUL_HTTP_TOKEN_FILE, CONSUL_HTTP_SSL, CONSUL_CACERT,
CONSUL_CLIENT_CERT / CONSUL_CLIENT_KEY, CONSUL_HTTP_SSL_VERIFY, CONSUL_NAMESPACE.

Exit status:
    0    success (run: the command exited 0 and the lock was held throughout; elect: the
         command exited 0 by itself)
    1    show, release: the lock is not held; leader: nobody leads
    2    usage error: bad arguments, an invalid key, duration or CONSUL_* setting
    3    release: refused without --force (nothing was changed)
  123    run: the lock was lost while the command ran
  124    run: not acquired within --timeout; wait: still held at --timeout
  125    Consul could not be reached, refused the request or denied permission
  126    run: the command was found but could not be executed
  127    run: the command was not found
 other   run: the command's own status; 128+N when it was killed by signal N (or when
         consul-lock got signal N while it waited for the lock, and ran nothing)";

/// Inspect and operate consul-lock locks in Consul: who holds a lock, since when, on which
/// host; run a command under a lock; wait for a lock; release a stuck one.
#[derive(Debug, Parser)]
#[command(name = "consul-lock", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the locks held now: key, holder (host, pid), locked_at, age, session TTL and
    /// node, waiters queued, fencing token.
    #[command(after_help = AFTER_HELP)]
    List(ListArgs),
    /// Show one lock in full, with its queue of waiters. Exit status 1 when it is not held.
    #[command(after_help = AFTER_HELP)]
    Show(ShowArgs),
    /// Run a command under the lock, like `consul lock`: acquire, run, release when it exits.
    ///
    /// The command gets CONSUL_LOCK_KEY (the full Consul key), CONSUL_LOCK_FENCING_TOKEN
    /// (pass it to the systems you write to) and CONSUL_LOCK_SESSION in its environment.
    /// SIGINT, SIGTERM and SIGHUP sent to consul-lock are forwarded to the command (Ctrl-C in a
    /// terminal reaches both, as they share the terminal's process group).
    ///
    /// The lock is watched while the command runs: a session destroyed from outside (`release
    /// --force`), a key deleted or taken over, or (without --renew) the lock timeout running out
    /// is reported at once as a lost lock.
    ///
    /// The exit status is the command's (128+N when killed by signal N); 124 when the lock was
    /// not acquired in time, 123 when it was lost while the command ran.
    #[command(after_help = AFTER_HELP)]
    Run(RunArgs),
    /// Release a lock by destroying its holder's session (a client's shared session, which its
    /// other locks use too, is kept: the key alone is deleted, while that session holds it): an
    /// operator's last resort. Without --force it only says what it would do (exit status 3).
    #[command(after_help = AFTER_HELP)]
    Release(ReleaseArgs),
    /// Wait until the lock is free (Consul blocking queries, not polling). Exit status 124
    /// when it is still held at --timeout.
    ///
    /// Free means free at that moment: a queued waiter may take it right after.
    #[command(after_help = AFTER_HELP)]
    Wait(WaitArgs),
    /// Who leads an election (`service/<NAME>/leader`): the leader's value, session and node,
    /// since when, its fencing token, and the candidates waiting. Exit status 1 when nobody
    /// leads. With --watch, print every change (each new leader, and "no leader").
    #[command(after_help = AFTER_HELP)]
    Leader(crate::election::LeaderArgs),
    /// Run a command while this process leads an election: campaign (waiting in line behind
    /// other candidates), run CMD once elected, stop it when the leadership ends (SIGTERM
    /// when the lease is about to run out or on SIGINT/SIGTERM, SIGKILL after the grace; SIGKILL
    /// at once when the leadership is lost), and campaign again.
    ///
    /// The command gets CONSUL_LOCK_KEY, CONSUL_LOCK_FENCING_TOKEN (pass it to the systems
    /// you write to) and CONSUL_LOCK_SESSION. When it exits by itself, `elect` resigns and
    /// exits with its status; SIGINT or SIGTERM stop the command and resign (exit 128+N);
    /// SIGHUP is forwarded.
    #[command(after_help = AFTER_HELP)]
    Elect(crate::election::ElectArgs),
}

/// How a key given on the command line becomes a Consul key.
#[derive(Debug, Args, Clone)]
pub struct KeyOptions {
    /// The key prefix the library puts before every key.
    #[arg(long, value_name = "PREFIX", default_value = DEFAULT_KEY_PREFIX)]
    pub prefix: String,
    /// Take KEY as the full Consul key (no prefix put before it).
    #[arg(long)]
    pub full_key: bool,
}

/// A key written as the attribute's template, and the values of its placeholders.
#[derive(Debug, Args, Clone)]
pub struct TemplateOptions {
    /// A value for a placeholder when KEY is written as the attribute's template
    /// (`'send/user-<user_id>/welcome-email' --set user_id=42`); escaped as the library
    /// escapes it. Repeat for each placeholder.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = crate::template::parse_assignment)]
    pub values: Vec<crate::template::Assignment>,
}

/// `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only the locks whose key starts with this (as written in the attribute, e.g.
    /// `send/user-42/`); all locks under the prefix when omitted.
    #[arg(value_name = "PREFIX", default_value = "")]
    pub filter: String,
    /// Print JSON (an array of locks) for scripts.
    #[arg(long)]
    pub json: bool,
    /// Key options.
    #[command(flatten)]
    pub key: KeyOptions,
}

/// `show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The lock key, as written in the attribute.
    pub key: String,
    /// Print JSON for scripts.
    #[arg(long)]
    pub json: bool,
    /// Placeholder values.
    #[command(flatten)]
    pub template: TemplateOptions,
    /// Key options.
    #[command(flatten)]
    pub key_options: KeyOptions,
}

/// `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The lock key, as written in the attribute.
    pub key: String,
    /// How long to wait for a held lock (`500ms`, `30s`, `2m`); 0 tries once.
    #[arg(long, value_name = "DUR", default_value = "0s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// The lock timeout: the session TTL after which Consul frees the key of a holder that
    /// stopped renewing (10s..=24h; without --renew the lock is lost when it runs out).
    #[arg(long, value_name = "DUR", default_value = "180s", value_parser = parse_duration)]
    pub lock_timeout: Duration,
    /// Renew the session at TTL/2 while the command runs, so the lock outlives the lock
    /// timeout.
    #[arg(long)]
    pub renew: bool,
    /// When the lock is lost, stop the command: SIGTERM, then SIGKILL after --kill-grace.
    /// Without it a warning is printed and the command goes on (exit status 123 at the end).
    #[arg(long)]
    pub kill_on_loss: bool,
    /// With --kill-on-loss: how long the command has between SIGTERM and SIGKILL.
    #[arg(long, value_name = "DUR", default_value = "10s", value_parser = parse_duration)]
    pub kill_grace: Duration,
    /// Placeholder values.
    #[command(flatten)]
    pub template: TemplateOptions,
    /// Key options.
    #[command(flatten)]
    pub key_options: KeyOptions,
    /// The command and its arguments (after `--`).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// `release`.
#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// The lock key, as written in the attribute.
    pub key: String,
    /// Really destroy the holder's session. Consul tells the holder nothing; holders that
    /// watch their key notice at once (this library with renewal or waiting on `lost()`,
    /// `consul-lock run`, Go's `api.Lock` through its lost channel); a holder of this library
    /// without renewal and not waiting on `lost()` notices only at its lock timeout and may
    /// go on working until then: protect writes with fencing tokens.
    #[arg(long)]
    pub force: bool,
    /// Placeholder values.
    #[command(flatten)]
    pub template: TemplateOptions,
    /// Key options.
    #[command(flatten)]
    pub key_options: KeyOptions,
}

/// `wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// The lock key, as written in the attribute.
    pub key: String,
    /// Give up after this long (`500ms`, `30s`, `2m`); waits without end when omitted.
    #[arg(long, value_name = "DUR", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Placeholder values.
    #[command(flatten)]
    pub template: TemplateOptions,
    /// Key options.
    #[command(flatten)]
    pub key_options: KeyOptions,
}

/// The longest duration accepted: a year (longer ones are a typo, and would overflow clocks).
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses `500ms`, `30s`, `2m`, `1h 30m` (humantime); a bare `0` is zero.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let d = humantime::parse_duration(text)
        .map_err(|e| format!("{e}; write a duration like `500ms`, `30s`, `2m` or `1h 30m`"))?;
    if d > MAX_DURATION {
        return Err(format!(
            "{text} is longer than a year; give a shorter duration"
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("soon").unwrap_err().contains("like `500ms`"));
        assert!(parse_duration("2y")
            .unwrap_err()
            .contains("longer than a year"));
    }
}
