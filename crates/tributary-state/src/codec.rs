//! The one value codec and the key encodings of the store.
//!
//! Values are `[format version: 1 byte][serde_json bytes]`; decoding checks the version first so a
//! later release can migrate, and a value from a newer release is refused with a clear error
//! instead of being misread. Keys are big-endian so that sled's byte order is the logical order:
//! strings are length-prefixed (so one id is never a prefix of another's key) and signed times
//! have their sign bit flipped (so negative times sort before positive ones).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::StateError;

/// The value format version this build writes and the highest it reads.
pub(crate) const FORMAT_VERSION: u8 = 1;

/// Encodes one value: the version byte, then JSON.
pub(crate) fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StateError> {
    let mut bytes = Vec::with_capacity(128);
    bytes.push(FORMAT_VERSION);
    serde_json::to_writer(&mut bytes, value)
        .map_err(|source| StateError::Encode { what, source })?;
    Ok(bytes)
}

/// Decodes one value read from `tree` at `key`; never panics on bad bytes.
pub(crate) fn decode<T: DeserializeOwned>(
    tree: &str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StateError> {
    let Some((&version, json)) = bytes.split_first() else {
        return Err(corrupt(
            tree,
            key,
            "empty value (expected a format version byte)".to_owned(),
        ));
    };
    if version == 0 {
        return Err(corrupt(
            tree,
            key,
            "format version 0 is not a valid version".to_owned(),
        ));
    }
    if version > FORMAT_VERSION {
        return Err(StateError::NewerFormat {
            tree: tree.to_owned(),
            key: display_key(key),
            version,
            supported: FORMAT_VERSION,
        });
    }
    serde_json::from_slice(json)
        .map_err(|err| corrupt(tree, key, format!("undecodable value: {err}")))
}

pub(crate) fn corrupt(tree: &str, key: &[u8], reason: String) -> StateError {
    StateError::Corrupt {
        tree: tree.to_owned(),
        key: display_key(key),
        reason,
    }
}

/// Renders a binary key for an error message: printable ASCII as is, other bytes as `\xNN`.
pub(crate) fn display_key(key: &[u8]) -> String {
    let mut text = String::with_capacity(key.len());
    for &byte in key {
        if byte.is_ascii_graphic() || byte == b' ' {
            text.push(char::from(byte));
        } else {
            text.push_str(&format!("\\x{byte:02x}"));
        }
    }
    text
}

/// A key builder; every part is appended in an order-preserving big-endian form.
#[derive(Debug, Default)]
pub(crate) struct KeyBuf(Vec<u8>);

impl KeyBuf {
    pub(crate) fn new() -> KeyBuf {
        KeyBuf(Vec::with_capacity(64))
    }

    /// A length-prefixed string: `[u32 BE length][bytes]`.
    pub(crate) fn str(mut self, text: &str) -> KeyBuf {
        let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(text.as_bytes());
        self
    }

    /// A signed time that sorts numerically.
    pub(crate) fn i64(mut self, value: i64) -> KeyBuf {
        self.0.extend_from_slice(&sortable_i64(value));
        self
    }

    /// An optional signed time: absent sorts before every present value.
    pub(crate) fn opt_i64(mut self, value: Option<i64>) -> KeyBuf {
        match value {
            None => self.0.push(0),
            Some(value) => {
                self.0.push(1);
                self.0.extend_from_slice(&sortable_i64(value));
            }
        }
        self
    }

    pub(crate) fn u32(mut self, value: u32) -> KeyBuf {
        self.0.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// Raw bytes, only as the last part of a key (they carry no length).
    pub(crate) fn raw(mut self, bytes: &[u8]) -> KeyBuf {
        self.0.extend_from_slice(bytes);
        self
    }

    pub(crate) fn finish(self) -> Vec<u8> {
        self.0
    }
}

/// Big-endian with the sign bit flipped, so that byte order equals numeric order.
pub(crate) fn sortable_i64(value: i64) -> [u8; 8] {
    ((value as u64) ^ (1 << 63)).to_be_bytes()
}
