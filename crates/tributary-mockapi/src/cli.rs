//! The plain arguments of `tributary mock-api` and the function that serves them.
//!
//! The CLI crate owns the clap definitions and copies its values into [`MockCliArgs`]; this
//! module turns them into a [`MockConfig`] (auth and rate limit in their `from_cli` forms) and
//! serves until ctrl-c or SIGTERM.

use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroU64;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::{ErrorRate, MockAuth, MockConfig, RateLimit, ServerErrors};
use crate::dataset::DEFAULT_STEP;
use crate::error::MockError;
use crate::query::parse_time_ns;
use crate::server::serve_forever;

/// What `tributary mock-api` accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockCliArgs {
    /// Port on 127.0.0.1; 0 picks a free one (the URL is printed either way).
    pub port: u16,
    pub records: u64,
    pub seed: u64,
    /// `last_changed` of record 0: RFC 3339 or epoch seconds; default 2024-01-01T00:00:00Z.
    pub start_time: Option<String>,
    /// `last_changed` step; default one second.
    pub step: Option<Duration>,
    /// `none`, `basic:USER:PASS`, `apikey:HEADER:VALUE`, `bearer:TOKEN` or
    /// `oauth2:CLIENT_ID:CLIENT_SECRET:REFRESH_TOKEN:TTL_SECONDS`.
    pub auth: Option<String>,
    /// `PER_SECOND` or `PER_SECOND/BURST`.
    pub rate_limit: Option<String>,
    /// Serve uncompressed even when clients accept gzip (for benchmarks).
    pub no_compression: bool,
    /// Answer every k-th data request with an error (`error_status`, default 503).
    pub error_every: Option<NonZeroU64>,
    /// The status of `error_every`'s answers, 400..=599; a 429 carries `Retry-After: 1`.
    pub error_status: Option<u16>,
    /// Latency added to every data request.
    pub latency: Option<Duration>,
}

/// Serves `args` until ctrl-c or SIGTERM, after printing `listening on http://127.0.0.1:PORT`.
pub async fn run_cli(args: MockCliArgs) -> Result<(), MockError> {
    let (config, addr) = args.into_config()?;
    serve_forever(config, addr).await
}

impl Default for MockCliArgs {
    fn default() -> Self {
        MockCliArgs {
            port: 18_080,
            records: MockConfig::default().records,
            seed: MockConfig::default().seed,
            start_time: None,
            step: None,
            auth: None,
            rate_limit: None,
            no_compression: false,
            error_every: None,
            error_status: None,
            latency: None,
        }
    }
}

impl MockCliArgs {
    /// The config and loopback address these arguments describe; validated.
    pub fn into_config(self) -> Result<(MockConfig, SocketAddr), MockError> {
        let mut config = MockConfig {
            records: self.records,
            seed: self.seed,
            step: self.step.unwrap_or(DEFAULT_STEP),
            compression: !self.no_compression,
            ..MockConfig::default()
        };
        if let Some(text) = &self.start_time {
            config.start_time = parse_start_time(text)?;
        }
        if let Some(text) = &self.auth {
            config.auth = MockAuth::from_cli(text)?;
        }
        if let Some(text) = &self.rate_limit {
            config.rate_limit = Some(RateLimit::from_cli(text)?);
        }
        if let Some(every) = self.error_every {
            let status = self.error_status.unwrap_or(503);
            config.faults.server_errors = Some(ServerErrors {
                rate: ErrorRate::EveryNth(every),
                status,
                retry_after: (status == 429).then_some(Duration::from_secs(1)),
            });
        } else if self.error_status.is_some() {
            return Err(MockError::Config {
                field: "error_status",
                message: "--error-status needs --error-every".to_owned(),
            });
        }
        config.faults.latency = self.latency.unwrap_or_default();
        config.validate()?;
        Ok((config, SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))))
    }
}

fn parse_start_time(text: &str) -> Result<DateTime<Utc>, MockError> {
    let parse_error = || MockError::Parse {
        what: "start time",
        value: text.to_string(),
        expected: "RFC 3339 (2024-01-01T00:00:00Z) or epoch seconds",
    };
    let ns = parse_time_ns("start_time", text).map_err(|_| parse_error())?;
    let secs = i64::try_from(ns.div_euclid(1_000_000_000)).map_err(|_| parse_error())?;
    let nanos = ns.rem_euclid(1_000_000_000) as u32;
    DateTime::from_timestamp(secs, nanos).ok_or_else(parse_error)
}
