//! The Flow Service and Data Prep compatible HTTP API (axum).
//!
//! Invariants: the only crate with HTTP-server wire types; it never returns a secret.
