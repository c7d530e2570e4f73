//! Generated-input tests of the .torrent parser (`Metainfo::from_bytes`) and of the bencode
//! walker that finds the raw info bytes (`span::dict_value_span`): random bytes, random bencode
//! trees, valid torrents built from a strategy and serialised with serde_bencode (parsed back
//! field by field, info-hash over the raw info bytes), and structured mutations of valid
//! torrents. Never a panic, never an allocation sized by a hostile length.
//!
//! Cases per property: RIVULET_FUZZ_CASES (see rivulet-fuzz-support).

use std::collections::BTreeMap;

use proptest::prelude::*;
use rivulet_core::metainfo::span::{SpanError, dict_value_span};
use rivulet_core::metainfo::{MAX_PIECE_LENGTH, Metainfo, MetainfoError, Version};
use rivulet_fuzz_support::budget::{BudgetAlloc, largest_allocation};
use rivulet_fuzz_support::{config, mutate};
use serde::Serialize;
use serde_bytes::ByteBuf;
use sha1::{Digest, Sha1};

#[global_allocator]
static ALLOC: BudgetAlloc = BudgetAlloc;

/// What a parse of `input` may allocate at most in one piece: a copy or two of the input plus
/// the fixed buffers of the parser.
fn budget(input: &[u8]) -> usize {
    64 * 1024 + 4 * input.len()
}

/// Parses and checks the invariants every accepted torrent must hold.
fn parse_checked(data: &[u8]) -> Result<Metainfo, MetainfoError> {
    let (result, largest) = largest_allocation(|| Metainfo::from_bytes(data));
    assert!(
        largest <= budget(data),
        "parsing {} bytes allocated {largest} bytes at once",
        data.len()
    );
    match &result {
        Ok(m) => {
            assert!(m.piece_length > 0 && m.piece_length <= MAX_PIECE_LENGTH);
            assert!(m.total_length > 0);
            let pieces = m.total_length.div_ceil(m.piece_length);
            if m.version != Version::V2 {
                assert_eq!(m.piece_hashes.len() as u64, pieces);
            } else if m.missing_piece_layers == 0 {
                // Every piece of a v2-only torrent with all its layers can be checked.
                assert!((0..pieces.min(4096) as u32).all(|i| m.has_piece_root(i)));
            }
            // Files in order, never overlapping (pad files leave gaps), inside the byte space,
            // under plain names the kernel takes, all below the torrent's folder.
            let mut offset = 0;
            let mut seen = std::collections::HashSet::new();
            for f in &m.files {
                assert!(f.offset >= offset);
                offset = f.offset + f.length;
                assert!(!f.path.is_empty());
                assert!(seen.insert(f.path.clone()), "two files at {:?}", f.path);
                if m.multi_file {
                    assert_eq!(f.path[0], m.name);
                }
                for c in &f.path {
                    assert!(!c.is_empty() && c != "." && c != "..");
                    assert!(!c.contains(['/', '\\', '\0']) && c.len() <= 255);
                }
            }
            assert!(offset <= m.total_length);
            let span = dict_value_span(data, b"info")
                .expect("accepted torrent walks")
                .expect("accepted torrent has info");
            assert_eq!(m.info_hash.0, <[u8; 20]>::from(Sha1::digest(&data[span])));
        }
        Err(e) => assert!(
            !e.to_string().chars().any(char::is_control),
            "error is not one printable line: {e:?}"
        ),
    }
    result
}

// ---- valid torrents from a strategy ----

#[derive(Serialize, Clone, Debug)]
struct TorrentOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    announce: Option<ByteBuf>,
    #[serde(rename = "announce-list", skip_serializing_if = "Option::is_none")]
    announce_list: Option<Vec<Vec<ByteBuf>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<ByteBuf>,
    #[serde(rename = "created by", skip_serializing_if = "Option::is_none")]
    created_by: Option<ByteBuf>,
    info: InfoOut,
}

#[derive(Serialize, Clone, Debug)]
struct InfoOut {
    name: ByteBuf,
    #[serde(rename = "name.utf-8", skip_serializing_if = "Option::is_none")]
    name_utf8: Option<ByteBuf>,
    #[serde(rename = "piece length")]
    piece_length: i64,
    pieces: ByteBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    length: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<Vec<FileOut>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    private: Option<i64>,
}

#[derive(Serialize, Clone, Debug)]
struct FileOut {
    length: i64,
    path: Vec<ByteBuf>,
}

fn bytes(s: &str) -> ByteBuf {
    ByteBuf::from(s.as_bytes().to_vec())
}

