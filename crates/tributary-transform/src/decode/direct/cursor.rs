//! The direct decoder's reading of JSON bytes: whitespace, literals, numbers and strings as
//! arrow-json's tape reads them (the same escapes, the same number text), and a checked pass over
//! values nobody keeps. Every read that meets something else fails with [`Decline`].
//!
//! Invariant: no read runs past the end of the bytes or panics; recursion is bounded by
//! [`MAX_SKIP_DEPTH`].

use std::borrow::Cow;

use super::{Decline, Step};

/// How deep a value of a field the schema lacks may nest before the page is declined.
pub(super) const MAX_SKIP_DEPTH: usize = 64;

/// A position in a page's bytes; every read fails (declines) rather than run past the end.
pub(super) struct Cursor<'a> {
    pub bytes: &'a [u8],
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    pub fn next_byte(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.pos += 1;
        Some(byte)
    }

    pub fn expect(&mut self, byte: u8) -> Step {
        match self.next_byte() {
            Some(found) if found == byte => Ok(()),
            _ => Err(Decline),
        }
    }

    /// JSON's four whitespace bytes, as arrow-json's tape skips them.
    pub fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    pub fn literal(&mut self, text: &[u8]) -> Step {
        if self.bytes[self.pos..].starts_with(text) {
            self.pos += text.len();
            Ok(())
        } else {
            Err(Decline)
        }
    }

    /// A number's text as arrow-json's tape takes it: a `-` or a digit, then any of `0-9+-.eE`.
    /// Its column parses it, as the tape path's leaf decoders do.
    pub fn number(&mut self) -> Step<&'a str> {
        let bytes = self.bytes;
        let start = self.pos;
        if !matches!(bytes.get(start), Some(b'-' | b'0'..=b'9')) {
            return Err(Decline);
        }
        let mut end = start + 1;
        while let Some(b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') = bytes.get(end) {
            end += 1;
        }
        self.pos = end;
        std::str::from_utf8(&bytes[start..end]).map_err(|_| Decline)
    }

    /// The rest of a string whose opening quote was just read, unescaped; borrowed from the page
    /// when it has no escapes.
    pub fn string(&mut self) -> Step<Cow<'a, [u8]>> {
        let bytes = self.bytes;
        let rest = &bytes[self.pos..];
        match memchr::memchr2(b'"', b'\\', rest) {
            Some(end) if rest[end] == b'"' => {
                self.pos += end + 1;
                Ok(Cow::Borrowed(&rest[..end]))
            }
            Some(_) => {
                let mut owned = Vec::new();
                self.string_into(&mut owned)?;
                Ok(Cow::Owned(owned))
            }
            None => Err(Decline),
        }
    }

    /// Appends the rest of a string whose opening quote was just read, unescaped, to `out`.
    pub fn string_into(&mut self, out: &mut Vec<u8>) -> Step {
        loop {
            let rest = &self.bytes[self.pos..];
            let stop = memchr::memchr2(b'"', b'\\', rest).ok_or(Decline)?;
            out.extend_from_slice(&rest[..stop]);
            self.pos += stop + 1;
            if rest[stop] == b'"' {
                return Ok(());
            }
            self.escape(out)?;
        }
    }

    /// One escape after its backslash, as arrow-json's tape reads them.
    fn escape(&mut self, out: &mut Vec<u8>) -> Step {
        let plain = match self.next_byte().ok_or(Decline)? {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 8,
            b'f' => 12,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let mut utf8 = [0; 4];
                out.extend_from_slice(self.unicode()?.encode_utf8(&mut utf8).as_bytes());
                return Ok(());
            }
            _ => return Err(Decline),
        };
        out.push(plain);
        Ok(())
    }

    /// A `\u` escape after its `u`: a character, or a high surrogate with its escaped low one.
    fn unicode(&mut self) -> Step<char> {
        let high = self.hex4()?;
        if let Some(c) = char::from_u32(high) {
            return Ok(c);
        }
        if !(0xD800..=0xDBFF).contains(&high) {
            return Err(Decline);
        }
        self.expect(b'\\')?;
        self.expect(b'u')?;
        let low = self.hex4()?;
        if !(0xDC00..=0xDFFF).contains(&low) {
            return Err(Decline);
        }
        char::from_u32((((high - 0xD800) << 10) | (low - 0xDC00)) + 0x1_0000).ok_or(Decline)
    }

    fn hex4(&mut self) -> Step<u32> {
        let mut value = 0;
        for _ in 0..4 {
            let digit = char::from(self.next_byte().ok_or(Decline)?)
                .to_digit(16)
                .ok_or(Decline)?;
            value = (value << 4) | digit;
        }
        Ok(value)
    }

    /// Passes over the rest of a string whose opening quote was just read, checking its
    /// escapes and its UTF-8.
    fn skip_string(&mut self) -> Step {
        let text = self.string()?;
        std::str::from_utf8(&text).map_err(|_| Decline)?;
        Ok(())
    }

    /// Passes over one value of a field the schema lacks, checking that it is well formed.
    pub fn skip_value(&mut self, depth: usize) -> Step {
        if depth > MAX_SKIP_DEPTH {
            return Err(Decline);
        }
        self.skip_whitespace();
        match self.peek().ok_or(Decline)? {
            b'"' => {
                self.pos += 1;
                self.skip_string()
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'{' => {
                self.pos += 1;
                self.skip_whitespace();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.skip_whitespace();
                    self.expect(b'"')?;
                    self.skip_string()?;
                    self.skip_whitespace();
                    self.expect(b':')?;
                    self.skip_value(depth + 1)?;
                    self.skip_whitespace();
                    match self.next_byte() {
                        Some(b',') => {}
                        Some(b'}') => return Ok(()),
                        _ => return Err(Decline),
                    }
                }
            }
            b'[' => {
                self.pos += 1;
                self.skip_whitespace();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    self.skip_whitespace();
                    match self.next_byte() {
                        Some(b',') => {}
                        Some(b']') => return Ok(()),
                        _ => return Err(Decline),
                    }
                }
            }
            _ => self.number().map(drop),
        }
    }
}
