//! BitTorrent v2 (BEP 52) merkle trees: SHA-256 over 16 KiB blocks, padded with zero hashes to
//! a power of two.
//!
//! Used to check a torrent's piece layers against each file's root before anything is
//! downloaded: a layer that does not hash to its root would make every piece of that file
//! fail, or pass on the word of whoever wrote the layer.

use sha2::{Digest, Sha256};

/// One node of a tree.
pub type Hash = [u8; 32];

/// Bytes under one leaf.
pub const BLOCK: u64 = 16 << 10;

/// The parent of two nodes.
pub fn pair(a: &Hash, b: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update(a);
    h.update(b);
    h.finalize().into()
}

/// The hash of a subtree of `blocks` (a power of two) blocks of padding: padding leaves are
/// all-zero hashes, not hashes of zeros.
pub fn pad_hash(blocks: u64) -> Hash {
    let mut h = [0u8; 32];
    let mut width = 1;
    while width < blocks {
        h = pair(&h, &h);
        width *= 2;
    }
    h
}

/// The root of a tree whose lowest level is `nodes`, padded to a power of two with `pad`.
pub fn root(nodes: &[Hash], pad: Hash) -> Hash {
    let mut level: Vec<Hash> = nodes.to_vec();
    let mut pad = pad;
    if level.is_empty() {
        return pad;
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|c| pair(&c[0], c.get(1).unwrap_or(&pad)))
            .collect();
        pad = pair(&pad, &pad);
    }
    level[0]
}

/// The root of a file from its piece layer (one hash per piece of `piece_length` bytes).
pub fn root_from_layer(layer: &[Hash], piece_length: u64) -> Hash {
    root(layer, pad_hash(piece_length / BLOCK))
}

/// The root of the subtree of `width` leaves (a power of two) over `data` cut into blocks, the
/// leaves past its end zero: how a v2 piece (`width` = blocks per piece) or a file no longer than
/// one piece (`width` = its blocks rounded up to a power of two) is checked.
pub fn data_root(data: &[u8], width: u64) -> Hash {
    let leaves: Vec<Hash> = data.chunks(BLOCK as usize).map(sha256).collect();
    leaves_root(&leaves, width)
}

/// [`data_root`] from the block hashes: for data hashed a block at a time as it is read.
pub fn leaves_root(leaves: &[Hash], width: u64) -> Hash {
    let mut h = root(leaves, [0; 32]);
    let mut covered = (leaves.len() as u64).max(1).next_power_of_two();
    while covered < width {
        h = pair(&h, &pad_hash(covered));
        covered *= 2;
    }
    h
}

/// The SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> Hash {
    Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_of_one_piece_layer_matches_hashing_its_blocks() {
        // A 3-block file with 4-block pieces: its root is the tree over 3 blocks and one pad.
        let blocks: Vec<Hash> = (0..3u8).map(|i| sha256(&[i; BLOCK as usize])).collect();
        let piece = root(&blocks, [0; 32]);
        let want = pair(&pair(&blocks[0], &blocks[1]), &pair(&blocks[2], &[0; 32]));
        assert_eq!(piece, want);
        // Two pieces, the second all padding, under a layer of two.
        let layer = [piece];
        assert_eq!(
            root_from_layer(&layer, 4 * BLOCK),
            piece,
            "a one-piece layer is its own root"
        );
        let two = root_from_layer(&[piece, piece, piece], 4 * BLOCK);
        assert_eq!(
            two,
            pair(&pair(&piece, &piece), &pair(&piece, &pad_hash(4)))
        );
    }

    #[test]
    fn data_root_pads_a_short_last_piece_to_the_piece_width() {
        // 2.5 blocks in a 8-block piece: leaves h0 h1 h2' 0 | 0 0 0 0.
        let data: Vec<u8> = (0..(2 * BLOCK + BLOCK / 2)).map(|i| i as u8).collect();
        let l: Vec<Hash> = data.chunks(BLOCK as usize).map(sha256).collect();
        let four = pair(&pair(&l[0], &l[1]), &pair(&l[2], &[0; 32]));
        assert_eq!(data_root(&data, 4), four);
        assert_eq!(data_root(&data, 8), pair(&four, &pad_hash(4)));
        // One short block is its own root at width 1.
        assert_eq!(data_root(&data[..10], 1), sha256(&data[..10]));
    }
}
