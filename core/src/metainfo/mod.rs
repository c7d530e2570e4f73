//! `.torrent` files: parsing, validation and the info-hash.
//!
//! Everything in a torrent is treated as hostile: sizes are checked against each other, file
//! names are sanitised ([`path`]), and the info-hash is taken over the raw `info` bytes
//! ([`span`]).

mod info_bytes;
mod magnet;
pub mod path;
pub mod span;

pub use info_bytes::{InfoBytes, torrent_file};
pub use magnet::{MAX_MAGNET_LEN, Magnet, MagnetError};

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_bytes::ByteBuf;
use sha1::{Digest, Sha1};

/// Largest piece we accept: a piece is held in memory while it is assembled.
pub const MAX_PIECE_LENGTH: u64 = 64 << 20;
/// Largest .torrent file we read.
pub const MAX_TORRENT_FILE: u64 = 64 << 20;

/// The SHA-1 of the bencoded info dictionary that names a swarm.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.hex())
    }
}

/// One file of the torrent, in torrent order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Sanitised path relative to the output directory; for a multi-file torrent the first
    /// component is the torrent's name.
    pub path: Vec<String>,
    pub length: u64,
    /// Offset of the file's first byte in the torrent's concatenated data.
    pub offset: u64,
}

impl FileEntry {
    pub fn relative_path(&self) -> PathBuf {
        path::to_path(&self.path)
    }
}

/// A parsed, validated torrent.
#[derive(Clone, Debug)]
pub struct Metainfo {
    pub info_hash: InfoHash,
    pub name: String,
    pub piece_length: u64,
    pub piece_hashes: Vec<[u8; 20]>,
    pub files: Vec<FileEntry>,
    pub total_length: u64,
    /// Announce URLs grouped in BEP 12 tiers, tried in order.
    pub trackers: Vec<Vec<String>>,
    pub private: bool,
    pub multi_file: bool,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    /// The `info` dictionary as it was encoded (served to peers that fetch metadata).
    pub info_bytes: InfoBytes,
}

/// Why a .torrent was refused. Every variant reads as one line.
#[derive(Debug, thiserror::Error)]
pub enum MetainfoError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("file is larger than {MAX_TORRENT_FILE} bytes, not a .torrent")]
    TooLarge,
    #[error("not a valid torrent: {0}")]
    Structure(#[from] span::SpanError),
    #[error("not a valid torrent: no info dictionary")]
    NoInfo,
    #[error("not a valid torrent: {0}")]
    Decode(String),
    #[error("invalid piece length {0}")]
    PieceLength(i64),
    #[error("piece hashes are {0} bytes, not a multiple of 20")]
    PieceHashes(usize),
    #[error("torrent has {got} piece hashes but its {total} bytes need {want}")]
    PieceCount { got: usize, want: u64, total: u64 },
    #[error("file {0:?} has a negative length")]
    FileLength(String),
    #[error("total length overflows")]
    TotalLength,
    #[error("torrent holds no data")]
    Empty,
    #[error(
        "torrent has neither 'length' nor 'files' (BitTorrent v2-only torrents are not supported)"
    )]
    NoFiles,
    #[error("unsafe file name in torrent: {0}")]
    Path(#[from] path::PathError),
    #[error("file {0:?} appears twice or clashes with a folder of the same name")]
    Duplicate(String),
}

#[derive(Deserialize)]
struct RawTorrent {
    announce: Option<ByteBuf>,
    #[serde(rename = "announce-list")]
    announce_list: Option<Vec<Vec<ByteBuf>>>,
    comment: Option<ByteBuf>,
    #[serde(rename = "created by")]
    created_by: Option<ByteBuf>,
}

#[derive(Deserialize)]
struct RawInfo {
    name: ByteBuf,
    #[serde(rename = "name.utf-8")]
    name_utf8: Option<ByteBuf>,
    #[serde(rename = "piece length")]
    piece_length: i64,
    pieces: Option<ByteBuf>,
    length: Option<i64>,
    files: Option<Vec<RawFile>>,
    private: Option<i64>,
}

#[derive(Deserialize)]
struct RawFile {
    length: i64,
    path: Vec<ByteBuf>,
    #[serde(rename = "path.utf-8")]
    path_utf8: Option<Vec<ByteBuf>>,
}