/// A file name that must be accepted as it is.
fn component(prefix: &'static str) -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 _.,()\\-éü漢字]{0,30}".prop_map(move |s| format!("{prefix}{s}"))
}

fn url() -> impl Strategy<Value = String> {
    "(http|udp)://[a-z]{1,10}(:[0-9]{1,5})?/[a-z]{0,8}"
}

fn tiers() -> impl Strategy<Value = Vec<Vec<String>>> {
    proptest::collection::vec(proptest::collection::vec(url(), 1..4), 0..4)
}

/// A torrent the parser must accept, with what it must parse to: (torrent, expected paths and
/// lengths, expected tiers).
/// Paths and lengths of a torrent's files, in order.
type Files = Vec<(Vec<String>, u64)>;
/// Announce URLs in tiers.
type Tiers = Vec<Vec<String>>;

fn valid_torrent() -> impl Strategy<Value = (TorrentOut, Files, Tiers)> {
    let piece_length = prop_oneof![
        (14u32..=24).prop_map(|e| 1i64 << e),
        1i64..=MAX_PIECE_LENGTH as i64,
    ];
    let multi = prop_oneof![
        Just(None),
        proptest::collection::vec(
            (
                proptest::collection::vec(component("d"), 0..3),
                component("f"),
                0u64..=4
            ),
            1..8
        )
        .prop_map(Some),
    ];
    (
        piece_length,
        component("t"),
        any::<bool>(),
        multi,
        0u64..=4,
        proptest::option::of(url()),
        tiers(),
        proptest::option::of(".{0,40}"),
        proptest::option::of("[ -~]{0,20}"),
        proptest::option::of(0i64..3),
        any::<u64>(),
    )
        .prop_map(
            |(
                plen,
                name,
                utf8_name,
                multi,
                single_quarters,
                announce,
                tiers,
                comment,
                by,
                private,
                seed,
            )| {
                // Lengths are quarters of a piece, so that a torrent has a few pieces at most
                // whatever the piece length; a file may be empty but the torrent may not.
                let quarter = |q: u64, salt: u64| q * (plen as u64 / 4) + (seed ^ salt) % 4;
                let (files_out, length, expected_files) = match &multi {
                    None => {
                        let len = quarter(single_quarters, 1).max(1);
                        (None, Some(len as i64), vec![(vec![name.clone()], len)])
                    }
                    Some(list) => {
                        let mut out = Vec::new();
                        let mut expected = Vec::new();
                        for (i, (dirs, file, q)) in list.iter().enumerate() {
                            let mut len = quarter(*q, i as u64);
                            if i == 0 {
                                len = len.max(1);
                            }
                            let mut path: Vec<String> = dirs.clone();
                            // The index keeps every file path unique; dirs start with 'd' and
                            // files with 'f', so no file is also a folder.
                            path.push(format!("{file}{i}"));
                            out.push(FileOut {
                                length: len as i64,
                                path: path.iter().map(|c| bytes(c)).collect(),
                            });
                            let mut full = vec![name.clone()];
                            full.extend(path);
                            expected.push((full, len));
                        }
                        (Some(out), None, expected)
                    }
                };
                let total: u64 = expected_files.iter().map(|(_, l)| l).sum();
                let pieces = total.div_ceil(plen as u64) as usize;
                let hashes: Vec<u8> = (0..pieces * 20)
                    .map(|i| (seed.rotate_left(i as u32 % 64) >> 3) as u8 ^ i as u8)
                    .collect();
                let mut seen = std::collections::HashSet::new();
                let expected_tiers: Vec<Vec<String>> = tiers
                    .iter()
                    .map(|t| {
                        t.iter()
                            .filter(|u| seen.insert((*u).clone()))
                            .cloned()
                            .collect()
                    })
                    .filter(|t: &Vec<String>| !t.is_empty())
                    .collect();
                let expected_tiers = if expected_tiers.is_empty() {
                    announce.iter().map(|a| vec![a.clone()]).collect()
                } else {
                    expected_tiers
                };
                let (name_field, name_utf8) = if utf8_name {
                    (bytes("legacy-name"), Some(bytes(&name)))
                } else {
                    (bytes(&name), None)
                };
                let t = TorrentOut {
                    announce: announce.as_deref().map(bytes),
                    announce_list: (!tiers.is_empty()).then(|| {
                        tiers
                            .iter()
                            .map(|t| t.iter().map(|u| bytes(u)).collect())
                            .collect()
                    }),
                    comment: comment.as_deref().map(bytes),
                    created_by: by.as_deref().map(bytes),
                    info: InfoOut {
                        name: name_field,
                        name_utf8,
                        piece_length: plen,
                        pieces: ByteBuf::from(hashes),
                        length,
                        files: files_out,
                        private,
                    },
                };
                (t, expected_files, expected_tiers)
            },
        )
}

