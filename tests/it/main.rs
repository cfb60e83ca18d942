//! The one integration-test binary: one module per capability. Tests run the real parts: the
//! `tributary` binary, the mock API on 127.0.0.1:0, sled in temp dirs, Postgres (from scripts/test),
//! Parquet read back.

mod api;
mod api_e2e;
mod backfill;
mod cluster;
mod concurrency;
mod configs;
mod crash;
mod daemon;
mod datasets;
mod delta;
mod fetch;
mod hostile;
mod mapping;
mod objstore;
mod ops;
mod postgres;
mod run;
mod safety;
mod tidy;
mod workers;
