//! [`PostgresUrl`]: a connection string that may carry a password, checked at parse time and
//! never shown in clear.
//!
//! Invariants: `Debug` and `Display` show the masked form; every message this crate writes
//! about a Postgres state names it by [`PostgresUrl::masked`]. A URL asking for TLS
//! (`sslmode=require`) is refused at parse time: this build connects without TLS, and it never
//! does so silently when TLS was asked for.

use std::fmt;
use std::str::FromStr as _;

use crate::StateError;

/// A Postgres connection string, URL (`postgres://user:password@host:port/db?params`) or
/// key/value (`host=... user=... password=...`) form, as libpq and tokio-postgres take it.
#[derive(Clone)]
pub struct PostgresUrl {
    text: String,
    /// Boxed: a `StateLocation` stays small.
    config: Box<tokio_postgres::Config>,
}

impl PostgresUrl {
    /// Parses and checks a connection string; errors never contain the password.
    pub fn parse(text: &str) -> Result<PostgresUrl, StateError> {
        let masked = mask(text);
        let invalid = |reason: String| StateError::InvalidInput {
            what: format!("Postgres URL {masked}"),
            reason,
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(invalid("the URL is empty".to_owned()));
        }
        let config = tokio_postgres::Config::from_str(text).map_err(|err| {
            // tokio-postgres names the option, never its value.
            invalid(err.to_string())
        })?;
        match config.get_ssl_mode() {
            tokio_postgres::config::SslMode::Disable | tokio_postgres::config::SslMode::Prefer => {}
            _ => {
                return Err(invalid(
                    "sslmode=require is not supported: this build connects to Postgres without TLS \
                     (use sslmode=disable on a trusted network, or a TLS-terminating proxy on the host)"
                        .to_owned(),
                ));
            }
        }
        if config.get_hosts().is_empty() {
            return Err(invalid("the URL names no host".to_owned()));
        }
        let mut config = config;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        Ok(PostgresUrl {
            text: text.to_owned(),
            config: Box::new(config),
        })
    }

    /// The URL with its password replaced by `***`.
    pub fn masked(&self) -> String {
        mask(&self.text)
    }

    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PostgresUrl").field(&self.masked()).finish()
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Replaces the password of a connection string (in the userinfo of a URL, and every
/// `password=` parameter of a URL query or a key/value string) by `***`.
pub(crate) fn mask(text: &str) -> String {
    let mut out = text.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let auth_start = scheme_end + 3;
        let auth_end = out[auth_start..]
            .find(['/', '?'])
            .map_or(out.len(), |at| auth_start + at);
        if let Some(at) = out[auth_start..auth_end].rfind('@') {
            let userinfo = auth_start..auth_start + at;
            if let Some(colon) = out[userinfo.clone()].find(':') {
                out.replace_range(userinfo.start + colon + 1..userinfo.end, "***");
            }
        }
    }
    mask_password_params(&out)
}

/// Masks the value of every `password=` parameter (`&`-, `?`- or space-separated).
fn mask_password_params(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    loop {
        let lower = rest.to_ascii_lowercase();
        let Some(found) = lower.find("password") else {
            out.push_str(rest);
            return out;
        };
        let starts_param = found == 0 || matches!(lower.as_bytes()[found - 1], b'?' | b'&' | b' ');
        let after_name = &rest[found + "password".len()..];
        let value_start = after_name.trim_start();
        if !starts_param || !value_start.starts_with('=') {
            out.push_str(&rest[..found + "password".len()]);
            rest = after_name;
            continue;
        }
        let value = value_start[1..].trim_start();
        let value_offset = rest.len() - value.len();
        out.push_str(&rest[..value_offset]);
        out.push_str("***");
        let value_len = if let Some(quoted) = value.strip_prefix('\'') {
            // A quoted key/value: up to the closing quote that is not escaped.
            let mut end = quoted.len();
            let mut escaped = false;
            for (idx, ch) in quoted.char_indices() {
                match ch {
                    '\\' if !escaped => escaped = true,
                    '\'' if !escaped => {
                        end = idx + 1;
                        break;
                    }
                    _ => escaped = false,
                }
            }
            1 + end
        } else {
            value.find(['&', ' ']).unwrap_or(value.len())
        };
        rest = &value[value_len..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_in_every_form() {
        assert_eq!(
            mask("postgres://app:s3cret@db:5432/state"),
            "postgres://app:***@db:5432/state"
        );
        assert_eq!(
            mask("postgres://app:p@ss@db/state?sslmode=disable"),
            "postgres://app:***@db/state?sslmode=disable"
        );
        assert_eq!(mask("postgres://app@db/state"), "postgres://app@db/state");
        assert_eq!(
            mask("postgres://db/state?user=app&password=s3cret&sslmode=disable"),
            "postgres://db/state?user=app&password=***&sslmode=disable"
        );
        assert_eq!(
            mask("host=db user=app password=s3cret dbname=state"),
            "host=db user=app password=*** dbname=state"
        );
        assert_eq!(
            mask("host=db password = 'a b\\' c' dbname=x"),
            "host=db password = *** dbname=x"
        );
        assert_eq!(mask("host=db passwordless=1"), "host=db passwordless=1");
    }

    #[test]
    fn bad_urls_are_refused_without_showing_the_password() {
        let err = PostgresUrl::parse("postgres://app:s3cret@db/state?sslmode=require").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("sslmode=require") && text.contains("app:***@db"),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "{text}");
        let err = PostgresUrl::parse("postgres://app:s3cret@db/state?bogus=1").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("bogus") && !text.contains("s3cret"), "{text}");
        assert!(PostgresUrl::parse("  ").is_err());

        let url = PostgresUrl::parse("postgres://app:s3cret@db/state").unwrap();
        assert_eq!(
            format!("{url:?}"),
            "PostgresUrl(\"postgres://app:***@db/state\")"
        );
        assert_eq!(url.to_string(), "postgres://app:***@db/state");
    }
}