fn valid_torrent_bytes() -> impl Strategy<Value = Vec<u8>> {
    valid_torrent().prop_map(|(t, _, _)| serde_bencode::to_bytes(&t).expect("serialises"))
}

// ---- random bencode trees ----

#[derive(Clone, Debug)]
enum Bencode {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Bencode>),
    Dict(BTreeMap<Vec<u8>, Bencode>),
}

impl Bencode {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Bencode::Int(i) => out.extend(format!("i{i}e").bytes()),
            Bencode::Bytes(b) => {
                out.extend(format!("{}:", b.len()).bytes());
                out.extend(b);
            }
            Bencode::List(l) => {
                out.push(b'l');
                l.iter().for_each(|v| v.encode(out));
                out.push(b'e');
            }
            Bencode::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    Bencode::Bytes(k.clone()).encode(out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"info".to_vec()),
        Just(b"name".to_vec()),
        Just(b"piece length".to_vec()),
        Just(b"pieces".to_vec()),
        Just(b"length".to_vec()),
        Just(b"files".to_vec()),
        Just(b"path".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..6),
    ]
}

fn bencode() -> impl Strategy<Value = Bencode> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Bencode::Int),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(Bencode::Bytes),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Bencode::List),
            proptest::collection::btree_map(key(), inner, 0..6).prop_map(Bencode::Dict),
        ]
    })
}

/// Keys of BEP 52 file trees and their leaves, and some names.
fn tree_key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        Just(b"length".to_vec()),
        Just(b"pieces root".to_vec()),
        Just(b"attr".to_vec()),
        Just(b"symlink path".to_vec()),
        Just(b"..".to_vec()),
        proptest::collection::vec(any::<u8>(), 1..4),
    ]
}

/// Random v2 file trees: leaves are small integers, 32-byte roots or short strings.
fn file_tree() -> impl Strategy<Value = Bencode> {
    let leaf = prop_oneof![
        (-2i64..70_000).prop_map(Bencode::Int),
        proptest::collection::vec(any::<u8>(), 32).prop_map(Bencode::Bytes),
        proptest::collection::vec(any::<u8>(), 0..4).prop_map(Bencode::Bytes),
    ];
    leaf.prop_recursive(6, 48, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Bencode::List),
            proptest::collection::btree_map(tree_key(), inner, 0..4).prop_map(Bencode::Dict),
        ]
    })
}

/// A v2 torrent around a random file tree and random piece layers.
fn v2_torrent() -> impl Strategy<Value = Vec<u8>> {
    (
        file_tree(),
        proptest::collection::btree_map(
            proptest::collection::vec(any::<u8>(), 32),
            proptest::collection::vec(any::<u8>(), 0..100),
            0..3,
        ),
        prop_oneof![Just(16384i64), Just(32768), 1i64..100_000],
        any::<bool>(),
    )
        .prop_map(|(tree, layers, plen, hybrid)| {
            let mut info = BTreeMap::new();
            info.insert(b"file tree".to_vec(), tree);
            info.insert(b"meta version".to_vec(), Bencode::Int(2));
            info.insert(b"name".to_vec(), Bencode::Bytes(b"t".to_vec()));
            info.insert(b"piece length".to_vec(), Bencode::Int(plen));
            if hybrid {
                info.insert(b"length".to_vec(), Bencode::Int(1));
                info.insert(b"pieces".to_vec(), Bencode::Bytes(vec![7; 20]));
            }
            let mut top = BTreeMap::new();
            top.insert(b"info".to_vec(), Bencode::Dict(info));
            let layers = layers
                .into_iter()
                .map(|(k, v)| (k, Bencode::Bytes(v)))
                .collect();
            top.insert(b"piece layers".to_vec(), Bencode::Dict(layers));
            Bencode::Dict(top).to_vec()
        })
}

