//! Secrets: which auth params are secret, and a redacting view for Debug output.
//!
//! A param is secret when its authSpec schema says `format: "password"`, when it is one of the
//! well-known secret names (`password`, `accessToken`, `refreshToken`, `clientSecret`), when it
//! is an API key property, or when its name looks like one (contains `secret`, `password`,
//! `token` or `apikey`, any case). Erring towards redaction is cheap; a leaked key is not.

use std::fmt;

use serde_json::{Map, Value};

use crate::model::{AuthKind, AuthSpec};

/// Auth param names that are always secret.
pub const WELL_KNOWN_SECRET_FIELDS: [&str; 4] =
    ["password", "accessToken", "refreshToken", "clientSecret"];

/// Secret properties of an authSpec (what `AuthSpec::secret_fields` holds).
pub fn secret_fields(auth_spec: &AuthSpec) -> Vec<String> {
    let mut fields = secret_fields_of_schema(&auth_spec.params_schema);
    if let AuthKind::KeyBased { keys } = &auth_spec.kind {
        for key in keys {
            if !fields.contains(&key.property) {
                fields.push(key.property.clone());
            }
        }
    }
    fields
}

/// Secret properties declared by an auth params schema, plus the well-known names.
pub fn secret_fields_of_schema(schema: &Value) -> Vec<String> {
    let mut fields: Vec<String> = Vec::new();
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            let is_password = property.get("format").and_then(Value::as_str) == Some("password");
            if is_password || looks_secret(name) {
                fields.push(name.clone());
            }
        }
    }
    for name in WELL_KNOWN_SECRET_FIELDS {
        if !fields.iter().any(|field| field == name) {
            fields.push(name.to_owned());
        }
    }
    fields
}

/// True for names that look like they hold a secret.
pub fn looks_secret(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        "secret", "password", "token", "apikey", "api_key", "authkey",
    ]
    .iter()
    .any(|needle| lower.contains(needle))
}

/// Debug view of a params map with secret values replaced by `"***"`.
pub struct Redacted<'a> {
    params: &'a Map<String, Value>,
    secret_fields: &'a [String],
}

impl<'a> Redacted<'a> {
    pub fn new(params: &'a Map<String, Value>, secret_fields: &'a [String]) -> Redacted<'a> {
        Redacted {
            params,
            secret_fields,
        }
    }
}

impl fmt::Debug for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in self.params {
            let is_secret =
                self.secret_fields.iter().any(|field| field == name) || looks_secret(name);
            if is_secret {
                map.entry(name, &"***");
            } else if let Value::Object(inner) = value {
                // Nested objects (e.g. requestParameterOverride) are redacted the same way.
                map.entry(
                    name,
                    &Redacted {
                        params: inner,
                        secret_fields: self.secret_fields,
                    },
                );
            } else {
                map.entry(name, value);
            }
        }
        map.finish()
    }
}
