//! `tributary runs`: recent runs recorded in state.

use std::process::ExitCode;

use crate::BadInput;
use crate::cli::{CommonArgs, RunsArgs};

pub fn run(_common: &CommonArgs, _args: &RunsArgs) -> anyhow::Result<ExitCode> {
    Err(BadInput("`runs` is not available in this build yet (issue 6: run history)".to_owned()).into())
}
