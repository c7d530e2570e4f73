//! BitTorrent v2 metadata (BEP 52): the file tree, the piece layers checked against each
//! file's merkle root, and for a hybrid torrent the check that its v1 and v2 halves describe
//! the same files at the same places (libtorrent refuses one whose halves disagree: a v1 peer
//! and a v2 peer would otherwise hand over different data for one torrent).

use std::collections::HashMap;

use super::files::{Entry, attr, strings};
use super::merkle::{self, Hash};
use super::path;
use super::piece_tree::PieceTree;
use super::value::Value;

/// Largest v2 file: its merkle tree then has 2^30 leaves, libtorrent's bound too.
pub const MAX_FILE_LENGTH: u64 = 1 << 44;

/// Why the v2 half of a torrent is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum V2Error {
    #[error("v2 file tree: {0}")]
    Tree(&'static str),
    #[error("v2 file {0:?} has no valid pieces root")]
    Root(String),
    #[error("v2 file tree holds a pad file")]
    Pad,
    #[error("v2 file {0:?} is larger than 16 TiB")]
    Length(String),
    #[error("v2 piece length is not a power of two of at least 16 KiB")]
    PieceLength,
    #[error("piece layers: {0}")]
    Layer(&'static str),
    #[error("the piece layer of {0:?} does not hash to the file's root")]
    LayerRoot(String),
    #[error("hybrid torrent whose v1 and v2 halves disagree: {0}")]
    Mismatch(&'static str),
}

/// The files of a v2 file tree, in tree order (sorted by name at each level).
pub(super) fn file_tree(tree: Value<'_>) -> Result<Vec<Entry<'_>>, V2Error> {
    let mut out = Vec::new();
    walk(tree, &mut Vec::new(), &mut out)?;
    if out.is_empty() {
        return Err(V2Error::Tree("no files"));
    }
    Ok(out)
}

/// Depth is bounded: the bencode walker refused nesting deeper than 64 before this runs.
fn walk<'a>(
    node: Value<'a>,
    path: &mut Vec<&'a [u8]>,
    out: &mut Vec<Entry<'a>>,
) -> Result<(), V2Error> {
    let not_dict = V2Error::Tree("an entry is not a dictionary");
    let count = node.dict().ok_or(not_dict)?.count();
    if count == 0 {
        return Err(V2Error::Tree("an empty entry"));
    }
    let mut prev: Option<&[u8]> = None;
    for (key, child) in node.dict().into_iter().flatten() {
        if prev.is_some_and(|p| p >= key) {
            return Err(V2Error::Tree("names out of order"));
        }
        prev = Some(key);
        if !key.is_empty() {
            path.push(key);
            walk(child, path, out)?;
            path.pop();
            continue;
        }
        if path.is_empty() {
            return Err(V2Error::Tree("a file without a name"));
        }
        if count != 1 {
            return Err(V2Error::Tree("an entry is both a file and a folder"));
        }
        out.push(leaf(child, path)?);
    }
    Ok(())
}

fn leaf<'a>(node: Value<'a>, comps: &[&'a [u8]]) -> Result<Entry<'a>, V2Error> {
    let shown = || path::original(comps.iter().copied());
    let a = attr(node.get("attr"));
    if a.pad {
        return Err(V2Error::Pad);
    }
    let symlink = match a.symlink {
        true => Some(
            node.get("symlink path")
                .and_then(strings)
                .ok_or(V2Error::Tree("a symlink without a target"))?,
        ),
        false => None,
    };
    let length = node
        .get("length")
        .and_then(|l| l.int())
        .and_then(|l| u64::try_from(l).ok())
        .ok_or(V2Error::Tree("a file without a valid length"))?;
    if length > MAX_FILE_LENGTH {
        return Err(V2Error::Length(shown()));
    }
    let mut root = None;
    if length > 0 && symlink.is_none() {
        let r: Hash = node
            .get("pieces root")
            .and_then(|r| r.bytes())
            .and_then(|r| r.try_into().ok())
            .filter(|r| *r != [0; 32])
            .ok_or_else(|| V2Error::Root(shown()))?;
        root = Some(r);
    }
    Ok(Entry {
        comps: comps.to_vec(),
        length: if symlink.is_some() { 0 } else { length },
        pad: false,
        attr: a.file,
        symlink,
        root,
    })
}

/// BEP 52 pieces are whole merkle subtrees.
pub(super) fn check_piece_length(piece_length: u64) -> Result<(), V2Error> {
    if piece_length < merkle::BLOCK || !piece_length.is_power_of_two() {
        return Err(V2Error::PieceLength);
    }
    Ok(())
}

/// The piece layers of a torrent, checked against their files' roots.
#[derive(Default)]
pub(super) struct Layers {
    /// Files longer than one piece whose layer the torrent lacks: it still loads, as in
    /// libtorrent, but their pieces can only be checked with hashes from peers.
    pub missing: usize,
    /// Each file's layer and the tree above it, by its root.
    pub by_root: HashMap<Hash, PieceTree>,
}

/// Checks every piece layer against its file's root.
pub(super) fn check_layers(
    layers: Option<Value<'_>>,
    files: &[Entry],
    piece_length: u64,
) -> Result<Layers, V2Error> {
    let needs = |e: &&Entry| e.length > piece_length;
    let Some(layers) = layers else {
        return Ok(Layers {
            missing: files.iter().filter(needs).count(),
            by_root: HashMap::new(),
        });
    };
    let entries = layers.dict().ok_or(V2Error::Layer("not a dictionary"))?;
    let mut by_root = HashMap::new();
    for (key, value) in entries {
        let file = files
            .iter()
            .filter(needs)
            .find(|e| e.root.as_ref().is_some_and(|r| r.as_slice() == key))
            .ok_or(V2Error::Layer("an entry belongs to no file"))?;
        let bytes = value
            .bytes()
            .ok_or(V2Error::Layer("an entry is not a string"))?;
        if bytes.len() % 32 != 0 {
            return Err(V2Error::Layer("an entry is not a whole number of hashes"));
        }
        if (bytes.len() / 32) as u64 != file.length.div_ceil(piece_length) {
            return Err(V2Error::Layer("an entry has the wrong number of hashes"));
        }
        let layer: Vec<Hash> = bytes
            .chunks_exact(32)
            .map(|c| c.try_into().expect("chunk of 32"))
            .collect();
        let root = file.root.expect("found by its root");
        let tree = PieceTree::new(layer, piece_length);
        if tree.root() != root {
            return Err(V2Error::LayerRoot(path::original(
                file.comps.iter().copied(),
            )));
        }
        by_root.insert(root, tree);
    }
    // Two files with the same data share one root and one layer.
    let missing = files
        .iter()
        .filter(needs)
        .filter(|e| e.root.is_none_or(|r| !by_root.contains_key(&r)))
        .count();
    Ok(Layers { missing, by_root })
}

/// For a hybrid torrent: the v1 list without its pad files must be the v2 list, and every
/// v1 file with data must start on a piece boundary, as it does in v2.
pub(super) fn agree(
    v1: &[Entry],
    v1_name: &[u8],
    v2: &[Entry],
    piece_length: u64,
) -> Result<(), V2Error> {
    let mut offset = 0u64;
    let mut v2_files = v2.iter();
    for e in v1 {
        if !e.pad {
            let other = v2_files
                .next()
                .ok_or(V2Error::Mismatch("v1 has more files"))?;
            let v1_comps: &[&[u8]] = if e.comps.is_empty() {
                &[v1_name]
            } else {
                &e.comps
            };
            if v1_comps != other.comps.as_slice() || e.symlink != other.symlink {
                return Err(V2Error::Mismatch("file names differ"));
            }
            if e.length != other.length {
                return Err(V2Error::Mismatch("file sizes differ"));
            }
            if e.length > 0 && e.symlink.is_none() && !offset.is_multiple_of(piece_length) {
                return Err(V2Error::Mismatch(
                    "a file does not start on a piece boundary",
                ));
            }
        }
        offset = offset.saturating_add(e.length);
    }
    if v2_files.next().is_some() {
        return Err(V2Error::Mismatch("v2 has more files"));
    }
    Ok(())
}

/// A v2-only info dictionary of one file `f` of `data` in pieces of `piece` bytes, with the
/// file's root and piece layer: for tests that need a real tree.
#[cfg(test)]
pub(crate) fn one_file_for_tests(data: &[u8], piece: u64) -> (Vec<u8>, Hash, Vec<Hash>) {
    let layer: Vec<Hash> = data
        .chunks(piece as usize)
        .map(|p| merkle::data_root(p, piece / merkle::BLOCK))
        .collect();
    let root = merkle::root_from_layer(&layer, piece);
    let mut info = format!(
        "d9:file treed1:fd0:d6:lengthi{}e11:pieces root32:",
        data.len()
    )
    .into_bytes();
    info.extend(root);
    info.extend(format!("eee12:meta versioni2e4:name1:f12:piece lengthi{piece}ee").bytes());
    (info, root, layer)
}
