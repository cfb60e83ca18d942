//! A validating JSON byte scanner that skips values without building them.
//!
//! The record locator walks a page with it: it finds spans (a key, a value, an array element)
//! and checks the grammar on the way, so a truncated or malformed page is an error even where
//! no value is materialised. UTF-8 is checked once for the whole page by the caller.

use std::ops::Range;

/// Where and why the bytes are not JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanError {
    pub offset: usize,
    pub detail: String,
}

/// A cursor over the bytes of one JSON document.
#[derive(Debug)]
pub(crate) struct Scanner<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// Nesting deeper than this is refused instead of risking the stack on hostile input.
const MAX_DEPTH: usize = 256;

impl<'a> Scanner<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    pub fn error(&self, detail: impl Into<String>) -> ScanError {
        ScanError {
            offset: self.pos,
            detail: detail.into(),
        }
    }

    fn eof_error(&self, expected: &str) -> ScanError {
        ScanError {
            offset: self.pos,
            detail: format!("unexpected end of input (truncated body?), expected {expected}"),
        }
    }

    #[inline]
    pub fn skip_ws(&mut self) {
        // Compact JSON has no whitespace between tokens: one comparison in the common case.
        if self.buf.get(self.pos).is_some_and(|&b| b > b' ') {
            return;
        }
        while let Some(&b) = self.buf.get(self.pos) {
            if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    /// The next non-whitespace byte, not consumed.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.buf.get(self.pos).copied()
    }

    /// Consumes one byte the caller has just peeked.
    #[inline]
    pub fn bump(&mut self) {
        self.pos += 1;
    }

    pub fn at_end(&mut self) -> bool {
        self.peek().is_none()
    }

    /// Consumes `byte` (after whitespace) or fails naming what was expected.
    #[inline]
    pub fn expect(&mut self, byte: u8, expected: &str) -> Result<(), ScanError> {
        match self.peek() {
            Some(b) if b == byte => {
                self.pos += 1;
                Ok(())
            }
            Some(b) => Err(self.error(format!("expected {expected}, found {}", describe_byte(b)))),
            None => Err(self.eof_error(expected)),
        }
    }

    /// Skips one value and returns its span.
    #[inline]
    pub fn skip_value(&mut self) -> Result<Range<usize>, ScanError> {
        self.skip_value_at_depth(0)
    }

    fn skip_value_at_depth(&mut self, depth: usize) -> Result<Range<usize>, ScanError> {
        let Some(first) = self.peek() else {
            return Err(self.eof_error("a value"));
        };
        let start = self.pos;
        match first {
            b'"' => self.skip_string()?,
            b'{' => {
                if depth >= MAX_DEPTH {
                    return Err(self.error(format!("nesting deeper than {MAX_DEPTH} levels")));
                }
                self.pos += 1;
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                } else {
                    loop {
                        if self.peek() != Some(b'"') {
                            return Err(self.unexpected("an object key"));
                        }
                        self.skip_string()?;
                        self.expect(b':', "':' after an object key")?;
                        self.skip_value_at_depth(depth + 1)?;
                        match self.peek() {
                            Some(b',') => self.pos += 1,
                            Some(b'}') => {
                                self.pos += 1;
                                break;
                            }
                            _ => return Err(self.unexpected("',' or '}' in an object")),
                        }
                    }
                }
            }
            b'[' => {
                if depth >= MAX_DEPTH {
                    return Err(self.error(format!("nesting deeper than {MAX_DEPTH} levels")));
                }
                self.pos += 1;
                if self.peek() == Some(b']') {
                    self.pos += 1;
                } else {
                    loop {
                        self.skip_value_at_depth(depth + 1)?;
                        match self.peek() {
                            Some(b',') => self.pos += 1,
                            Some(b']') => {
                                self.pos += 1;
                                break;
                            }
                            _ => return Err(self.unexpected("',' or ']' in an array")),
                        }
                    }
                }
            }
            b't' => self.skip_literal(b"true")?,
            b'f' => self.skip_literal(b"false")?,
            b'n' => self.skip_literal(b"null")?,
            b'-' | b'0'..=b'9' => self.skip_number()?,
            _ => return Err(self.unexpected("a value")),
        }
        Ok(start..self.pos)
    }

    /// An error for the byte at the cursor (or the end of input).
    pub fn unexpected(&mut self, expected: &str) -> ScanError {
        match self.peek() {
            Some(b) => self.error(format!("expected {expected}, found {}", describe_byte(b))),
            None => self.eof_error(expected),
        }
    }

    /// Skips a string starting at the cursor, which is on the opening quote.
    #[inline]
    pub fn skip_string(&mut self) -> Result<(), ScanError> {
        debug_assert_eq!(self.buf.get(self.pos), Some(&b'"'));
        self.pos += 1;
        loop {
            let rest = &self.buf[self.pos..];
            let Some(hit) = find_string_special(rest) else {
                self.pos = self.buf.len();
                return Err(self.eof_error("the end of a string"));
            };
            self.pos += hit;
            match self.buf[self.pos] {
                b'"' => {
                    self.pos += 1;
                    return Ok(());
                }
                b'\\' => {}
                _ => return Err(self.error("control character inside a string")),
            }
            // A backslash: validate the escape.
            match self.buf.get(self.pos + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 2,
                Some(b'u') => {
                    let hex = self.buf.get(self.pos + 2..self.pos + 6);
                    match hex {
                        Some(h) if h.iter().all(u8::is_ascii_hexdigit) => self.pos += 6,
                        Some(_) => return Err(self.error("invalid \\u escape in a string")),
                        None => return Err(self.eof_error("a \\u escape")),
                    }
                }
                Some(_) => return Err(self.error("invalid escape in a string")),
                None => return Err(self.eof_error("an escape")),
            }
        }
    }

    fn skip_literal(&mut self, literal: &'static [u8]) -> Result<(), ScanError> {
        let end = self.pos + literal.len();
        match self.buf.get(self.pos..end) {
            Some(bytes) if bytes == literal => {
                self.pos = end;
                Ok(())
            }
            Some(_) => Err(self.error(format!(
                "invalid literal, expected {}",
                String::from_utf8_lossy(literal)
            ))),
            None if literal.starts_with(&self.buf[self.pos..]) => {
                self.pos = self.buf.len();
                Err(self.eof_error("the rest of a literal"))
            }
            None => Err(self.error(format!(
                "invalid literal, expected {}",
                String::from_utf8_lossy(literal)
            ))),
        }
    }

    fn skip_number(&mut self) -> Result<(), ScanError> {
        let buf = self.buf;
        let mut i = self.pos;
        if buf.get(i) == Some(&b'-') {
            i += 1;
        }
        match buf.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while matches!(buf.get(i), Some(b'0'..=b'9')) {
                    i += 1;
                }
            }
            Some(_) => {
                self.pos = i;
                return Err(self.error("invalid number"));
            }
            None => {
                self.pos = i;
                return Err(self.eof_error("a digit"));
            }
        }
        if buf.get(i) == Some(&b'.') {
            i += 1;
            let digits_start = i;
            while matches!(buf.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
            if i == digits_start {
                self.pos = i;
                return Err(self.unexpected("a digit after the decimal point"));
            }
        }
        if matches!(buf.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(buf.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let digits_start = i;
            while matches!(buf.get(i), Some(b'0'..=b'9')) {
                i += 1;
            }
            if i == digits_start {
                self.pos = i;
                return Err(self.unexpected("a digit in the exponent"));
            }
        }
        self.pos = i;
        Ok(())
    }
}

/// The index of the first byte that ends a plain run inside a string: `"`, `\\` or a control
/// character. Eight bytes at a time (SWAR): a byte-wise "has zero" / "less than" test on a u64;
/// the lowest flagged byte is always a true hit (borrows only spill into higher bytes).
#[inline]
fn find_string_special(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let flagged = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (word.wrapping_sub(ONES * 0x20) & !word);
        let flagged = flagged & HIGHS;
        if flagged != 0 {
            return Some(offset + (flagged.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|idx| offset + idx)
}

/// A short description of a byte for error messages.
fn describe_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

/// The JSON type a value starting with `first` has, for error messages.
pub(crate) fn kind_of(first: u8) -> &'static str {
    match first {
        b'{' => "an object",
        b'[' => "an array",
        b'"' => "a string",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        _ => "a number",
    }
}

#[cfg(test)]
mod tests;
