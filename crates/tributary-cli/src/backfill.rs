//! `tributary backfill BUNDLE --from T --to T`: historical windows, resumable.

use std::process::ExitCode;

use crate::BadInput;
use crate::cli::{BackfillArgs, CommonArgs};

pub fn run(_common: &CommonArgs, _args: &BackfillArgs) -> anyhow::Result<ExitCode> {
    Err(BadInput("`backfill` is not available in this build yet (issue 6: backfill)".to_owned()).into())
}
