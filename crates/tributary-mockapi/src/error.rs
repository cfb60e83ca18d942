//! `MockError`, the one error type of the crate.
//!
//! Errors of the library API only: a bad [`crate::MockConfig`] (the caller's fault), a bind
//! failure and a server failure (the environment's). Problems with a client's request are not
//! errors of the library: they become HTTP answers (400, 401, 404, 429) with a JSON body.

use std::net::SocketAddr;

/// Errors of configuring, starting and running the mock API.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// A config field holds a value the server cannot serve.
    #[error("invalid mock api config: {field}: {message}")]
    Config {
        field: &'static str,
        message: String,
    },
    /// The listener could not be bound.
    #[error("cannot bind the mock api to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The server loop failed after it started.
    #[error("mock api server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// A command-line value (auth, rate limit) that does not parse.
    #[error("invalid {what} {value:?}: expected {expected}")]
    Parse {
        what: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl MockError {
    /// True when trying again can help: a port in use may be free later, a server failure is
    /// an IO problem. A bad config or argument stays bad.
    pub fn is_retryable(&self) -> bool {
        match self {
            MockError::Config { .. } | MockError::Parse { .. } => false,
            MockError::Bind { source, .. } => source.kind() == std::io::ErrorKind::AddrInUse,
            MockError::Serve(_) => true,
        }
    }
}
