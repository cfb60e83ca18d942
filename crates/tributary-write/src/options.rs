//! Writer settings: compression, file and row-group rolling thresholds, key-value metadata; and
//! their translation into parquet's `WriterProperties`.

use std::fmt;
use std::num::{NonZeroU64, NonZeroUsize};
use std::str::FromStr;

use parquet::basic::{Compression as ParquetCompression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};

use crate::WriteError;

/// Key of the flow id in each file's key-value metadata.
pub const KV_FLOW_ID: &str = "tributary.flow_id";
/// Key of the run id in each file's key-value metadata.
pub const KV_RUN_ID: &str = "tributary.run_id";
/// Key of the batch id in each file's key-value metadata (added by the writer itself).
pub const KV_BATCH_ID: &str = "tributary.batch_id";
/// Key of the dataset id in each file's key-value metadata (added by the writer itself).
pub const KV_DATASET_ID: &str = "tributary.dataset_id";

/// The codec of Parquet pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Zstandard at `level`. Level 1 is the default: much smaller files than snappy on
    /// JSON-like data while still encoding millions of small records per second.
    Zstd {
        /// 1 (fast) ..= 22 (smallest); negative levels (down to -131072) are faster still.
        level: i32,
    },
    /// Snappy: fastest to decode, larger files.
    Snappy,
    /// No compression.
    None,
}

/// How data parts are written and when they roll over to the next file.
#[derive(Debug, Clone, PartialEq)]
pub struct WriterOptions {
    /// Page codec; default zstd level 1.
    pub compression: Compression,
    /// A part takes no batch that would bring it past this many rows; default 1,000,000.
    /// Parts end on batch boundaries, so only a batch larger than this makes a larger part.
    pub max_rows_per_file: NonZeroU64,
    /// A part takes no batch that would bring it past this size, estimated from its bytes per
    /// row so far; default 256 MiB. The estimate counts the page being filled before compression
    /// and a generous footer, so files end up at or below the limit.
    pub max_bytes_per_file: NonZeroU64,
    /// A row group is flushed once it holds this many rows; default 128 Ki rows.
    pub row_group_rows: NonZeroUsize,
    /// A row group is flushed once its buffered pages reach this size; default 64 MiB. This
    /// bounds the writer's memory when records are large.
    pub row_group_bytes: NonZeroUsize,
    /// Dictionary-encode columns; default on. A column chunk falls back to plain pages once its
    /// dictionary passes 64 KiB, so only columns with few distinct values keep one.
    pub dictionary: bool,
    /// Min/max statistics written; default [`Statistics::Page`].
    pub statistics: Statistics,
    /// Extra key-value metadata in every file, e.g. [`KV_FLOW_ID`] and [`KV_RUN_ID`]. The
    /// dataset and batch ids are added by the writer.
    pub key_value_metadata: Vec<(String, String)>,
    /// Threads that encode the columns of each batch at once; default 1 (the calling thread
    /// only). The file is the same whatever the number (`encode`).
    pub encode_threads: NonZeroUsize,
}

/// Which min/max statistics the files carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Statistics {
    /// None: smallest footer, no pruning for readers.
    None,
    /// Per column chunk (row group).
    Chunk,
    /// Per column chunk and per page, with the page index: readers can skip pages.
    #[default]
    Page,
}

/// When rejected-row files roll over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorWriterOptions {
    /// A part takes no rows that would bring it past this many; default 1,000,000.
    pub max_rows_per_file: NonZeroU64,
    /// A part takes no rows that would bring it past this size; default 256 MiB.
    pub max_bytes_per_file: NonZeroU64,
}

const DEFAULT_MAX_ROWS_PER_FILE: NonZeroU64 = NonZeroU64::new(1_000_000).expect("non-zero literal");
const DEFAULT_MAX_BYTES_PER_FILE: NonZeroU64 =
    NonZeroU64::new(256 * 1024 * 1024).expect("non-zero literal");
const DEFAULT_ROW_GROUP_ROWS: NonZeroUsize =
    NonZeroUsize::new(128 * 1024).expect("non-zero literal");
const DEFAULT_ROW_GROUP_BYTES: NonZeroUsize =
    NonZeroUsize::new(64 * 1024 * 1024).expect("non-zero literal");

/// Dictionary size at which a column chunk falls back to plain pages. Parquet's default is 1 MiB;
/// at 64 KiB low-cardinality columns (status, language, country) keep their dictionary while
/// near-unique ones (ids, emails) give up early instead of hashing tens of thousands of values
/// first. Measured on the Mailchimp-like bench (benches/encode.rs, zstd 1): 1.7x the records per
/// CPU-second of the 1 MiB default and smaller files (4.4 MB against 5.4 MB per 100k records).
const DICTIONARY_PAGE_BYTES: usize = 64 * 1024;

