//! Tests of the scanner's word-at-a-time string search against a plain byte loop.

use super::*;

fn naive(bytes: &[u8]) -> Option<usize> {
    bytes
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
}

#[test]
fn find_string_special_agrees_with_a_byte_loop() {
    // Every position and every interesting byte, with UTF-8 and high bytes around it.
    let fillers: [&[u8]; 3] = [
        b"abcdefghijklmnopqrstuvwxyz0123456789",
        "ééééééééééééééééé".as_bytes(),
        &[0xff; 40],
    ];
    for filler in fillers {
        for len in 0..filler.len() {
            let base = &filler[..len];
            assert_eq!(find_string_special(base), naive(base));
            for pos in 0..len {
                for special in [b'"', b'\\', 0x00, 0x1f, b'\n', 0x20, 0x7f, 0x80] {
                    let mut bytes = base.to_vec();
                    bytes[pos] = special;
                    assert_eq!(find_string_special(&bytes), naive(&bytes), "{bytes:?}");
                }
            }
        }
    }
}

#[test]
fn skip_value_spans_and_errors() {
    let text = br#"  {"a": [1, -2.5e+3, true, null, "x\"y\u00e9"], "b": {}}  "#;
    let mut scanner = Scanner::new(text);
    let span = scanner.skip_value().unwrap();
    assert_eq!(&text[span], &text[2..text.len() - 2]);
    assert!(scanner.at_end());
    for (bad, detail) in [
        (&b"[1,]"[..], "expected a value, found ']'"),
        (b"{\"a\" 1}", "expected ':' after an object key, found '1'"),
        (b"\"a\\x\"", "invalid escape in a string"),
        (
            b"-",
            "unexpected end of input (truncated body?), expected a digit",
        ),
        (
            b"1.",
            "unexpected end of input (truncated body?), expected a digit after the decimal point",
        ),
        (
            b"nul",
            "unexpected end of input (truncated body?), expected the rest of a literal",
        ),
    ] {
        let err = Scanner::new(bad).skip_value().unwrap_err();
        assert_eq!(err.detail, detail, "{}", String::from_utf8_lossy(bad));
    }
    let deep = "[".repeat(300);
    let err = Scanner::new(deep.as_bytes()).skip_value().unwrap_err();
    assert_eq!(err.detail, "nesting deeper than 256 levels");
}
