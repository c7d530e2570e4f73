//! Builds .torrent files for payloads that mktorrent cannot express (names that are not UTF-8,
//! piece lengths that are not powers of two) from bytes in memory, with real piece hashes.

use std::path::Path;

use serde_bencode::value::Value;
use sha1::{Digest, Sha1};

/// One file: raw path components below the torrent's name, and its content.
pub struct PayloadFile {
    pub path: Vec<Vec<u8>>,
    pub data: Vec<u8>,
}

fn bytes(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}

/// A multi-file torrent named `name` holding `files`, announcing to `announce`.
pub fn multi_file(
    name: &[u8],
    files: &[PayloadFile],
    piece_length: u64,
    announce: &str,
) -> Vec<u8> {
    let all: Vec<u8> = files.iter().flat_map(|f| f.data.iter().copied()).collect();
    let pieces: Vec<u8> = all
        .chunks(piece_length as usize)
        .flat_map(|c| Sha1::digest(c).to_vec())
        .collect();
    let list = files
        .iter()
        .map(|f| {
            Value::Dict(
                [
                    (b"length".to_vec(), Value::Int(f.data.len() as i64)),
                    (
                        b"path".to_vec(),
                        Value::List(f.path.iter().map(|c| bytes(c)).collect()),
                    ),
                ]
                .into_iter()
                .collect(),
            )
        })
        .collect();
    let info = Value::Dict(
        [
            (b"name".to_vec(), bytes(name)),
            (b"piece length".to_vec(), Value::Int(piece_length as i64)),
            (b"pieces".to_vec(), Value::Bytes(pieces)),
            (b"files".to_vec(), Value::List(list)),
        ]
        .into_iter()
        .collect(),
    );
    encode(announce, info)
}

/// Writes `files` below `root/<name>`, each path component as its raw bytes.
pub fn write_payload(root: &Path, name: &[u8], files: &[PayloadFile]) {
    use std::os::unix::ffi::OsStrExt;
    let base = root.join(std::ffi::OsStr::from_bytes(name));
    for f in files {
        let mut p = base.clone();
        for c in &f.path {
            p.push(std::ffi::OsStr::from_bytes(c));
        }
        std::fs::create_dir_all(p.parent().expect("file has a parent"))
            .unwrap_or_else(|e| panic!("mkdir for {}: {e}", p.display()));
        std::fs::write(&p, &f.data).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
    }
}

/// A single-file torrent of `length` zero bytes: any size at no cost, since every whole piece
/// has the same hash (a peer sending zeros sends the right data).
pub fn zeros(name: &str, length: u64, piece_length: u64, announce: &str) -> Vec<u8> {
    let whole = Sha1::digest(vec![0u8; piece_length as usize]).to_vec();
    let mut pieces = Vec::new();
    let mut left = length;
    while left > 0 {
        let n = left.min(piece_length);
        if n == piece_length {
            pieces.extend_from_slice(&whole);
        } else {
            pieces.extend(Sha1::digest(vec![0u8; n as usize]));
        }
        left -= n;
    }
    let info = Value::Dict(
        [
            (b"name".to_vec(), bytes(name.as_bytes())),
            (b"length".to_vec(), Value::Int(length as i64)),
            (b"piece length".to_vec(), Value::Int(piece_length as i64)),
            (b"pieces".to_vec(), Value::Bytes(pieces)),
        ]
        .into_iter()
        .collect(),
    );
    encode(announce, info)
}

/// A `.torrent` of `info` announcing to `announce`.
fn encode(announce: &str, info: Value) -> Vec<u8> {
    let top = Value::Dict(
        [
            (b"announce".to_vec(), bytes(announce.as_bytes())),
            (b"info".to_vec(), info),
        ]
        .into_iter()
        .collect(),
    );
    serde_bencode::to_bytes(&top).expect("encode torrent")
}