fn top_dict() -> impl Strategy<Value = BTreeMap<Vec<u8>, Bencode>> {
    proptest::collection::btree_map(key(), bencode(), 0..6)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn fuzz_metainfo_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_checked(&data);
    }

    #[test]
    fn fuzz_metainfo_random_bencode(dict in top_dict()) {
        let data = Bencode::Dict(dict.clone()).to_vec();
        let _ = parse_checked(&data);
        // The walker finds exactly the encoding of the info value.
        let span = dict_value_span(&data, b"info").expect("valid bencode walks");
        match dict.get(b"info".as_slice()) {
            Some(info) => {
                let want = info.to_vec();
                prop_assert_eq!(&data[span.expect("info present")], want.as_slice());
            }
            None => prop_assert!(span.is_none()),
        }
    }

    #[test]
    fn fuzz_metainfo_valid_round_trip((t, files, tiers) in valid_torrent()) {
        let data = serde_bencode::to_bytes(&t).expect("serialises");
        let m = parse_checked(&data).unwrap_or_else(|e| panic!("refused a valid torrent: {e}\n{t:?}"));
        let info_bytes = serde_bencode::to_bytes(&t.info).expect("serialises");
        prop_assert_eq!(m.info_hash.0, <[u8; 20]>::from(Sha1::digest(&info_bytes)));
        let want_name = String::from_utf8(t.info.name_utf8.as_ref().unwrap_or(&t.info.name).to_vec()).unwrap();
        prop_assert_eq!(&m.name, &want_name);
        prop_assert_eq!(m.piece_length, t.info.piece_length as u64);
        let got: Vec<(Vec<String>, u64)> = m.files.iter().map(|f| (f.path.clone(), f.length)).collect();
        prop_assert_eq!(got, files);
        prop_assert_eq!(m.multi_file, t.info.files.is_some());
        let hashes: Vec<u8> = m.piece_hashes.concat();
        prop_assert_eq!(hashes.as_slice(), t.info.pieces.as_slice());
        prop_assert_eq!(&m.trackers, &tiers);
        prop_assert_eq!(m.private, t.info.private == Some(1));
        prop_assert_eq!(m.comment.as_deref().map(str::as_bytes), t.comment.as_deref().map(|c| c.as_slice()));
        prop_assert_eq!(m.created_by.as_deref().map(str::as_bytes), t.created_by.as_deref().map(|c| c.as_slice()));
    }

    #[test]
    fn fuzz_metainfo_mutated_valid(
        (data, edits) in (valid_torrent_bytes(), mutate::edits())
    ) {
        let _ = parse_checked(&mutate::apply(&data, &edits));
    }

    #[test]
    fn fuzz_metainfo_v2_file_trees_and_piece_layers(data in v2_torrent()) {
        let _ = parse_checked(&data);
    }

    #[test]
    fn fuzz_metainfo_v2_mutated((data, edits) in (v2_torrent(), mutate::edits())) {
        let _ = parse_checked(&mutate::apply(&data, &edits));
    }

    #[test]
    fn fuzz_span_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..256), key in key()) {
        let (r, largest) = largest_allocation(|| dict_value_span(&data, &key));
        prop_assert!(largest <= 1024, "walker allocated {largest} bytes");
        if let Ok(Some(span)) = r {
            prop_assert!(span.start <= span.end && span.end < data.len());
        }
    }
}

/// Refused with `what` from the walker, having allocated nothing sized by the input's claims.
fn assert_structure_error(data: &[u8], what: &str) {
    let (r, largest) = largest_allocation(|| Metainfo::from_bytes(data));
    match r {
        Err(MetainfoError::Structure(SpanError { what: w, .. })) => assert_eq!(w, what),
        other => panic!("expected a structure error {what:?}, got {other:?}"),
    }
    assert!(largest <= budget(data), "allocated {largest} bytes at once");
}

#[test]
fn huge_string_lengths_are_refused_before_allocating() {
    for len in ["1099511627776", "4294967296", "18446744073709551615"] {
        let data = format!("d4:infod4:name{len}:xe6:lengthi1ee");
        assert_structure_error(data.as_bytes(), "string runs past the end");
    }
    // Longer than any usize: not even a number.
    assert_structure_error(b"d4:info99999999999999999999999:xe", "bad string length");
}

#[test]
fn deep_nesting_is_refused_without_recursing() {
    let n = 200_000;
    for prefix in ["d4:info", "d1:x", "d4:infod5:filesl"] {
        let mut data = prefix.as_bytes().to_vec();
        data.extend(std::iter::repeat_n(b'l', n));
        data.extend(std::iter::repeat_n(b'e', n));
        data.push(b'e');
        assert_structure_error(&data, "nesting too deep");
    }
}

#[test]
fn lengths_that_overflow_the_total_are_refused() {
    let info = format!(
        "d5:filesld6:lengthi{m}e4:pathl1:aeed6:lengthi{m}e4:pathl1:beed6:lengthi{m}e4:pathl1:ceee4:name1:t12:piece lengthi16384e6:pieces20:{h}e",
        m = i64::MAX,
        h = "x".repeat(20)
    );
    let data = format!("d4:info{info}e");
    assert!(matches!(
        parse_checked(data.as_bytes()),
        Err(MetainfoError::TotalLength)
    ));
}
