//! Hashing functions: `sha1`, `sha256`, `sha512`, `md5`, `crc32`, each over the text encoded in
//! a charset (UTF-8 by default; UTF-16, UTF-16BE, UTF-16LE, ISO-8859-1, US-ASCII), as Java's
//! `String.getBytes(charset)` encodes it (UTF-16 with a big-endian byte-order mark, unmappable
//! characters as `?`). Results are lowercase hex.

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

use super::{Function, text_arg};
use crate::expr::Value;

pub(super) fn call(function: Function, args: &[Value]) -> Result<Value, String> {
    let Some(input) = text_arg(args, 0, "input")? else {
        return Ok(Value::Null);
    };
    let charset = text_arg(args, 1, "charset")?.unwrap_or_else(|| "UTF-8".to_owned());
    let bytes = encode(&input, &charset)?;
    let hex = match function {
        Function::Sha1 => to_hex(&Sha1::digest(&bytes)),
        Function::Sha256 => to_hex(&Sha256::digest(&bytes)),
        Function::Sha512 => to_hex(&Sha512::digest(&bytes)),
        Function::Md5 => to_hex(&Md5::digest(&bytes)),
        Function::Crc32 => format!("{:08x}", crc32fast::hash(&bytes)),
        _ => return Err(format!("{} is not a hashing function", function.name())),
    };
    Ok(Value::Str(hex))
}

/// Encodes text in a charset the way Java does.
pub(crate) fn encode(text: &str, charset: &str) -> Result<Vec<u8>, String> {
    match charset
        .trim()
        .to_ascii_uppercase()
        .replace('_', "-")
        .as_str()
    {
        "UTF-8" | "UTF8" => Ok(text.as_bytes().to_vec()),
        "UTF-16" | "UTF16" => {
            let mut out = vec![0xFE, 0xFF];
            out.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
            Ok(out)
        }
        "UTF-16BE" => Ok(text.encode_utf16().flat_map(u16::to_be_bytes).collect()),
        "UTF-16LE" => Ok(text.encode_utf16().flat_map(u16::to_le_bytes).collect()),
        "ISO-8859-1" | "LATIN1" | "ISO8859-1" => Ok(text
            .chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
            .collect()),
        "US-ASCII" | "ASCII" => Ok(text
            .chars()
            .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
            .collect()),
        _ => Err(format!(
            "unsupported charset {charset:?}: expected UTF-8, UTF-16, UTF-16BE, UTF-16LE, ISO-8859-1 or US-ASCII"
        )),
    }
}

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}
