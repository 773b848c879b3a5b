//! Leader election: three nodes of a scheduler campaign for `service/scheduler/leader`; one
//! leads and schedules, writing its progress through the leader's fence; an observer prints
//! every change, including "no leader". The leader resigns, then the next one loses its
//! session to an operator: its work is stopped at once, a stale write of it is refused by
//! Consul, and the third node takes over.
//!
//! ```sh
//! cargo run --example leader                              # on the embedded test server
//! CONSUL_HTTP_ADDR=127.0.0.1:8500 cargo run --example leader   # on a real agent
//! ```

mod support;

use std::time::{Duration, Instant};

use consul_lock::{Election, Error, Leadership, Observation, RunEvent};
use futures::StreamExt as _;
use tokio::sync::{mpsc, oneshot};

/// The scheduler's work while it leads: a round every 100 ms, its progress written through
/// the fence, until told to stop.
async fn schedule(node: &'static str, leadership: Leadership, t0: Instant) -> Result<(), Error> {
    let fence = leadership.fence();
    let progress = format!("{}/progress", leadership.key());
    for round in 1.. {
        tokio::select! {
            cause = leadership.stopping() => {
                println!("{:>6.2?}  {node}: stopping: {cause}", t0.elapsed());
                return Ok(());
            }
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        fence
            .put(progress.clone(), format!("{node} round {round}"))
            .await?;
        if round % 5 == 0 {
            println!("{:>6.2?}  {node}: scheduled round {round}", t0.elapsed());
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let consul = support::connect()?;
    let t0 = Instant::now();
    let name = format!("scheduler-{:06x}", fastrand::u32(..1 << 24));
    let election = Election::new(name)
        .client(&consul.client)
        .ttl(consul.min_lock_timeout.max(Duration::from_secs(10)));
    println!("election key: {}", election.full_key()?);

    // An observer, as any follower would run one.
    let mut observer = election.observe();
    tokio::spawn(async move {
        while let Some(Ok(seen)) = observer.next().await {
            match seen {
                Observation::Leader(l) => println!(
                    "{:>6.2?}  observer: leader is {} (token {})",
                    t0.elapsed(),
                    l.value_str().unwrap_or("?"),
                    l.fencing_token
                ),
                Observation::NoLeader => println!("{:>6.2?}  observer: no leader", t0.elapsed()),
                other => println!("{:>6.2?}  observer: {other}", t0.elapsed()),
            }
        }
    });

    // Three nodes, each with its own client (as three processes would have).
    let (started_tx, mut started) = mpsc::unbounded_channel::<(&'static str, Leadership)>();
    let mut stops = Vec::new();
    let mut nodes = Vec::new();
    for node in ["node-a", "node-b", "node-c"] {
        let client = consul_lock::ClientBuilder::from_env()?
            .address(consul.client.address())
            .session_ttl_min(consul.min_lock_timeout)
            .build()?;
        let (stop, stopped) = oneshot::channel::<()>();
        stops.push(stop);
        let runner = election
            .clone()
            .client(&client)
            .value(node)
            .runner()
            .on_event(move |event| match event {
                RunEvent::Started { .. } | RunEvent::Stopped { .. } => {
                    println!("{:>6.2?}  {node}: {event}", t0.elapsed());
                }
                _ => {}
            })
            .until(async move {
                let _ = stopped.await;
            });
        let tx = started_tx.clone();
        nodes.push(tokio::spawn(runner.run(move |leadership| {
            let _ = tx.send((node, leadership.clone()));
            schedule(node, leadership, t0)
        })));
    }

    // The first leader works a while, then resigns (its node shuts down).
    let (first, _) = started.recv().await.ok_or("no leader")?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    println!("{:>6.2?}  {first} shuts down", t0.elapsed());
    let index = ["node-a", "node-b", "node-c"]
        .iter()
        .position(|n| *n == first)
        .ok_or("node")?;
    let _ = stops.remove(index).send(());

    // The next leader loses its session to an operator.
    let (second, deposed) = started.recv().await.ok_or("no second leader")?;
    tokio::time::sleep(Duration::from_millis(700)).await;
    println!(
        "{:>6.2?}  an operator destroys {second}'s session",
        t0.elapsed()
    );
    consul.client.destroy_session(deposed.session_id()).await?;
    let (third, _) = started.recv().await.ok_or("no third leader")?;
    let stale = deposed
        .fence()
        .put(format!("{}/progress", deposed.key()), "stale")
        .await;
    println!(
        "{:>6.2?}  {second} (deposed) tries to write: {}",
        t0.elapsed(),
        match stale {
            Err(e) => format!("refused by Consul: {e}"),
            Ok(_) => "applied (unexpected!)".into(),
        }
    );
    let leader = election.leader().await?.ok_or("no leader")?;
    println!(
        "{:>6.2?}  {third} leads: {leader}; candidates waiting: {}",
        t0.elapsed(),
        election.candidates().await?.len()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    for stop in stops {
        let _ = stop.send(());
    }
    for node in nodes {
        node.await??;
    }
    consul_lock::flush_releases().await;
    println!(
        "{:>6.2?}  all nodes stopped; leader now: {:?}",
        t0.elapsed(),
        election.leader().await?.map(|l| l.session)
    );
    Ok(())
}
