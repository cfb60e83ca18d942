//! The `tributary` binary: parses the command line, sets up logging, dispatches to the engine,
//! the API and the spec validator, prints error chains and picks the exit code.
//!
//! Exit codes: 0 success, 1 a run failed (or an unexpected error), 2 bad input (a file, a spec,
//! a flag). Commands return `anyhow::Result`; an error carrying [`BadInput`] anywhere in its chain
//! exits 2.

mod cli;
mod logging;
mod time;
mod validate;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, SpecCommand};

/// Marks an error as the user's input being wrong: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Marks a run that ran and failed: exit code 1, the message is already printed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RunFailed(pub String);

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help and version on stdout and usage errors on stderr.
            let _ = err.print();
            return if err.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    logging::init(cli.common.log_format);
    match dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            if err.chain().any(|cause| cause.is::<BadInput>()) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Spec(SpecCommand::Validate { files }) => validate::run(&files),
        other => Err(BadInput(format!(
            "`{}` is not available in this build yet",
            command_name(&other)
        ))
        .into()),
    }
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Serve => "serve",
        Command::Run(_) => "run",
        Command::Backfill(_) => "backfill",
        Command::Bench(_) => "bench",
        Command::Spec(_) => "spec",
        Command::Explore(_) => "explore",
        Command::Demo => "demo",
        Command::Runs(_) => "runs",
        Command::Mapping(_) => "mapping",
        Command::MockApi(_) => "mock-api",
    }
}
