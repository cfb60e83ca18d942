//! `tributary state migrate`: copies a whole state from one backend to another.
//!
//! Invariants: locations given on the command line may be `${env:NAME}` (resolved like config
//! values); a Postgres URL is only ever printed masked; the source is opened with the config's
//! secret key options and the target with the source's key (see `tributary_state::copy_state`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use tributary_state::{PostgresUrl, StateLocation};

use crate::BadInput;
use crate::cli::{CommonArgs, MigrateArgs};
use crate::context::{load_config, resolve_env, state_options};

pub fn migrate(common: &CommonArgs, args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    let config = load_config(common)?;
    let from = location("--from", &args.from)?;
    let to = location("--to", &args.to)?;
    if same_location(&from, &to) {
        return Err(BadInput(format!("--from and --to name the same state ({from})")).into());
    }
    let options = state_options(&config)?;
    let report = tributary_state::copy_state(&from, &to, options)
        .with_context(|| format!("copying {from} to {to}"))?;
    println!("copied {from} to {to}");
    let width = report
        .tables
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0);
    let mut total = 0;
    for (name, rows) in &report.tables {
        println!("  {name:<width$}  {rows:>9}");
        total += rows;
    }
    println!("  {:<width$}  {total:>9}", "total");
    println!(
        "secrets stay sealed with the source's secret key (from {}); open the target with that same key \
         ([state] secret_key or TRIBUTARY_SECRET_KEY)",
        report.key_origin
    );
    Ok(ExitCode::SUCCESS)
}

/// `BACKEND LOCATION` as given to `--from` or `--to`.
fn location(flag: &str, values: &[String]) -> anyhow::Result<StateLocation> {
    let [backend, value] = values else {
        return Err(BadInput(format!("{flag}: expected BACKEND LOCATION")).into());
    };
    let value = resolve_env(value.trim(), flag)?;
    match backend.as_str() {
        "sled" => Ok(StateLocation::Sled(PathBuf::from(value))),
        "postgres" => {
            let url =
                PostgresUrl::parse(&value).map_err(|err| BadInput(format!("{flag}: {err}")))?;
            Ok(StateLocation::Postgres(url))
        }
        other => Err(BadInput(format!(
            "{flag}: unknown backend {other:?}; expected \"sled\" or \"postgres\""
        ))
        .into()),
    }
}

fn same_location(a: &StateLocation, b: &StateLocation) -> bool {
    match (a, b) {
        (StateLocation::Sled(a), StateLocation::Sled(b)) => {
            a == b
                || a.canonicalize()
                    .ok()
                    .is_some_and(|a| b.canonicalize().ok() == Some(a))
        }
        (StateLocation::Postgres(a), StateLocation::Postgres(b)) => a.masked() == b.masked(),
        _ => false,
    }
}
