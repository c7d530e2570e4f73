//! A v2 torrent's missing piece layers computed from a complete copy of its files in the data
//! folder: the way to seed a `.torrent` written without them when no peer has them either
//! (libtorrent computes them while checking its files, likewise). A layer is kept only if it
//! hashes to its file's root, so a partial or foreign file costs a read and nothing else.
//!
//! Files are read where the file storages put them (`data_dir` joined with each file's path),
//! a 16 KiB block at a time: one piece's block hashes in memory, never the piece.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::metainfo::Metainfo;
use crate::metainfo::merkle::{self, BLOCK, Hash};

/// Blocks read per system call.
const READ_BUFFER: usize = 1 << 20;

/// The layers `meta` lacks that the files under `data_dir` prove, by root.
pub(super) fn hash(meta: &Metainfo, data_dir: &Path) -> Vec<(Hash, Vec<Hash>)> {
    let mut out: Vec<(Hash, Vec<Hash>)> = Vec::new();
    for f in &meta.files {
        let Some(root) = f.pieces_root else { continue };
        let known = meta.piece_layers.contains_key(&root) || out.iter().any(|(r, _)| *r == root);
        if f.length <= meta.piece_length || known {
            continue;
        }
        let path = data_dir.join(f.relative_path());
        match file_layer(&path, f.length, meta.piece_length) {
            Ok(layer) if merkle::root_from_layer(&layer, meta.piece_length) == root => {
                out.push((root, layer));
            }
            Ok(_) => tracing::debug!("{}: not the torrent's data", path.display()),
            Err(e) => tracing::debug!("{}: {e}", path.display()),
        }
    }
    out
}

/// The piece layer of the `length` bytes of the file at `path`.
fn file_layer(path: &Path, length: u64, piece_length: u64) -> std::io::Result<Vec<Hash>> {
    let file = File::open(path)?;
    if file.metadata()?.len() != length {
        return Err(std::io::Error::other("not the torrent's length"));
    }
    let mut reader = BufReader::with_capacity(READ_BUFFER, file);
    let per_piece = piece_length / BLOCK;
    let mut layer = Vec::with_capacity(length.div_ceil(piece_length) as usize);
    let mut leaves = Vec::with_capacity(per_piece as usize);
    let mut block = vec![0u8; BLOCK as usize];
    let mut left = length;
    while left > 0 {
        let n = left.min(BLOCK) as usize;
        reader.read_exact(&mut block[..n])?;
        leaves.push(merkle::sha256(&block[..n]));
        left -= n as u64;
        if leaves.len() as u64 == per_piece || left == 0 {
            layer.push(merkle::leaves_root(&leaves, per_piece));
            leaves.clear();
        }
    }
    Ok(layer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::torrent_file;

    /// A v2-only torrent of one file `f` of `data` in 32 KiB pieces, written without its layer.
    fn bare(data: &[u8]) -> Metainfo {
        let (info, _, _) = crate::metainfo::v2::one_file_for_tests(data, 2 * BLOCK);
        Metainfo::from_bytes(&torrent_file(&info, &[])).unwrap()
    }

    #[test]
    fn a_complete_file_gives_its_layer_and_any_other_gives_none() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let meta = bare(&data);
        assert!(meta.lacks_piece_layers());
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), &data).unwrap();
        let got = hash(&meta, dir.path());
        let full = crate::metainfo::torrent_file_with_layers(&meta.info_bytes, &[], &got);
        let full = Metainfo::from_bytes(&full).unwrap();
        assert!(!full.lacks_piece_layers());
        assert!((0..full.piece_count()).all(|i| {
            let start = i as usize * 32768;
            full.piece_matches(i, &data[start..(start + 32768).min(data.len())])
        }));
        // One byte changed, a short file, no file: no layer.
        let mut wrong = data.clone();
        wrong[70_000] ^= 1;
        std::fs::write(dir.path().join("f"), &wrong).unwrap();
        assert!(hash(&meta, dir.path()).is_empty());
        std::fs::write(dir.path().join("f"), &data[..99_999]).unwrap();
        assert!(hash(&meta, dir.path()).is_empty());
        assert!(hash(&meta, &dir.path().join("none")).is_empty());
    }
}
