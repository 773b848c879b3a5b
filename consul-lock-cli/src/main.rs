//! `consul-lock`: the command line for the people on call. Who holds a lock, since when, on
//! which host (`list`, `show`); run a command under a lock (`run`); wait for a lock to be free
//! (`wait`); release a stuck one (`release --force`); who leads an election (`leader`), run a
//! command while leading one (`elect`). `consul-lock --help` documents every
//! option and the exit statuses.

mod cli;
mod commands;
mod election;
mod exit;
mod queue;
mod render;
mod run;
mod state;
mod template;

use std::process::ExitCode;

use clap::Parser as _;
use consul_lock_runtime::Client;

use crate::cli::{Cli, Command};
use crate::exit::{Failure, Outcome, CONSUL};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let status = match execute(&cli) {
        Ok(status) => status,
        Err(failure) => {
            eprintln!("{failure}");
            failure.status
        }
    };
    ExitCode::from(status)
}

fn execute(cli: &Cli) -> Outcome {
    let client = Client::from_env().map_err(Failure::from)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(CONSUL, format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        match &cli.command {
            Command::List(args) => commands::list(&client, args).await,
            Command::Show(args) => commands::show(&client, args).await,
            Command::Run(args) => run::run(&client, args).await,
            Command::Release(args) => commands::release(&client, args).await,
            Command::Wait(args) => commands::wait(&client, args).await,
            Command::Leader(args) => election::leader(&client, args).await,
            Command::Elect(args) => election::elect(&client, args).await,
        }
    })
}
