//! Run state: a typed API over sled for entities, runs, checkpoints and batches.
//!
//! Invariants: the only crate that names sled. Keys are big-endian; values go through one
//! versioned codec; secrets are encrypted at rest.
