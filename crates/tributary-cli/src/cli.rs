//! The command line, as clap types. DESIGN.md fixes the commands and their flags.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// tributary: a batch ingestion engine for Adobe Self-Serve Sources specs.
#[derive(Debug, Parser)]
#[command(name = "tributary", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts, before or after the subcommand.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Daemon configuration file (TOML); see configs/tributary.toml.
    #[arg(long, global = true, value_name = "FILE", env = "TRIBUTARY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where datasets are written (overrides `data_dir`).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Where run state lives (overrides `state_dir`).
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: HTTP API and scheduler; loads flow bundles from `flows_dir`.
    Serve,
    /// Run one flow once, now, in the foreground.
    ///
    /// Exit status: 0 success, 1 the run failed, 2 bad input.
    Run(RunArgs),
    /// Ingest history in windows; re-invoking resumes where it stopped.
    Backfill(BackfillArgs),
    /// Benchmark the full pipeline against the built-in mock API on loopback.
    Bench(BenchArgs),
    /// Work with specs.
    #[command(subcommand)]
    Spec(SpecCommand),
    /// Preview the first page of a flow's source and the inferred record schema.
    Explore(ExploreArgs),
    /// Start the mock API, run the example flow against it, print where the Parquet is.
    Demo,
    /// List flows with state, schedule, next run, last status and lag; enable or disable one.
    ///
    /// Through the running daemon's API when one holds the state directory.
    Flows(FlowsArgs),
    /// List recent runs recorded in state.
    ///
    /// Through the running daemon's API when one holds the state directory.
    Runs(RunsArgs),
    /// Work with Data Prep mapping sets.
    #[command(subcommand)]
    Mapping(MappingCommand),
    /// Datasets in state: their batches, rows, bytes and schema.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Work with the run state itself (copy it to another backend).
    #[command(subcommand)]
    State(StateCommand),
    /// Serve the mock third-party API (for demos, tests and benchmarks).
    #[command(hide = true)]
    MockApi(MockApiArgs),
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Copy a whole state into an empty one, e.g. `--from sled ./state --to postgres URL`.
    ///
    /// Every table is copied as stored: secrets and checkpoint positions stay sealed with the
    /// source's secret key (from `[state] secret_key`, TRIBUTARY_SECRET_KEY, or the source
    /// directory's secret.key), so the target must be opened with that same key afterwards.
    /// The target must be empty: a copy never merges two states (an interrupted copy leaves it
    /// empty, since all rows land in one transaction; run it again). Stop the daemon that uses
    /// the source first. Prints the rows copied per table.
    Migrate(MigrateArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The source state: `sled DIR` or `postgres URL` (URL may be `${env:NAME}`, which keeps a
    /// password out of the process list).
    #[arg(long, num_args = 2, value_names = ["BACKEND", "LOCATION"], required = true)]
    pub from: Vec<String>,
    /// The target state, empty or new: `postgres URL` or `sled DIR`.
    #[arg(long, num_args = 2, value_names = ["BACKEND", "LOCATION"], required = true)]
    pub to: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Flow bundle file (JSON).
    pub bundle: PathBuf,
    /// Start of the window (RFC 3339 or epoch seconds).
    #[arg(long, value_name = "T", value_parser = crate::time::parse_instant)]
    pub window_start: Option<crate::time::Instant>,
    /// End of the window, exclusive (RFC 3339 or epoch seconds).
    #[arg(long, value_name = "T", value_parser = crate::time::parse_instant)]
    pub window_end: Option<crate::time::Instant>,
    /// Print the run object as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Flow bundle file (JSON).
    pub bundle: PathBuf,
    /// Start of the range (RFC 3339 or epoch seconds).
    #[arg(long, value_name = "T", value_parser = crate::time::parse_instant)]
    pub from: crate::time::Instant,
    /// End of the range, exclusive (RFC 3339 or epoch seconds).
    #[arg(long, value_name = "T", value_parser = crate::time::parse_instant)]
    pub to: crate::time::Instant,
    /// Window length (humantime: 1h, 1d, 30m).
    #[arg(long, value_name = "DURATION", default_value = "1d", value_parser = humantime::parse_duration)]
    pub step: std::time::Duration,
    /// Windows run at the same time.
    #[arg(long, value_name = "N", default_value_t = std::num::NonZeroU32::MIN)]
    pub parallel: std::num::NonZeroU32,
    /// Print the runs as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchPagination {
    Offset,
    Page,
    Cursor,
    Pointer,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Records served by the mock API.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: u64,
    /// Pagination style of the benchmarked source.
    #[arg(long, value_enum, default_value_t = BenchPagination::Offset)]
    pub pagination: BenchPagination,
    /// Records per page.
    #[arg(long, default_value_t = std::num::NonZeroU32::new(1000).expect("1000 is not zero"))]
    pub page_size: std::num::NonZeroU32,
    /// Apply the example mapping set (configs/mappings/mailchimp-members.json).
    #[arg(long)]
    pub mapped: bool,
    /// Print the figures as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Latency the mock API adds to every data request (humantime: `200ms`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub latency: Option<std::time::Duration>,
    /// The mock API's rate limit, `PER_SECOND` or `PER_SECOND/BURST` (answers 429 past it).
    #[arg(long, value_name = "RATE")]
    pub rate_limit: Option<String>,
    /// Pages in flight: `auto` (adaptive, the default) or the flow's `maxConcurrentRequests`.
    #[arg(long, value_name = "auto|N", default_value = "auto", value_parser = parse_concurrency)]
    pub concurrency: BenchConcurrency,
    /// Cores the run may use: the async runtime's worker threads (fetching), and the decode
    /// workers and encode threads for that many cores (one decode worker on two cores; N - 2
    /// of each above); default 2.
    #[arg(long, value_name = "N", default_value_t = std::num::NonZeroUsize::new(2).expect("2 is not zero"))]
    pub threads: std::num::NonZeroUsize,
}

/// `tributary bench --concurrency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchConcurrency {
    /// No `maxConcurrentRequests`: the fetcher adapts.
    Auto,
    /// `maxConcurrentRequests: N`.
    Fixed(std::num::NonZeroU32),
}

