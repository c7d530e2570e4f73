//! `.torrent` files: parsing, validation and the info-hash.
//!
//! Everything in a torrent is treated as hostile: sizes are checked against each other, file
//! names are made safe ([`path`], [`unique`]), and the info-hash is taken over the raw `info`
//! bytes ([`span`]). What is harmless is read leniently ([`optional`]); v2 and hybrid
//! metadata (BEP 52) is checked in [`v2`].

mod files;
mod info_bytes;
mod magnet;
pub mod merkle;
mod optional;
pub mod path;
mod piece_check;
pub mod piece_tree;
pub mod span;
pub mod unique;
pub mod v2;
pub mod value;

pub use info_bytes::{InfoBytes, torrent_file, torrent_file_with_layers};
pub use magnet::{MAX_MAGNET_LEN, Magnet, MagnetError};
pub use piece_check::PieceHasher;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

use value::Value;

/// Largest piece we accept: libtorrent's limit (32767 blocks of 16 KiB).
pub const MAX_PIECE_LENGTH: u64 = 32767 * 16384;
/// Most pieces a torrent may have (libtorrent's bound; piece indices stay well inside u32).
pub const MAX_PIECES: u64 = (1 << 30) - 1;
/// Largest .torrent file we read.
pub const MAX_TORRENT_FILE: u64 = 64 << 20;

/// The SHA-1 of the bencoded info dictionary that names a swarm.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    pub fn hex(&self) -> String {
        hex(&self.0)
    }
}

/// Lower-case hex of `b`.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
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
/// BEP 47 attributes a file keeps on disk and in the mount.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileAttr {
    pub executable: bool,
    /// Hidden on systems that have such a flag; on Linux a name is hidden by its leading dot,
    /// which the torrent's name already has or not.
    pub hidden: bool,
}

/// One file of the torrent, in torrent order. Pad files are not files: they leave a gap
/// between one file's end and the next file's offset, which reads as zeros.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileEntry {
    /// Safe, unique path relative to the output directory; for a multi-file torrent the first
    /// component is the torrent's name.
    pub path: Vec<String>,
    pub length: u64,
    /// Offset of the file's first byte in the torrent's byte space.
    pub offset: u64,
    pub attr: FileAttr,
    /// The path as the torrent spells it (below the torrent's folder), when it had to change.
    pub original: Option<String>,
    /// BEP 52 merkle root of the file's data (v2 and hybrid torrents, files with data).
    pub pieces_root: Option<merkle::Hash>,
}

impl FileEntry {
    pub fn relative_path(&self) -> PathBuf {
        path::to_path(&self.path)
    }
}

/// A BEP 47 symlink: takes no bytes, points at a path inside the torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symlink {
    /// Safe, unique path relative to the output directory, as for a file.
    pub path: Vec<String>,
    /// What it points at, relative to the output directory and inside the torrent's folder.
    pub target: Vec<String>,
    pub original: Option<String>,
}

impl Symlink {
    /// The link's content: the target relative to the link's own folder, so that the link
    /// resolves inside the torrent wherever the output directory is.
    pub fn relative_target(&self) -> PathBuf {
        let dirs = &self.path[..self.path.len() - 1];
        let common = dirs
            .iter()
            .zip(&self.target)
            .take_while(|(a, b)| a == b)
            .count();
        let mut p = PathBuf::new();
        for _ in common..dirs.len() {
            p.push("..");
        }
        for c in &self.target[common..] {
            p.push(c);
        }
        p
    }
}

/// Which BitTorrent versions a torrent speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
    Hybrid,
}

