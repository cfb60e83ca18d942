//! `Secret`: a credential value (password, token, client secret, api key) that never prints.
//!
//! `Debug` and `Display` show `***`; the only way to the value is [`Secret::expose`], which the
//! request builder calls when it writes a header, and the error redactor calls to scrub messages.

use std::fmt;

/// A credential value whose `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The clear value, for the one place that must send it (a header, a form field).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the value is empty (an empty secret is treated as absent).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}
