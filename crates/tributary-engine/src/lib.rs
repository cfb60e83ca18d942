//! The engine: runs a flow (fetch, transform, write, commit), the scheduler, the backfill planner
//! and the daemon loop.
//!
//! Invariants: the only crate that knows there are stages. Async is for IO only: decoding and
//! encoding run on blocking threads fed by bounded channels.

pub mod backfill;
pub mod config;
pub mod coverage;
pub mod daemon;
pub mod run;
pub mod schedule;
pub mod telemetry;

pub use config::DaemonConfig;
