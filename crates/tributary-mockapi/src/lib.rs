//! A configurable third-party REST API on loopback: every pagination style, every auth type,
//! rate limits (429 + Retry-After) and injected faults, over a deterministic seeded dataset.
//!
//! Used by tests, `tributary demo` and `tributary bench`. Invariants: binds loopback only; the
//! same seed and count always serve the same records.
