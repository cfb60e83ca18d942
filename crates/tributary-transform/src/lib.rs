//! The transform stage: records to Arrow `RecordBatch`es, Data Prep mapping sets, the expression
//! language and its function library, target schemas and row errors.
//!
//! Invariants: no IO, no async. Knows neither HTTP nor sled.

pub mod dataset;
pub mod decode;
pub mod expr;
pub mod functions;
pub mod mapping;
pub mod schema;