fn parse_concurrency(text: &str) -> Result<BenchConcurrency, String> {
    if text.eq_ignore_ascii_case("auto") {
        return Ok(BenchConcurrency::Auto);
    }
    text.parse::<std::num::NonZeroU32>()
        .map(BenchConcurrency::Fixed)
        .map_err(|_| format!("expected `auto` or a whole number >= 1, found {text:?}"))
}

#[derive(Debug, Subcommand)]
pub enum SpecCommand {
    /// Validate connection specs, flow specs, connections, mapping sets, flows and flow bundles.
    ///
    /// Prints one line per problem as `FILE: /json/pointer: message`; exit status 2 on any error.
    Validate {
        /// Files to validate; the kind of each is worked out from its content.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct ExploreArgs {
    /// Flow bundle file (JSON).
    pub bundle: PathBuf,
    /// Print the explore response as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct FlowsArgs {
    #[command(subcommand)]
    pub action: Option<FlowsAction>,
    /// Print the flows as a JSON array on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum FlowsAction {
    /// Enable a flow (its schedule runs again).
    Enable {
        /// Flow id or name.
        flow: String,
    },
    /// Disable a flow (no scheduled run starts until it is enabled).
    Disable {
        /// Flow id or name.
        flow: String,
    },
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// Only runs of this flow (id or bundle name).
    #[arg(long, value_name = "FLOW")]
    pub flow: Option<String>,
    /// How many runs to show.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Print the run objects as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum MappingCommand {
    /// Map sample records and print the mapped rows, the errors per mapping and whether a run
    /// would reject each record.
    Preview {
        /// Mapping set (JSON, either dialect).
        mapping: PathBuf,
        /// Records: a JSON array of objects, or one object per line.
        #[arg(long, value_name = "RECORDS.json")]
        input: PathBuf,
        /// Target schema (a JSON schema, as `targetConnection.data.schema.jsonSchema`): types
        /// and `required` fields as a run with it applies them.
        #[arg(long, value_name = "SCHEMA.json")]
        schema: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DatasetCommand {
    /// List datasets with their published batches, rows and bytes.
    Ls {
        /// Print the list as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Print a dataset's schema and when each column appeared.
    Schema {
        /// The dataset id (`dataSetId`).
        id: String,
        /// Print the schema as JSON (with the Arrow schema) on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct MockApiArgs {
    /// Port on 127.0.0.1 (0 picks a free one; the URL is printed on stdout).
    #[arg(long, default_value_t = 18080)]
    pub port: u16,
    /// Records in the dataset.
    #[arg(long, default_value_t = 10_000)]
    pub records: u64,
    /// Seed of the generated dataset.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// `last_changed` of record 0 (RFC 3339 or epoch seconds); default 2024-01-01T00:00:00Z.
    #[arg(long, value_name = "T")]
    pub start_time: Option<String>,
    /// `last_changed` step between records (humantime); default 1s.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub step: Option<std::time::Duration>,
    /// `none`, `basic:USER:PASS`, `apikey:HEADER:VALUE`, `bearer:TOKEN` or
    /// `oauth2:CLIENT_ID:CLIENT_SECRET:REFRESH_TOKEN:TTL_SECONDS`.
    #[arg(long)]
    pub auth: Option<String>,
    /// `PER_SECOND` or `PER_SECOND/BURST`.
    #[arg(long, value_name = "RATE")]
    pub rate_limit: Option<String>,
    /// Serve uncompressed even when clients accept gzip.
    #[arg(long)]
    pub no_compression: bool,
    /// Answer every k-th data request with an error (503 unless `--error-status`).
    #[arg(long, value_name = "K")]
    pub error_every: Option<std::num::NonZeroU64>,
    /// The status of `--error-every`'s answers (400..=599); a 429 carries `Retry-After: 1`.
    #[arg(long, value_name = "STATUS")]
    pub error_status: Option<u16>,
    /// Latency added to every data request (humantime).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub latency: Option<std::time::Duration>,
}
