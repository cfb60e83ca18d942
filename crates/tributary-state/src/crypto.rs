//! Secrets at rest: the [`SecretKey`], AES-256-GCM sealing, and JSON pointers naming secrets.
//!
//! A sealed value is `{"$enc": "base64(nonce || ciphertext)"}` with a fresh random 96-bit nonce
//! per value. The associated data binds each ciphertext to where it is stored (entity kind, id
//! and pointer), so a ciphertext copied to another record fails to decrypt. Nothing here prints,
//! logs or formats a key or a clear-text secret.

use std::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde_json::Value;

use crate::StateError;

/// A 256-bit key for encrypting secrets at rest. Its `Debug` output never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; 32]);

/// An RFC 6901 JSON pointer (`/auth/params/password`) naming a secret inside a document.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct JsonPointer(String);

/// The key under which a sealed value is stored inside a JSON document.
pub(crate) const ENCRYPTED_FIELD: &str = "$enc";

/// What redacted documents show in place of a secret.
pub const REDACTED: &str = "***";

impl SecretKey {
    /// The environment variable holding a base64 key.
    pub const ENV_VAR: &'static str = "TRIBUTARY_SECRET_KEY";

    pub fn from_bytes(bytes: [u8; 32]) -> SecretKey {
        SecretKey(bytes)
    }

    /// Parses a base64 key (standard or URL-safe alphabet, padded or not) of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<SecretKey, StateError> {
        parse_key(text, "the given value")
    }

    /// A new random key from the operating system's generator.
    pub fn generate() -> SecretKey {
        SecretKey(rand::random::<[u8; 32]>())
    }

    /// The key in standard base64, for writing the key file.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

impl JsonPointer {
    /// Parses a pointer: it must start with `/` and every `~` must be `~0` or `~1`. The whole
    /// document (the empty pointer) cannot be a secret.
    pub fn parse(text: &str) -> Result<JsonPointer, StateError> {
        let invalid = |reason: &str| StateError::InvalidPointer {
            pointer: text.to_owned(),
            reason: reason.to_owned(),
        };
        if text.is_empty() {
            return Err(invalid(
                "the whole document cannot be a secret; expected a pointer such as /auth/params/password",
            ));
        }
        if !text.starts_with('/') {
            return Err(invalid("expected a leading '/'"));
        }
        let mut chars = text.chars();
        while let Some(ch) = chars.next() {
            if ch == '~' && !matches!(chars.next(), Some('0' | '1')) {
                return Err(invalid("'~' must be followed by 0 or 1"));
            }
        }
        Ok(JsonPointer(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JsonPointer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for JsonPointer {
    type Error = StateError;

    fn try_from(text: String) -> Result<JsonPointer, StateError> {
        JsonPointer::parse(&text)
    }
}

impl From<JsonPointer> for String {
    fn from(pointer: JsonPointer) -> String {
        pointer.0
    }
}

pub(crate) fn parse_key(text: &str, origin: &str) -> Result<SecretKey, StateError> {
    let trimmed = text.trim();
    let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(trimmed).ok());
    // The reasons name lengths and alphabets only, never the text: it is the key.
    let Some(bytes) = decoded else {
        return Err(StateError::InvalidSecretKey {
            origin: origin.to_owned(),
            reason: "expected base64 of 32 bytes, found text that is not base64".to_owned(),
        });
    };
    let Ok(bytes) = <[u8; 32]>::try_from(bytes.as_slice()) else {
        return Err(StateError::InvalidSecretKey {
            origin: origin.to_owned(),
            reason: format!("expected base64 of 32 bytes, found {} bytes", bytes.len()),
        });
    };
    Ok(SecretKey(bytes))
}

/// AES-256-GCM with the store's key.
pub(crate) struct Cipher {
    aead: Aes256Gcm,
}

/// Why a sealed value could not be opened; the caller adds where it was stored.
#[derive(Debug)]
pub(crate) enum OpenError {
    /// Not of the form `{"$enc": "<base64>"}` or too short to hold a nonce and a tag.
    Malformed(&'static str),
    /// Authentication failed: wrong key, tampered ciphertext, or copied from another location.
    Authentication,
}

impl Cipher {
    pub(crate) fn new(key: &SecretKey) -> Cipher {
        Cipher {
            aead: Aes256Gcm::new(&key.0.into()),
        }
    }

    /// Seals clear bytes into the base64 text of `nonce || ciphertext`.
    pub(crate) fn seal_bytes(&self, clear: &[u8], aad: &[u8]) -> String {
        let nonce_bytes = rand::random::<[u8; 12]>();
        let ciphertext = self
            .aead
            .encrypt(&nonce_bytes.into(), Payload { msg: clear, aad })
            .expect(
                "AES-GCM encryption only fails for messages over 64 GiB, and secrets are small",
            );
        let mut sealed = Vec::with_capacity(12 + ciphertext.len());
        sealed.extend_from_slice(&nonce_bytes);
        sealed.extend_from_slice(&ciphertext);
        STANDARD.encode(sealed)
    }

    pub(crate) fn open_bytes(&self, sealed_base64: &str, aad: &[u8]) -> Result<Vec<u8>, OpenError> {
        let sealed = STANDARD
            .decode(sealed_base64)
            .map_err(|_| OpenError::Malformed("the sealed value is not base64"))?;
        if sealed.len() < 12 + 16 {
            return Err(OpenError::Malformed(
                "the sealed value is shorter than a nonce and a tag",
            ));
        }
        let (nonce_bytes, ciphertext) = sealed.split_at(12);
        let nonce_array: [u8; 12] = nonce_bytes
            .try_into()
            .map_err(|_| OpenError::Malformed("bad nonce"))?;
        self.aead
            .decrypt(
                &nonce_array.into(),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| OpenError::Authentication)
    }

    /// Seals a JSON value into `{"$enc": ...}`.
    pub(crate) fn seal_value(&self, clear: &Value, aad: &[u8]) -> Value {
        // Serializing a `Value` to bytes cannot fail: its map keys are strings.
        let clear_bytes = serde_json::to_vec(clear).unwrap_or_default();
        let sealed = self.seal_bytes(&clear_bytes, aad);
        let mut object = serde_json::Map::with_capacity(1);
        object.insert(ENCRYPTED_FIELD.to_owned(), Value::String(sealed));
        Value::Object(object)
    }

    /// Opens a value sealed by [`Cipher::seal_value`].
    pub(crate) fn open_value(&self, sealed: &Value, aad: &[u8]) -> Result<Value, OpenError> {
        let Some(sealed_text) = sealed_text(sealed) else {
            return Err(OpenError::Malformed(
                "expected an object {\"$enc\": \"<base64>\"}",
            ));
        };
        let clear_bytes = self.open_bytes(sealed_text, aad)?;
        serde_json::from_slice(&clear_bytes)
            .map_err(|_| OpenError::Malformed("the decrypted value is not JSON"))
    }
}

/// The base64 text of a sealed value, if `value` has the sealed shape.
pub(crate) fn sealed_text(value: &Value) -> Option<&str> {
    let object = value.as_object()?;
    if object.len() != 1 {
        return None;
    }
    object.get(ENCRYPTED_FIELD)?.as_str()
}
