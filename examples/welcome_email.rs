//! Workers racing over a stream of sign-ups: every sign-up reaches every worker (as with an
//! at-least-once queue that redelivers), and each welcome e-mail is sent exactly once.
//!
//! The lock makes "check the outbox, then send" atomic across workers; `fail_soft` turns
//! "another worker is on it" into a normal outcome.
//!
//! ```sh
//! cargo run --example welcome_email [users] [workers]
//! ```

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use consul_lock::{consul_lock, defaults};

/// Stands in for the database table that records sent e-mails.
#[derive(Default)]
struct Outbox {
    sent: Mutex<HashMap<u64, Vec<usize>>>,
}

impl Outbox {
    fn already_sent(&self, user_id: u64) -> bool {
        self.sent
            .lock()
            .map(|s| s.contains_key(&user_id))
            .unwrap_or(false)
    }
    fn record(&self, user_id: u64, worker: usize) {
        if let Ok(mut sent) = self.sent.lock() {
            sent.entry(user_id).or_default().push(worker);
        }
    }
}

#[derive(Debug)]
enum AppError {
    Lock(consul_lock::Error),
}

impl From<consul_lock::Error> for AppError {
    fn from(e: consul_lock::Error) -> Self {
        AppError::Lock(e)
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Lock(e) => write!(f, "lock error: {e}"),
        }
    }
}

impl std::error::Error for AppError {}

enum Outcome {
    Sent,
    AlreadySent,
}

/// Sends the welcome e-mail unless it was sent already. `Ok(None)`: another worker holds the
/// lock for this user right now.
#[consul_lock(key = "send/user-<user_id>/welcome-email", fail_soft)]
async fn send_welcome_email(
    user_id: u64,
    worker: usize,
    outbox: &Outbox,
) -> Result<Option<Outcome>, AppError> {
    if outbox.already_sent(user_id) {
        return Ok(Some(Outcome::AlreadySent));
    }
    // Talking to the mail server takes a while: the window in which a duplicate would slip in.
    tokio::time::sleep(Duration::from_millis(5 + fastrand::u64(..15))).await;
    outbox.record(user_id, worker);
    Ok(Some(Outcome::Sent))
}

#[derive(Default, Clone, Copy)]
struct Tally {
    sent: u32,
    already_sent: u32,
    busy: u32,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let users: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(40);
    let workers: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(4);
    let consul = support::connect()?;
    defaults::set_client(consul.client.clone());
    // Keys of this run only, so that runs against a shared agent do not meet.
    defaults::set_key_prefix(format!(
        "locks/examples/welcome-{:06x}/",
        fastrand::u32(..1 << 24)
    ))?;

    println!("{users} sign-ups, each delivered to all {workers} workers in its own order");
    let outbox = Arc::new(Outbox::default());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let outbox = outbox.clone();
        tasks.push(tokio::spawn(async move {
            let mut order: Vec<u64> = (1..=users).collect();
            fastrand::shuffle(&mut order[..]);
            let mut tally = Tally::default();
            for (n, user_id) in order.into_iter().enumerate() {
                match send_welcome_email(user_id, worker, &outbox).await? {
                    Some(Outcome::Sent) => tally.sent += 1,
                    Some(Outcome::AlreadySent) => tally.already_sent += 1,
                    None => tally.busy += 1,
                }
                if (n + 1) % 10 == 0 {
                    println!("  worker {worker}: {} sign-ups handled", n + 1);
                }
            }
            Ok::<Tally, AppError>(tally)
        }));
    }
    let mut tallies = Vec::new();
    for task in tasks {
        tallies.push(task.await??);
    }

    println!("\n| worker | sent | already sent | busy (other worker on it) |");
    println!("| ---: | ---: | ---: | ---: |");
    let mut total = Tally::default();
    for (worker, t) in tallies.iter().enumerate() {
        println!(
            "| {worker} | {} | {} | {} |",
            t.sent, t.already_sent, t.busy
        );
        total.sent += t.sent;
        total.already_sent += t.already_sent;
        total.busy += t.busy;
    }
    println!(
        "| all | {} | {} | {} |",
        total.sent, total.already_sent, total.busy
    );

    let sent = outbox.sent.lock().map_err(|_| "outbox poisoned")?;
    let duplicates = sent.values().filter(|w| w.len() > 1).count();
    let missing = (1..=users).filter(|u| !sent.contains_key(u)).count();
    println!(
        "\n{} users, {} e-mails sent, {duplicates} sent twice, {missing} not sent, in {:?}",
        users,
        sent.values().map(Vec::len).sum::<usize>(),
        started.elapsed()
    );
    if duplicates > 0 || missing > 0 {
        return Err("an e-mail was sent twice or not at all".into());
    }
    println!("each welcome e-mail was sent exactly once");
    Ok(())
}