fn text(b: &ByteBuf) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Metainfo {
    /// Reads and parses a .torrent file.
    pub fn from_file(path: &Path) -> Result<Self, MetainfoError> {
        let read_err = |source| MetainfoError::Read {
            path: path.to_owned(),
            source,
        };
        let len = std::fs::metadata(path).map_err(read_err)?.len();
        if len > MAX_TORRENT_FILE {
            return Err(MetainfoError::TooLarge);
        }
        Self::from_bytes(&std::fs::read(path).map_err(read_err)?)
    }

    /// Parses a .torrent from memory.
    pub fn from_bytes(data: &[u8]) -> Result<Self, MetainfoError> {
        if data.len() as u64 > MAX_TORRENT_FILE {
            return Err(MetainfoError::TooLarge);
        }
        let info_span = span::dict_value_span(data, b"info")?.ok_or(MetainfoError::NoInfo)?;
        let info_bytes = &data[info_span];
        let info_hash = InfoHash(Sha1::digest(info_bytes).into());
        let top: RawTorrent =
            serde_bencode::from_bytes(data).map_err(|e| MetainfoError::Decode(decode_error(&e)))?;
        let info: RawInfo = serde_bencode::from_bytes(info_bytes)
            .map_err(|e| MetainfoError::Decode(format!("info: {}", decode_error(&e))))?;

        if info.piece_length <= 0 || info.piece_length as u64 > MAX_PIECE_LENGTH {
            return Err(MetainfoError::PieceLength(info.piece_length));
        }
        let piece_length = info.piece_length as u64;
        let pieces = info.pieces.as_deref().ok_or(MetainfoError::NoFiles)?;
        if pieces.len() % 20 != 0 {
            return Err(MetainfoError::PieceHashes(pieces.len()));
        }
        let name_raw = info.name_utf8.as_ref().unwrap_or(&info.name);
        let name = path::component(name_raw)?;

        let (files, multi_file) = match (info.length, &info.files) {
            (Some(len), None) => {
                if len < 0 {
                    return Err(MetainfoError::FileLength(name));
                }
                (vec![(vec![name.clone()], len as u64)], false)
            }
            (_, Some(list)) => {
                let mut out = Vec::with_capacity(list.len());
                for f in list {
                    let comps = f.path_utf8.as_ref().unwrap_or(&f.path);
                    let mut p = vec![name.clone()];
                    p.extend(path::relative_path(comps)?);
                    if f.length < 0 {
                        return Err(MetainfoError::FileLength(p.join("/")));
                    }
                    out.push((p, f.length as u64));
                }
                (out, true)
            }
            (None, None) => return Err(MetainfoError::NoFiles),
        };
        check_unique(&files)?;

        let mut offset = 0u64;
        let files: Vec<FileEntry> = files
            .into_iter()
            .map(|(path, length)| {
                let e = FileEntry {
                    path,
                    length,
                    offset,
                };
                offset = offset
                    .checked_add(length)
                    .ok_or(MetainfoError::TotalLength)?;
                Ok(e)
            })
            .collect::<Result<_, MetainfoError>>()?;
        let total_length = offset;
        if total_length == 0 {
            return Err(MetainfoError::Empty);
        }
        let want = total_length.div_ceil(piece_length);
        if want != (pieces.len() / 20) as u64 {
            return Err(MetainfoError::PieceCount {
                got: pieces.len() / 20,
                want,
                total: total_length,
            });
        }
        let piece_hashes = pieces
            .chunks_exact(20)
            .map(|c| c.try_into().expect("chunk of 20"))
            .collect();

        Ok(Metainfo {
            info_hash,
            name,
            piece_length,
            piece_hashes,
            files,
            total_length,
            trackers: tiers(&top),
            private: info.private == Some(1),
            multi_file,
            comment: top.comment.as_ref().map(text),
            created_by: top.created_by.as_ref().map(text),
            info_bytes: InfoBytes(info_bytes.into()),
        })
    }

    pub fn piece_count(&self) -> u32 {
        self.piece_hashes.len() as u32
    }

    /// Length of piece `index` (the last one may be short).
    pub fn piece_len(&self, index: u32) -> u64 {
        let start = index as u64 * self.piece_length;
        (self.total_length - start).min(self.piece_length)
    }
}

/// serde_bencode's message quotes the offending bytes (newlines, terminal escapes, a megabyte
/// of digits): keep it one short printable line.
fn decode_error(e: &serde_bencode::Error) -> String {
    e.to_string()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect()
}

/// Refuses two files with the same path and a file that is also used as a folder: either would
/// make two parts of the torrent fight over one place on disk.
fn check_unique(files: &[(Vec<String>, u64)]) -> Result<(), MetainfoError> {
    let mut seen_files = HashSet::new();
    let mut seen_dirs = HashSet::new();
    for (p, _) in files {
        let full = p.join("/");
        if seen_dirs.contains(&full) || !seen_files.insert(full.clone()) {
            return Err(MetainfoError::Duplicate(full));
        }
        for i in 1..p.len() {
            let dir = p[..i].join("/");
            if seen_files.contains(&dir) {
                return Err(MetainfoError::Duplicate(dir));
            }
            seen_dirs.insert(dir);
        }
    }
    Ok(())
}

/// BEP 12: `announce-list` wins when present and non-empty; otherwise `announce` alone.
fn tiers(top: &RawTorrent) -> Vec<Vec<String>> {
    let mut seen = HashSet::new();
    let mut out: Vec<Vec<String>> = Vec::new();
    if let Some(list) = &top.announce_list {
        for tier in list {
            let t: Vec<String> = tier
                .iter()
                .map(text)
                .filter(|u| !u.is_empty() && seen.insert(u.clone()))
                .collect();
            if !t.is_empty() {
                out.push(t);
            }
        }
    }
    if out.is_empty()
        && let Some(a) = &top.announce
    {
        let a = text(a);
        if !a.is_empty() {
            out.push(vec![a]);
        }
    }
    out
}

#[cfg(test)]
mod tests;
