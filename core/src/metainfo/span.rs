//! Finds the exact bytes of one value of a bencoded top-level dictionary, and checks the shape
//! of untrusted bencode before a recursive decoder sees it.
//!
//! The info-hash must be taken over the `info` dictionary exactly as it appears in the file:
//! re-serialising a parsed value would change the hash of any torrent whose encoder was not
//! canonical. serde_bencode gives no byte offsets, so this walks the structure without
//! building it, with a depth limit so hostile nesting cannot exhaust the stack. serde_bencode
//! itself has no depth limit: [`value_end`] must pass before it decodes anything untrusted.

use std::ops::Range;

const MAX_DEPTH: usize = 64;

/// Why the bencode structure could not be walked.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("bencode: {what} at byte {at}")]
pub struct SpanError {
    pub what: &'static str,
    pub at: usize,
}

fn err<T>(what: &'static str, at: usize) -> Result<T, SpanError> {
    Err(SpanError { what, at })
}

/// Returns the byte range of the value under `key` in the top-level dictionary of `data`.
pub fn dict_value_span(data: &[u8], key: &[u8]) -> Result<Option<Range<usize>>, SpanError> {
    if data.first() != Some(&b'd') {
        return err("top level is not a dictionary", 0);
    }
    let mut pos = 1;
    let mut found = None;
    loop {
        match data.get(pos) {
            None => return err("unterminated dictionary", pos),
            Some(b'e') => break,
            Some(_) => {
                let k = string_span(data, pos)?;
                pos = k.end;
                let start = pos;
                pos = skip_value(data, pos, 1)?;
                if &data[k.start..k.end] == key && found.is_none() {
                    found = Some(start..pos);
                }
            }
        }
    }
    // Some encoders end the file with a newline: whitespace after the dictionary is harmless,
    // anything else means the file is not what it claims.
    if !data[pos + 1..].iter().all(u8::is_ascii_whitespace) {
        return err("trailing bytes after the top-level dictionary", pos + 1);
    }
    Ok(found)
}

/// Walks the one value at the start of `data` without building it and returns the offset just
/// past it (bytes after it are not looked at). Refuses nesting deeper than 64 and strings that
/// run past the end, so that serde_bencode, which recurses once per level, can decode it next.
pub fn value_end(data: &[u8]) -> Result<usize, SpanError> {
    skip_value(data, 0, 1)
}

/// Span of a string's content; `pos` points at its length prefix.
pub(crate) fn string_span(data: &[u8], pos: usize) -> Result<Range<usize>, SpanError> {
    let colon = data[pos..]
        .iter()
        .take(21)
        .position(|&b| b == b':')
        .map(|i| pos + i)
        .ok_or(SpanError {
            what: "bad string length",
            at: pos,
        })?;
    let digits = &data[pos..colon];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return err("bad string length", pos);
    }
    let len: usize = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(SpanError {
            what: "bad string length",
            at: pos,
        })?;
    let start = colon + 1;
    let end = start.checked_add(len).filter(|&e| e <= data.len());
    match end {
        Some(end) => Ok(start..end),
        None => err("string runs past the end", pos),
    }
}

/// Offset just past the value at `pos`, refusing nesting deeper than [`MAX_DEPTH`] below `depth`.
pub(crate) fn skip_value(data: &[u8], pos: usize, depth: usize) -> Result<usize, SpanError> {
    if depth > MAX_DEPTH {
        return err("nesting too deep", pos);
    }
    match data.get(pos) {
        None => err("value missing", pos),
        Some(b'i') => {
            let end = data[pos..]
                .iter()
                .position(|&b| b == b'e')
                .ok_or(SpanError {
                    what: "unterminated integer",
                    at: pos,
                })?;
            integer(&data[pos + 1..pos + end]).ok_or(SpanError {
                what: "bad integer",
                at: pos,
            })?;
            Ok(pos + end + 1)
        }
        Some(b'l') | Some(b'd') => {
            let is_dict = data[pos] == b'd';
            let mut p = pos + 1;
            loop {
                match data.get(p) {
                    None => return err("unterminated list or dictionary", pos),
                    Some(b'e') => return Ok(p + 1),
                    Some(_) => {
                        if is_dict {
                            p = string_span(data, p)?.end;
                        }
                        p = skip_value(data, p, depth + 1)?;
                    }
                }
            }
        }
        Some(b'0'..=b'9') => Ok(string_span(data, pos)?.end),
        Some(_) => err("unexpected byte", pos),
    }
}

/// The value of a bencoded integer's digits, if they are canonical (no leading zero, no `-0`)
/// and fit an i64: a value with two spellings would let two files share one info-hash meaning.
pub(crate) fn integer(digits: &[u8]) -> Option<i64> {
    let magnitude = digits.strip_prefix(b"-").unwrap_or(digits);
    let canonical = match magnitude {
        [] => false,
        [b'0'] => magnitude.len() == digits.len(),
        [b'0', ..] => false,
        _ => magnitude.iter().all(u8::is_ascii_digit),
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_info_span() {
        let t = b"d8:announce3:abc4:infod4:name1:xe1:zi3ee";
        let r = dict_value_span(t, b"info").unwrap().unwrap();
        assert_eq!(&t[r], b"d4:name1:xe");
        assert_eq!(dict_value_span(t, b"nope").unwrap(), None);
    }

    #[test]
    fn refuses_broken_input() {
        assert!(dict_value_span(b"", b"info").is_err());
        assert!(dict_value_span(b"d4:info", b"info").is_err());
        assert!(dict_value_span(b"d4:infoi1e", b"info").is_err());
        assert!(dict_value_span(b"d4:info99999999999999999999:xe", b"info").is_err());
        assert!(dict_value_span(b"d4:infoi1eeX", b"info").is_err());
        assert!(dict_value_span(b"d4:infoi1ee\r\n", b"info").is_ok());
        assert!(dict_value_span(b"d4:infoi07ee", b"info").is_err());
        assert!(dict_value_span(b"d4:infoi-0ee", b"info").is_err());
        assert!(dict_value_span(b"d4:infoiee", b"info").is_err());
        let deep = format!("d4:info{}{}e", "l".repeat(100), "e".repeat(100));
        assert!(dict_value_span(deep.as_bytes(), b"info").is_err());
    }

    #[test]
    fn value_end_walks_one_value() {
        assert_eq!(value_end(b"d1:ai1ee\n"), Ok(8));
        assert_eq!(value_end(b"li1e3:abce"), Ok(10));
        let deep = format!("{}{}", "l".repeat(65), "e".repeat(65));
        assert_eq!(
            value_end(deep.as_bytes()).unwrap_err().what,
            "nesting too deep"
        );
        let ok = format!("{}{}", "l".repeat(64), "e".repeat(64));
        assert_eq!(value_end(ok.as_bytes()), Ok(128));
        assert!(value_end(b"5:abc").is_err());
        assert!(value_end(b"").is_err());
    }
}
