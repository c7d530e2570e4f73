//! A v2 file's merkle tree from its piece layer up (BEP 52), and the proofs peers ask for
//! with hash requests.
//!
//! The piece layer is kept as the torrent holds it, plus every level from [`STORED_FROM`]
//! pieces up (1/16 as many nodes again: 6 % more memory than the layer). Any node is then at
//! most 7 hashes away, so a proof costs a copy of the hashes asked for and a handful of
//! SHA-256s. Computing an uncle near the root from the layer alone would cost one hash per
//! piece of the file on every request: 100 000 SHA-256s for a 100 000-piece file, which a
//! peer could ask for again and again.

use super::Metainfo;
use super::merkle::{self, Hash};

/// Most base hashes one hash request may ask for: libtorrent asks for 512 at a time, and a
/// `hashes` answer then is 16 KiB, a block's worth.
pub const MAX_REQUEST_HASHES: u32 = 512;

/// Lowest level above the piece layer kept in memory (each node covers 2^4 = 16 pieces).
const STORED_FROM: u32 = 4;

/// One file's piece layer and the levels above it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PieceTree {
    layer: Vec<Hash>,
    /// Levels `STORED_FROM..=height` above the piece layer, without their padding: level `h`
    /// has one node per `2^h` pieces, rounded up.
    upper: Vec<Vec<Hash>>,
    /// `pads[h]`: the node at level `h` over nothing but padding.
    pads: Vec<Hash>,
    /// Levels above the piece layer: the layer padded to a power of two is `2^height` nodes.
    height: u32,
}

/// The level above `level`, padded with `pad` (that level's padding node).
fn up(level: &[Hash], pad: &Hash) -> Vec<Hash> {
    level
        .chunks(2)
        .map(|c| merkle::pair(&c[0], c.get(1).unwrap_or(pad)))
        .collect()
}

impl PieceTree {
    /// The tree over `layer` (one hash per piece of `piece_length` bytes, at least one).
    pub fn new(layer: Vec<Hash>, piece_length: u64) -> Self {
        let height = (layer.len().max(1) as u64)
            .next_power_of_two()
            .trailing_zeros();
        let mut pads = vec![merkle::pad_hash(piece_length / merkle::BLOCK)];
        for h in 0..height as usize {
            pads.push(merkle::pair(&pads[h], &pads[h]));
        }
        let mut upper = Vec::new();
        if height >= STORED_FROM {
            let mut level = up(&layer, &pads[0]);
            for h in 1..=height {
                if h >= STORED_FROM {
                    upper.push(level.clone());
                }
                if h < height {
                    level = up(&level, &pads[h as usize]);
                }
            }
        }
        PieceTree {
            layer,
            upper,
            pads,
            height,
        }
    }

    /// The file's root (its `pieces root`).
    pub fn root(&self) -> Hash {
        self.node(self.height, 0)
    }

    /// The piece layer: one hash per piece of the file.
    pub fn layer(&self) -> &[Hash] {
        &self.layer
    }

    /// Levels above the piece layer.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Node `index` of level `h` above the piece layer; padding past the file's end. Costs at
    /// most `2^STORED_FROM - 1` hashes.
    fn node(&self, h: u32, index: u64) -> Hash {
        let first = index << h;
        if first >= self.layer.len() as u64 {
            return self.pads[h as usize];
        }
        if h >= STORED_FROM {
            return self.upper[(h - STORED_FROM) as usize][index as usize];
        }
        let end = (first + (1 << h)).min(self.layer.len() as u64);
        let mut level = self.layer[first as usize..end as usize].to_vec();
        for l in 0..h {
            level = up(&level, &self.pads[l as usize]);
        }
        level[0]
    }

    /// `length` piece-layer hashes from `index` (padding past the file's end), then the
    /// `uncles` siblings on the path from their subtree to the root, lowest first: the body of
    /// a BEP 52 `hashes` message. `None` unless `length` is a power of two dividing `index`,
    /// the range lies within the padded layer and the uncles stay below the root.
    pub fn proof(&self, index: u32, length: u32, uncles: u32) -> Option<Vec<Hash>> {
        if !length.is_power_of_two() || !index.is_multiple_of(length) {
            return None;
        }
        let sub = length.trailing_zeros();
        let end = index as u64 + length as u64;
        if end > 1u64 << self.height || sub.checked_add(uncles).is_none_or(|t| t > self.height) {
            return None;
        }
        let mut out: Vec<Hash> = (index as usize..end as usize)
            .map(|i| *self.layer.get(i).unwrap_or(&self.pads[0]))
            .collect();
        let mut at = (index >> sub) as u64;
        for h in sub..sub + uncles {
            out.push(self.node(h, at ^ 1));
            at >>= 1;
        }
        Some(out)
    }
}

impl Metainfo {
    /// The hashes a BEP 52 hash request asks for (`length` hashes of layer `base_layer` of the
    /// file with `root` from `index`, then the uncles of `proof_layers` levels), or `None` when
    /// it is to be rejected. Only the piece layer is served: the layers below it (block
    /// hashes) would mean reading and hashing stored data on a peer's say-so, and the layers
    /// above it nobody asks for. A file no longer than one piece has no piece layer.
    pub fn serve_hashes(
        &self,
        root: &Hash,
        base_layer: u32,
        index: u32,
        length: u32,
        proof_layers: u32,
    ) -> Option<Vec<Hash>> {
        let tree = self.piece_layers.get(root)?;
        let piece_layer = (self.piece_length / merkle::BLOCK).trailing_zeros();
        if base_layer != piece_layer || length > MAX_REQUEST_HASHES {
            return None;
        }
        // libtorrent's count: `proof_layers` levels above the base, of which the lowest
        // log2(length) - 1 are computed from the base hashes themselves; the top one must stay
        // below the root.
        if proof_layers >= tree.height() {
            return None;
        }
        let uncles = (proof_layers + 1).saturating_sub(length.trailing_zeros());
        tree.proof(index, length, uncles)
    }
}

