//! The spec model: connection specs, flow specs, connections, mapping sets, flows and flow bundles.
//!
//! Parse, then validate. `raw` holds serde types that accept every documented variant of the
//! Adobe Self-Serve Sources specs; `validate()` turns them into typed specs and reports every
//! problem at once, each with a JSON-pointer path. Also templating (`${x}`, `{x}`, `{{x}}`,
//! `${env:X}`) and the Java / .NET date formats of `scheduleParams`.
//!
//! Invariants: no IO, no async. Code downstream never re-checks a validated spec.