impl Default for Compression {
    fn default() -> Self {
        Compression::Zstd { level: 1 }
    }
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            compression: Compression::default(),
            max_rows_per_file: DEFAULT_MAX_ROWS_PER_FILE,
            max_bytes_per_file: DEFAULT_MAX_BYTES_PER_FILE,
            row_group_rows: DEFAULT_ROW_GROUP_ROWS,
            row_group_bytes: DEFAULT_ROW_GROUP_BYTES,
            dictionary: true,
            statistics: Statistics::default(),
            key_value_metadata: Vec::new(),
            encode_threads: NonZeroUsize::MIN,
        }
    }
}

impl Default for ErrorWriterOptions {
    fn default() -> Self {
        ErrorWriterOptions {
            max_rows_per_file: DEFAULT_MAX_ROWS_PER_FILE,
            max_bytes_per_file: DEFAULT_MAX_BYTES_PER_FILE,
        }
    }
}

impl WriterOptions {
    /// The same options with no row or size limit per file (a rewrite keeps one part one part).
    pub fn without_file_limits(mut self) -> Self {
        self.max_rows_per_file = NonZeroU64::MAX;
        self.max_bytes_per_file = NonZeroU64::MAX;
        self
    }

    /// Adds the flow and run ids to the key-value metadata of every file.
    pub fn with_lineage(mut self, flow_id: &str, run_id: &str) -> Self {
        self.key_value_metadata
            .push((KV_FLOW_ID.to_owned(), flow_id.to_owned()));
        self.key_value_metadata
            .push((KV_RUN_ID.to_owned(), run_id.to_owned()));
        self
    }

    /// The parquet properties for one batch's files. Fails on a zstd level out of range.
    pub(crate) fn writer_properties(
        &self,
        dataset_id: &str,
        batch_id: &str,
    ) -> Result<WriterProperties, WriteError> {
        let mut key_value_metadata: Vec<KeyValue> = self
            .key_value_metadata
            .iter()
            .map(|(key, value)| KeyValue::new(key.clone(), value.clone()))
            .collect();
        key_value_metadata.push(KeyValue::new(
            KV_DATASET_ID.to_owned(),
            dataset_id.to_owned(),
        ));
        key_value_metadata.push(KeyValue::new(KV_BATCH_ID.to_owned(), batch_id.to_owned()));

        let props = WriterProperties::builder()
            .set_compression(self.compression.to_parquet()?)
            // Parquet 1.0 data pages are what every reader handles; v2 pages buy little here.
            .set_writer_version(WriterVersion::PARQUET_1_0)
            .set_dictionary_enabled(self.dictionary)
            .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES)
            .set_statistics_enabled(match self.statistics {
                Statistics::None => EnabledStatistics::None,
                Statistics::Chunk => EnabledStatistics::Chunk,
                Statistics::Page => EnabledStatistics::Page,
            })
            .set_max_row_group_row_count(Some(self.row_group_rows.get()))
            .set_max_row_group_bytes(Some(self.row_group_bytes.get()))
            // Spec-compliant list and map field names ("element", "key_value"), which Spark and
            // older Hive readers expect; Date64 becomes DATE.
            .set_coerce_types(true)
            .set_created_by(concat!("tributary ", env!("CARGO_PKG_VERSION")).to_owned())
            .set_key_value_metadata(Some(key_value_metadata))
            .build();
        Ok(props)
    }
}

impl Compression {
    fn to_parquet(self) -> Result<ParquetCompression, WriteError> {
        match self {
            Compression::Zstd { level } => {
                let level = ZstdLevel::try_new(level).map_err(|_| WriteError::InvalidOption {
                    option: "compression",
                    value: format!("zstd({level})"),
                    expected: "a zstd level from -131072 to 22",
                })?;
                Ok(ParquetCompression::ZSTD(level))
            }
            Compression::Snappy => Ok(ParquetCompression::SNAPPY),
            Compression::None => Ok(ParquetCompression::UNCOMPRESSED),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::Zstd { level } => write!(f, "zstd({level})"),
            Compression::Snappy => f.write_str("snappy"),
            Compression::None => f.write_str("none"),
        }
    }
}

/// Parses `zstd`, `zstd(3)`, `zstd:3`, `snappy`, `none` or `uncompressed` (any case), the forms
/// a config file or command line uses.
impl FromStr for Compression {
    type Err = WriteError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || WriteError::InvalidOption {
            option: "compression",
            value: s.chars().take(64).collect(),
            expected: "zstd, zstd(LEVEL) with LEVEL -131072..=22, snappy or none",
        };
        let lower = s.trim().to_ascii_lowercase();
        let compression = match lower.as_str() {
            "zstd" => Compression::default(),
            "snappy" => Compression::Snappy,
            "none" | "uncompressed" => Compression::None,
            other => {
                let level = other
                    .strip_prefix("zstd(")
                    .and_then(|rest| rest.strip_suffix(')'))
                    .or_else(|| other.strip_prefix("zstd:"))
                    .ok_or_else(invalid)?;
                let level: i32 = level.trim().parse().map_err(|_| invalid())?;
                ZstdLevel::try_new(level).map_err(|_| invalid())?;
                Compression::Zstd { level }
            }
        };
        Ok(compression)
    }
}
