//! The writer: Arrow `RecordBatch`es to Parquet files in a dataset, through a staging folder,
//! fsync and an atomic rename; file and row-group rolling.
//!
//! Invariants: a file is visible in the dataset folder only once it is complete and durable.
//! Knows neither HTTP nor sled.