/// A parsed, validated torrent.
#[derive(Clone, Debug)]
pub struct Metainfo {
    /// The v1 info-hash; for a v2-only torrent the truncated v2 one (BEP 52).
    pub info_hash: InfoHash,
    /// The SHA-256 of the info dictionary (v2 and hybrid torrents).
    pub info_hash_v2: Option<merkle::Hash>,
    pub version: Version,
    /// Safe name (the folder of a multi-file torrent).
    pub name: String,
    /// The name as the torrent spells it, when it had to change.
    pub name_original: Option<String>,
    pub piece_length: u64,
    /// v1 piece hashes (empty for a v2-only torrent).
    pub piece_hashes: Vec<[u8; 20]>,
    /// The piece layers of a v2 or hybrid torrent by file root (empty for v1), checked against
    /// the roots; held as the torrent holds them (plus a 16th for the levels above, to answer
    /// hash requests), never expanded per piece: a file tree may claim terabytes in 16 KiB
    /// pieces without a layer to back them. A hybrid's pieces are checked by their v1 hashes;
    /// its layers serve the v2 peers' hash requests.
    pub piece_layers: HashMap<merkle::Hash, piece_tree::PieceTree>,
    pub files: Vec<FileEntry>,
    pub symlinks: Vec<Symlink>,
    /// Length of the byte space, pad files included.
    pub total_length: u64,
    /// v2 files longer than a piece whose piece layer the torrent lacks.
    pub missing_piece_layers: usize,
    /// Announce URLs grouped in BEP 12 tiers, tried in order.
    pub trackers: Vec<Vec<String>>,
    /// BEP 19 web seeds.
    pub url_list: Vec<String>,
    pub private: bool,
    pub multi_file: bool,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    pub creation_date: Option<i64>,
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
    #[error("not a valid torrent: '{0}' is missing or of the wrong type")]
    BadField(&'static str),
    #[error("invalid piece length {0}")]
    PieceLength(i64),
    #[error("piece hashes are {0} bytes, not a multiple of 20")]
    PieceHashes(usize),
    #[error("torrent has {got} piece hashes but its {total} bytes need {want}")]
    PieceCount { got: usize, want: u64, total: u64 },
    #[error("torrent has {0} pieces, more than {MAX_PIECES}")]
    TooManyPieces(u64),
    #[error("file {0:?} has a missing or negative length")]
    FileLength(String),
    #[error("total length overflows")]
    TotalLength,
    #[error("torrent holds no data")]
    Empty,
    #[error("torrent has neither 'length' nor 'files' nor a v2 'file tree'")]
    NoFiles,
    #[error("{0}")]
    Duplicates(#[from] unique::TooManyDuplicates),
    #[error("{0}")]
    V2(#[from] v2::V2Error),
}

/// What a valid torrent asks of the engine that it cannot do yet.
#[derive(Debug, thiserror::Error)]
pub enum Unsupported {
    #[error(
        "v2-only torrent without the piece layers of {0} file(s), and they could not be fetched: they would be larger than any .torrent rivulet reads"
    )]
    V2MissingLayers(usize),
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
        let top = Value::parse(data)?;
        let info = Value::parse(&data[info_span])?;
        if info.dict().is_none() {
            return Err(MetainfoError::NoInfo);
        }
        let sha1: [u8; 20] = Sha1::digest(info.raw()).into();

        let raw_length = info
            .get("piece length")
            .ok_or(MetainfoError::BadField("piece length"))?
            .int()
            .ok_or(MetainfoError::BadField("piece length"))?;
        if raw_length <= 0 || raw_length as u64 > MAX_PIECE_LENGTH {
            return Err(MetainfoError::PieceLength(raw_length));
        }
        let piece_length = raw_length as u64;
        let name_raw = info
            .get("name.utf-8")
            .and_then(|n| n.bytes())
            .or_else(|| info.get("name").and_then(|n| n.bytes()))
            .ok_or(MetainfoError::BadField("name"))?;

        let tree = (info.get("meta version").and_then(|v| v.int()) == Some(2))
            .then(|| info.get("file tree"))
            .flatten();
        let v2_entries = match tree {
            Some(t) => {
                v2::check_piece_length(piece_length)?;
                Some(v2::file_tree(t)?)
            }
            None => None,
        };
        let pieces = info.get("pieces");
        let mut v1_entries = match pieces {
            Some(_) => files::v1_entries(info)?,
            None => None,
        };
        let version = match (&v1_entries, &v2_entries) {
            (Some(_), Some(_)) => Version::Hybrid,
            (None, Some(_)) => Version::V2,
            (Some(_), None) => Version::V1,
            (None, None) if pieces.is_none() => return Err(MetainfoError::BadField("pieces")),
            (None, None) => return Err(MetainfoError::NoFiles),
        };
        let layers = match &v2_entries {
            Some(v2e) => v2::check_layers(top.get("piece layers"), v2e, piece_length)?,
            None => v2::Layers::default(),
        };
        let missing_piece_layers = layers.missing;
        if let (Some(v1e), Some(v2e)) = (&mut v1_entries, &v2_entries) {
            v2::agree(v1e, name_raw, v2e, piece_length)?;
            for (e1, e2) in v1e.iter_mut().filter(|e| !e.pad).zip(v2e) {
                e1.root = e2.root;
            }
        }

        let sha256 = v2_entries.as_ref().map(|_| merkle::sha256(info.raw()));
        let info_hash = match (version, sha256) {
            (Version::V2, Some(h)) => InfoHash(h[..20].try_into().expect("20 of 32 bytes")),
            _ => InfoHash(sha1),
        };
        let (name, name_original) = match path::component(name_raw) {
            Some(n) if !name_raw.is_empty() => {
                let raw = String::from_utf8_lossy(name_raw);
                let changed = (n != raw).then(|| raw.into_owned());
                (n, changed)
            }
            // A name that says nothing (or only "go up"): the info-hash names the folder.
            _ => (
                info_hash.hex(),
                Some(String::from_utf8_lossy(name_raw).into_owned()),
            ),
        };
        let (entries, multi_file, aligned) = match (v1_entries, v2_entries) {
            (Some(e), _) => (e, info.get("files").is_some(), false),
            (None, Some(e)) => {
                let single = e.len() == 1 && e[0].comps.len() == 1 && e[0].symlink.is_none();
                (e, !single, true)
            }
            (None, None) => return Err(MetainfoError::NoFiles),
        };
        let placed = files::place(&name, multi_file, &entries, piece_length, aligned)?;
        let mut total_length = placed.total_length;
        if version == Version::V2 {
            // libtorrent pads a v2 torrent's last file to a whole piece as well and asks for
            // its last piece in whole blocks: the tail padding is part of the byte space.
            total_length = total_length
                .checked_next_multiple_of(piece_length)
                .ok_or(MetainfoError::TotalLength)?;
        }
        if total_length == 0 {
            return Err(MetainfoError::Empty);
        }
        let want = total_length.div_ceil(piece_length);
        if want > MAX_PIECES {
            return Err(MetainfoError::TooManyPieces(want));
        }
        let piece_hashes = match version {
            Version::V2 => Vec::new(),
            _ => v1_hashes(pieces, want, total_length)?,
        };
        let opt = optional::read(top);
        Ok(Metainfo {
            info_hash,
            info_hash_v2: sha256,
            version,
            name,
            name_original,
            piece_length,
            piece_hashes,
            piece_layers: layers.by_root,
            files: placed.files,
            symlinks: placed.symlinks,
            total_length,
            missing_piece_layers,
            trackers: opt.trackers,
            url_list: opt.url_list,
            private: info.get("private").and_then(|p| p.int()) == Some(1),
            multi_file,
            comment: opt.comment,
            created_by: opt.created_by,
            creation_date: opt.creation_date,
            info_bytes: InfoBytes(info.raw().into()),
        })
    }

