//! `tributary serve`: the daemon (scheduler now, HTTP API in a later issue).

use std::process::ExitCode;

use crate::BadInput;
use crate::cli::CommonArgs;

pub fn run(_common: &CommonArgs) -> anyhow::Result<ExitCode> {
    Err(BadInput("`serve` is not available in this build yet (issue 6: scheduler and daemon)".to_owned()).into())
}
