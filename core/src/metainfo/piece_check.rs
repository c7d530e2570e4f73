//! How a piece's bytes are checked: against its SHA-1 for v1 and hybrid torrents, against its
//! merkle root (BEP 52) for v2-only ones. The verifier, the read-back of a seeded piece and the
//! resume recheck all ask here, so the three can never disagree on what a good piece is.

use sha1::{Digest, Sha1};

use super::Metainfo;
use super::merkle::{self, Hash};

/// What one piece of a v2-only torrent hashes to. A piece holds one file's data only (v2 files
/// start on piece boundaries); the rest of its byte range is padding, never hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V2Piece {
    /// The piece-layer hash, or the file's root for a file no longer than one piece.
    pub root: Hash,
    /// Bytes of file data at the start of the piece.
    pub data_len: u64,
    /// Leaves under `root`: blocks per piece, or for a one-piece file its blocks rounded up
    /// to a power of two.
    pub width: u64,
}

impl Metainfo {
    /// Whether `data`, the whole of piece `index`, is what the torrent says it is.
    pub fn piece_matches(&self, index: u32, data: &[u8]) -> bool {
        let i = index as usize;
        if let Some(want) = self.piece_hashes.get(i) {
            return Sha1::digest(data).as_slice() == want;
        }
        match self.piece_roots.get(i) {
            Some(Some(p)) => data
                .get(..p.data_len as usize)
                .is_some_and(|d| merkle::data_root(d, p.width) == p.root),
            _ => false,
        }
    }
}