    /// Number of pieces of the byte space.
    pub fn piece_count(&self) -> u32 {
        self.total_length.div_ceil(self.piece_length) as u32
    }

    /// Length of piece `index` (the last one may be short).
    pub fn piece_len(&self, index: u32) -> u64 {
        let start = index as u64 * self.piece_length;
        (self.total_length - start).min(self.piece_length)
    }

    /// The info-hashes peers know this torrent by: a hybrid torrent's swarm is split between
    /// its v1 hash and its v2 hash truncated to 20 bytes (BEP 52); the v1 one comes first.
    pub fn swarm_hashes(&self) -> Vec<InfoHash> {
        let mut out = vec![self.info_hash];
        if let (Version::Hybrid, Some(v2)) = (self.version, &self.info_hash_v2) {
            out.push(InfoHash(v2[..20].try_into().expect("20 of 32 bytes")));
        }
        out
    }

    /// A v2-only torrent whose pieces cannot all be checked until peers send the piece layers
    /// it was written without (a hybrid checks its pieces by their v1 hashes).
    pub fn lacks_piece_layers(&self) -> bool {
        self.version == Version::V2 && self.missing_piece_layers > 0
    }

    /// The v2 info-hash in hex, for v2 and hybrid torrents.
    pub fn info_hash_v2_hex(&self) -> Option<String> {
        self.info_hash_v2.as_ref().map(|h| hex(h))
    }
}

/// The v1 piece hashes: exactly one per piece of the byte space.
fn v1_hashes(
    pieces: Option<Value<'_>>,
    want: u64,
    total: u64,
) -> Result<Vec<[u8; 20]>, MetainfoError> {
    let pieces = pieces
        .and_then(|p| p.bytes())
        .ok_or(MetainfoError::BadField("pieces"))?;
    if pieces.len() % 20 != 0 {
        return Err(MetainfoError::PieceHashes(pieces.len()));
    }
    if want != (pieces.len() / 20) as u64 {
        return Err(MetainfoError::PieceCount {
            got: pieces.len() / 20,
            want,
            total,
        });
    }
    Ok(pieces
        .chunks_exact(20)
        .map(|c| c.try_into().expect("chunk of 20"))
        .collect())
}

#[cfg(test)]
mod tests;
