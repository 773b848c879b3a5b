//! `list`, `show`, `release` and `wait`: reading and operating locks held by others.

use std::time::Duration;

use consul_lock_runtime::Client;
use tokio::time::Instant;

use crate::cli::{ListArgs, ReleaseArgs, ShowArgs, WaitArgs};
use crate::exit::{Failure, Outcome, NOT_HELD, OK, REFUSED, TIMED_OUT};
use crate::render;
use crate::state::{self, Target};

/// The longest single blocking query `wait` asks for (Consul caps them at 10 minutes).
const LONGEST_WAIT: Duration = Duration::from_secs(300);

/// `list [PREFIX]`.
pub async fn list(client: &Client, args: &ListArgs) -> Outcome {
    let prefix = if args.key.full_key {
        ""
    } else {
        args.key.prefix.as_str()
    };
    let locks = state::list_locks(client, prefix, &args.filter).await?;
    if args.json {
        render::emit(&render::json(&locks)?);
    } else if locks.is_empty() {
        render::emit(&format!("no locks held under `{prefix}{}`\n", args.filter));
    } else {
        render::emit(&render::table(&locks));
    }
    Ok(OK)
}

fn not_held(target: &Target) -> Failure {
    Failure::new(
        NOT_HELD,
        format!(
            "lock `{}` is not held (Consul key `{}`); check the key and --prefix with `consul-lock list`",
            target.key, target.consul_key
        ),
    )
}

/// `show KEY`.
pub async fn show(client: &Client, args: &ShowArgs) -> Outcome {
    let target = Target::resolve(&args.key, &args.key_options, &args.template.values)?;
    let lock = state::read_lock(client, &target)
        .await?
        .ok_or_else(|| not_held(&target))?;
    if args.json {
        render::emit(&render::json(&lock)?);
    } else {
        render::emit(&render::detail(&lock));
    }
    Ok(OK)
}

/// `release KEY --force`.
pub async fn release(client: &Client, args: &ReleaseArgs) -> Outcome {
    let target = Target::resolve(&args.key, &args.key_options, &args.template.values)?;
    let lock = state::read_lock(client, &target)
        .await?
        .ok_or_else(|| not_held(&target))?;
    if !args.force {
        return Err(Failure::new(
            REFUSED,
            format!(
                "refusing to release `{}` without --force: it is held by {}; --force would destroy \
                 that session (a shared session: delete the key alone), which deletes the key and \
                 lets the next waiter take it; a holder \
                 that does not watch its key (this library without renewal and not waiting on \
                 lost()) is not told until its lock timeout and may go on working; re-run with \
                 --force if that is what you want",
                target.key,
                render::whose(&lock)
            ),
        ));
    }
    if lock.session.shared {
        // Destroying a shared session would end every lock of that holder: delete this key
        // alone, while that session still holds it.
        client
            .delete_held_key(&target.consul_key, &lock.session.id)
            .await?;
        render::emit(&format!(
            "released `{}` (Consul key `{}`): deleted the key held by the shared session of {} \
             (its other locks are kept)\n",
            target.key,
            target.consul_key,
            render::whose(&lock)
        ));
        return Ok(OK);
    }
    client.destroy_session(&lock.session.id).await?;
    render::emit(&format!(
        "released `{}` (Consul key `{}`): destroyed the session of {}\n",
        target.key,
        target.consul_key,
        render::whose(&lock)
    ));
    Ok(OK)
}

/// `wait KEY [--timeout DUR]`: blocking queries on the key until it is free.
pub async fn wait(client: &Client, args: &WaitArgs) -> Outcome {
    let target = Target::resolve(&args.key, &args.key_options, &args.template.values)?;
    let started = Instant::now();
    let deadline = args.timeout.map(|t| started + t);
    let mut index = 0;
    let mut held_by = String::new();
    loop {
        let wait = match deadline {
            // A blocking query may answer up to wait/16 late: ask for 15/16 of what is left.
            Some(deadline) => {
                (deadline.saturating_duration_since(Instant::now()) * 15 / 16).min(LONGEST_WAIT)
            }
            None => LONGEST_WAIT,
        };
        let watch = client.kv_watch(&target.consul_key, index, wait);
        let answer = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, watch).await.ok(),
            None => Some(watch.await),
        };
        if let Some(answer) = answer {
            let (entry, new_index) = answer?;
            match entry.and_then(|e| e.session) {
                None => {
                    let waited = started.elapsed().as_millis();
                    render::emit(&format!(
                        "`{}` is free (waited {})\n",
                        target.key,
                        render::age(u64::try_from(waited).unwrap_or(u64::MAX))
                    ));
                    return Ok(OK);
                }
                Some(session) => {
                    if held_by.is_empty() {
                        eprintln!(
                            "waiting for `{}` to be free (held by session {session})",
                            target.key
                        );
                    }
                    held_by = session;
                }
            }
            // An index going backwards (a restored snapshot) means starting over; 0 would
            // not block.
            index = if new_index < index {
                1
            } else {
                new_index.max(1)
            };
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Failure::new(
                TIMED_OUT,
                format!(
                    "`{}` is still held by session {held_by} after {}; see who holds it with \
                     `consul-lock show {}`",
                    target.key,
                    humantime::format_duration(args.timeout.unwrap_or_default()),
                    target.key
                ),
            ));
        }
    }
}
