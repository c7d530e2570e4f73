//! Structured mutations of a valid input: a few edits (bit flips, byte overwrites, inserts,
//! deletions, truncation, duplicated spans, and a decimal number replaced by a huge or odd one,
//! which is how bencode lengths and integers are written) applied to known-good bytes, so that
//! the parser sees inputs that are almost right rather than only noise.

use proptest::prelude::*;

/// One edit; positions are taken modulo the input length when applied.
#[derive(Clone, Debug)]
pub enum Edit {
    FlipBit(usize, u8),
    Overwrite(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
    Duplicate(usize, usize),
    /// Replaces the n-th run of ASCII digits (mod the number of runs) with this text.
    Number(usize, String),
}

/// Numbers that break naive parsers: huge lengths (2^32, 2^40, past u64), zero, leading
/// zeros, negative, empty.
fn odd_number() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("4294967296".to_string()),
        Just("1099511627776".to_string()),
        Just("18446744073709551616".to_string()),
        Just("99999999999999999999999".to_string()),
        Just("0".to_string()),
        Just("00".to_string()),
        Just("-1".to_string()),
        Just(String::new()),
        any::<u32>().prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
    ]
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(p, b)| Edit::FlipBit(p, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Edit::Overwrite(p, b)),
        (
            any::<usize>(),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 1..8),
                // Bencode structure bytes, so inserts make new nesting and new strings.
                proptest::collection::vec(prop::sample::select(b"ilde:0123456789-".to_vec()), 1..8),
            ]
        )
            .prop_map(|(p, b)| Edit::Insert(p, b)),
        (any::<usize>(), 1usize..16).prop_map(|(p, n)| Edit::Delete(p, n)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), 1usize..32).prop_map(|(p, n)| Edit::Duplicate(p, n)),
        (any::<usize>(), odd_number()).prop_map(|(i, s)| Edit::Number(i, s)),
    ]
}

/// Applies `edits` to a copy of `input`.
pub fn apply(input: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut v = input.to_vec();
    for e in edits {
        let at = |p: usize, v: &Vec<u8>| if v.is_empty() { 0 } else { p % v.len() };
        match e {
            Edit::FlipBit(p, b) if !v.is_empty() => {
                let i = at(*p, &v);
                v[i] ^= 1 << b;
            }
            Edit::Overwrite(p, b) if !v.is_empty() => {
                let i = at(*p, &v);
                v[i] = *b;
            }
            Edit::Insert(p, bytes) => {
                let i = if v.is_empty() { 0 } else { p % (v.len() + 1) };
                v.splice(i..i, bytes.iter().copied());
            }
            Edit::Delete(p, n) if !v.is_empty() => {
                let i = at(*p, &v);
                let end = (i + n).min(v.len());
                v.drain(i..end);
            }
            Edit::Truncate(p) => {
                let keep = if v.is_empty() { 0 } else { p % v.len() };
                v.truncate(keep);
            }
            Edit::Duplicate(p, n) if !v.is_empty() => {
                let i = at(*p, &v);
                let end = (i + n).min(v.len());
                let span = v[i..end].to_vec();
                v.splice(end..end, span);
            }
            Edit::Number(n, text) => {
                let runs = digit_runs(&v);
                if !runs.is_empty() {
                    let r = runs[n % runs.len()].clone();
                    v.splice(r, text.bytes());
                }
            }
            _ => {}
        }
    }
    v
}

fn digit_runs(v: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut i = 0;
    while i < v.len() {
        if v[i].is_ascii_digit() {
            let start = i;
            while i < v.len() && v[i].is_ascii_digit() {
                i += 1;
            }
            runs.push(start..i);
        } else {
            i += 1;
        }
    }
    runs
}

/// 1 to 4 edits.
pub fn edits() -> impl Strategy<Value = Vec<Edit>> {
    proptest::collection::vec(edit(), 1..5)
}

/// `input` with 1 to 4 structured edits applied.
pub fn mutated(input: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    edits().prop_map(move |e| apply(&input, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_edit_replaces_a_length() {
        let out = apply(b"4:spam", &[Edit::Number(0, "1099511627776".into())]);
        assert_eq!(out, b"1099511627776:spam");
        assert_eq!(apply(b"abc", &[Edit::Truncate(1)]), b"a");
        assert_eq!(apply(b"", &[Edit::Insert(5, vec![1])]), vec![1]);
    }
}