/// The node a proof leads to: the subtree over `base` (a power of two of hashes starting at
/// `index`, padding included) folded with `uncles`, lowest first. It is the file's root when
/// the uncles reach the top, and the proof is good when it equals the root.
pub fn proven_node(base: &[Hash], index: u32, uncles: &[Hash]) -> Option<Hash> {
    if base.is_empty()
        || !base.len().is_power_of_two()
        || !(index as usize).is_multiple_of(base.len())
    {
        return None;
    }
    let mut h = merkle::root(base, [0; 32]);
    let mut at = index as u64 >> base.len().trailing_zeros();
    for u in uncles {
        h = match at & 1 {
            0 => merkle::pair(&h, u),
            _ => merkle::pair(u, &h),
        };
        at >>= 1;
    }
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIECE: u64 = 4 * merkle::BLOCK;

    fn layer(n: u32) -> Vec<Hash> {
        (0..n).map(|i| merkle::sha256(&i.to_be_bytes())).collect()
    }

    /// Every full proof of every aligned range verifies against the root, whatever the layer
    /// length (powers of two, one more, one less, one piece) and whichever levels are stored.
    #[test]
    fn every_proof_verifies_against_the_root() {
        for n in [1u32, 2, 3, 5, 15, 16, 17, 31, 33, 100, 513, 1024, 1500] {
            let l = layer(n);
            let tree = PieceTree::new(l.clone(), PIECE);
            assert_eq!(
                tree.root(),
                merkle::root_from_layer(&l, PIECE),
                "{n} pieces"
            );
            let width = 1u32 << tree.height();
            let mut length = 1;
            while length <= width.min(512) {
                let uncles = tree.height() - length.trailing_zeros();
                for index in (0..width).step_by(length as usize) {
                    let p = tree.proof(index, length, uncles).unwrap();
                    assert_eq!(p.len(), (length + uncles) as usize);
                    let (base, up) = p.split_at(length as usize);
                    assert_eq!(
                        proven_node(base, index, up),
                        Some(tree.root()),
                        "{n} pieces, {length} from {index}"
                    );
                    // The base is the layer, padded with the pad of one piece.
                    for (i, h) in base.iter().enumerate() {
                        let want = l
                            .get(index as usize + i)
                            .copied()
                            .unwrap_or(merkle::pad_hash(4));
                        assert_eq!(*h, want);
                    }
                }
                length *= 2;
            }
        }
    }

    #[test]
    fn a_wrong_hash_or_uncle_does_not_verify() {
        let tree = PieceTree::new(layer(36), PIECE);
        let mut p = tree.proof(32, 8, 3).unwrap();
        // The last chunk: 4 real hashes then padding.
        assert_eq!(p[3], layer(36)[35]);
        assert_eq!(p[4..8], [merkle::pad_hash(4); 4]);
        p[1][0] ^= 1;
        assert_ne!(proven_node(&p[..8], 32, &p[8..]), Some(tree.root()));
        let mut p = tree.proof(32, 8, 3).unwrap();
        p[9][5] ^= 1;
        assert_ne!(proven_node(&p[..8], 32, &p[8..]), Some(tree.root()));
    }

    #[test]
    fn fewer_uncles_prove_a_node_below_the_root() {
        let tree = PieceTree::new(layer(64), PIECE);
        let p = tree.proof(8, 8, 1).unwrap();
        // The 16-piece subtree holding pieces 8..16 is node 0 of level 4, which is stored.
        assert_eq!(proven_node(&p[..8], 8, &p[8..]), Some(tree.upper[0][0]));
        assert_eq!(tree.proof(8, 8, 0).unwrap().len(), 8);
    }

    #[test]
    fn refuses_misaligned_or_out_of_range_requests() {
        let tree = PieceTree::new(layer(5), PIECE);
        assert_eq!(tree.height(), 3);
        assert!(tree.proof(0, 3, 0).is_none(), "not a power of two");
        assert!(tree.proof(2, 4, 0).is_none(), "not aligned");
        assert!(tree.proof(8, 1, 0).is_none(), "past the padded layer");
        assert!(tree.proof(0, 16, 0).is_none(), "wider than the tree");
        assert!(tree.proof(0, 4, 2).is_none(), "an uncle above the root");
        assert!(tree.proof(0, 0, 0).is_none());
        assert!(tree.proof(u32::MAX - 1, 2, 0).is_none());
        assert_eq!(tree.proof(4, 4, 1).unwrap().len(), 5);
    }

    #[test]
    fn a_one_piece_layer_is_its_own_root() {
        let l = layer(1);
        let tree = PieceTree::new(l.clone(), PIECE);
        assert_eq!(tree.height(), 0);
        assert_eq!(tree.root(), l[0]);
        assert_eq!(tree.proof(0, 1, 0), Some(l));
    }
}
