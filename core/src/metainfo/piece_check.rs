//! How a piece's bytes are checked: against its SHA-1 for v1 and hybrid torrents, against its
//! merkle root (BEP 52) for v2-only ones. The verifier, the read-back of a seeded piece and the
//! resume recheck all ask here, so the three can never disagree on what a good piece is.
//!
//! A v2 piece's root is found when asked (its file, then that file's layer), never kept per
//! piece: a file tree may claim 8 TiB in 16 KiB pieces, half a billion of them.

use sha1::{Digest, Sha1};

use super::Metainfo;
use super::merkle::{self, Hash};

/// What one piece of a v2-only torrent hashes to. A piece holds one file's data only (v2 files
/// start on piece boundaries); the rest of its byte range is padding, never hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct V2Piece {
    /// The piece-layer hash, or the file's root for a file no longer than one piece.
    root: Hash,
    /// Bytes of file data at the start of the piece.
    data_len: u64,
    /// Leaves under `root`: blocks per piece, or for a one-piece file its blocks rounded up
    /// to a power of two.
    width: u64,
}

impl Metainfo {
    /// Whether `data`, the whole of piece `index`, is what the torrent says it is.
    pub fn piece_matches(&self, index: u32, data: &[u8]) -> bool {
        if let Some(want) = self.piece_hashes.get(index as usize) {
            return Sha1::digest(data).as_slice() == want;
        }
        match self.v2_piece(index) {
            Some(p) => data
                .get(..p.data_len as usize)
                .is_some_and(|d| merkle::data_root(d, p.width) == p.root),
            None => false,
        }
    }

    /// Whether a v2-only torrent can check piece `index` (its file's layer is known).
    pub fn has_piece_root(&self, index: u32) -> bool {
        self.v2_piece(index).is_some()
    }

    fn v2_piece(&self, index: u32) -> Option<V2Piece> {
        let start = index as u64 * self.piece_length;
        // Files are in offset order; the piece's file is the last one starting at or before it.
        let at = self.files.partition_point(|f| f.offset <= start);
        let f = self.files[..at]
            .iter()
            .rev()
            .find(|f| f.length > 0)
            .filter(|f| start < f.offset + f.length)?;
        let root = f.pieces_root?;
        if f.length <= self.piece_length {
            return Some(V2Piece {
                root,
                data_len: f.length,
                width: f.length.div_ceil(merkle::BLOCK).next_power_of_two(),
            });
        }
        let k = (start - f.offset) / self.piece_length;
        let hash = *self.piece_layers.get(&root)?.layer().get(k as usize)?;
        Some(V2Piece {
            root: hash,
            data_len: (f.length - k * self.piece_length).min(self.piece_length),
            width: self.piece_length / merkle::BLOCK,
        })
    }
}
