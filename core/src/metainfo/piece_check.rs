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

/// A piece hashed as its bytes come, in order and in any number of parts: a piece of up to
/// 512 MiB is checked from storage a chunk at a time, never held whole.
pub struct PieceHasher {
    want: Want,
}

enum Want {
    V1 {
        hash: [u8; 20],
        sha: Sha1,
    },
    V2(V2Hashing),
    /// No hash to check against (a v2 piece whose layer is missing): never matches.
    Nothing,
}

struct V2Hashing {
    piece: V2Piece,
    leaves: Vec<Hash>,
    /// The start of a block cut by the end of the last part.
    partial: Vec<u8>,
    /// File bytes taken so far.
    taken: u64,
}

impl PieceHasher {
    /// The next bytes of the piece.
    pub fn update(&mut self, mut data: &[u8]) {
        match &mut self.want {
            Want::V1 { sha, .. } => sha.update(data),
            Want::V2(h) => {
                // Past the file's data the piece is padding, never hashed.
                let room = (h.piece.data_len - h.taken).min(data.len() as u64) as usize;
                data = &data[..room];
                h.taken += room as u64;
                let block = merkle::BLOCK as usize;
                if !h.partial.is_empty() {
                    let fill = (block - h.partial.len()).min(data.len());
                    h.partial.extend_from_slice(&data[..fill]);
                    data = &data[fill..];
                    if h.partial.len() == block {
                        h.leaves.push(merkle::sha256(&h.partial));
                        h.partial.clear();
                    }
                }
                let whole = data.len() / block * block;
                h.leaves
                    .extend(data[..whole].chunks(block).map(merkle::sha256));
                h.partial.extend_from_slice(&data[whole..]);
            }
            Want::Nothing => {}
        }
    }

    /// Whether the bytes given make the whole piece the torrent describes.
    pub fn matches(self) -> bool {
        match self.want {
            Want::V1 { hash, sha } => sha.finalize().as_slice() == hash,
            Want::V2(mut h) => {
                if h.taken < h.piece.data_len {
                    return false;
                }
                if !h.partial.is_empty() {
                    h.leaves.push(merkle::sha256(&h.partial));
                }
                merkle::leaves_root(&h.leaves, h.piece.width) == h.piece.root
            }
            Want::Nothing => false,
        }
    }
}

impl Metainfo {
    /// Whether `data`, the whole of piece `index`, is what the torrent says it is.
    pub fn piece_matches(&self, index: u32, data: &[u8]) -> bool {
        let mut h = self.piece_hasher(index);
        h.update(data);
        h.matches()
    }

    /// A hasher for piece `index`, to be given its bytes in order.
    pub fn piece_hasher(&self, index: u32) -> PieceHasher {
        let want = match (self.piece_hashes.get(index as usize), self.v2_piece(index)) {
            (Some(hash), _) => Want::V1 {
                hash: *hash,
                sha: Sha1::new(),
            },
            (None, Some(piece)) => Want::V2(V2Hashing {
                piece,
                leaves: Vec::new(),
                partial: Vec::new(),
                taken: 0,
            }),
            (None, None) => Want::Nothing,
        };
        PieceHasher { want }
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
