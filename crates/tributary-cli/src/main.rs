//! The `tributary` binary: parses the command line, sets up logging, dispatches to the engine,
//! the API and the spec validator, prints error chains and picks the exit code.
//!
//! Exit codes: 0 success, 1 a run failed (or an unexpected error), 2 bad input (a file, a spec,
//! a flag). Commands return `anyhow::Result`; an error carrying [`BadInput`] anywhere in its chain
//! exits 2.

mod api_client;
mod backfill;
mod bench;
mod cli;
mod context;
mod dataset;
mod demo;
mod explore;
mod flows;
mod flows_dir;
mod logging;
mod mapping;
mod run;
mod runs;
mod serve;
mod state;
mod time;
mod validate;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, MappingCommand, SpecCommand};

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
            return if err.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    logging::init(&cli.common);
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
    let common = &cli.common;
    match &cli.command {
        Command::Serve => serve::run(common),
        Command::Run(args) => run::run(common, args),
        Command::Backfill(args) => backfill::run(common, args),
        Command::Bench(args) => bench::run(common, args),
        Command::Spec(SpecCommand::Validate { files }) => validate::run(files),
        Command::Explore(args) => explore::run(common, args),
        Command::Demo => demo::run(common),
        Command::Flows(args) => flows::run(common, args),
        Command::Runs(args) => runs::run(common, args),
        Command::Mapping(MappingCommand::Preview {
            mapping,
            input,
            schema,
        }) => mapping::preview(mapping, input, schema.as_deref()),
        Command::Dataset(command) => dataset::run(common, command),
        Command::State(cli::StateCommand::Migrate(args)) => state::migrate(common, args),
        Command::MockApi(args) => mock_api(args),
    }
}

/// `tributary mock-api`: serves the mock third-party API until ctrl-c or SIGTERM.
fn mock_api(args: &cli::MockApiArgs) -> anyhow::Result<ExitCode> {
    let mock_args = tributary_mockapi::MockCliArgs {
        port: args.port,
        records: args.records,
        seed: args.seed,
        start_time: args.start_time.clone(),
        step: args.step,
        auth: args.auth.clone(),
        rate_limit: args.rate_limit.clone(),
        no_compression: args.no_compression,
        error_every: args.error_every,
        error_status: args.error_status,
        latency: args.latency,
    };
    run::runtime()?
        .block_on(tributary_mockapi::run_cli(mock_args))
        .map_err(|err| BadInput(err.to_string()))?;
    Ok(ExitCode::SUCCESS)
}
