//! Fetching a v2 torrent's piece layers from peers (BEP 52 hash requests) once its info
//! dictionary came by a v2 magnet link: each file's layer is asked for 512 hashes at a time
//! with a proof up to the file's root, and an answer is kept only if its proof leads to that
//! root, so a peer can neither forge a layer nor make us keep hashes every piece would fail.
//!
//! What is kept is bounded by what a `.torrent` we would read could hold, whatever sizes the
//! file tree claims; chunks are allocated as verified answers arrive.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::metainfo::merkle::{self, Hash};
use crate::metainfo::piece_tree::{MAX_REQUEST_HASHES, proven_node};
use crate::metainfo::{MAX_TORRENT_FILE, Metainfo};
use crate::wire::HashRequest;

/// Most layer hashes fetched for one torrent: as many as the largest `.torrent` we read holds.
const MAX_LAYER_HASHES: u64 = MAX_TORRENT_FILE / 32;
/// An unanswered hash request goes to another peer after this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Hash requests in flight per peer.
pub(super) const PIPELINE: usize = 4;

/// One file's layer being fetched.
struct FileLayer {
    root: Hash,
    pieces: u64,
    /// Levels from the (padded) piece layer to the root.
    height: u32,
    /// Verified hashes of each run of 512 pieces.
    chunks: Vec<Option<Vec<Hash>>>,
}

/// Why an answer was refused.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum LayerFault {
    /// Hashes we did not ask this peer for.
    Unrequested,
    /// Hashes whose proof does not lead to the file's root.
    BadProof,
}

/// The layers of one torrent being fetched.
pub(super) struct LayerFetch {
    base_layer: u32,
    files: Vec<FileLayer>,
    /// (file, chunk) asked of connection `conn` at `sent`.
    in_flight: HashMap<(usize, usize), (u64, Instant)>,
    /// (connection, file, chunk) the peer said it will not send: not asked of it again.
    rejected: HashSet<(u64, usize, usize)>,
}

impl LayerFetch {
    /// The layers `meta` lacks (files longer than a piece, each root once); an error when they
    /// would hold more hashes than a `.torrent` could.
    pub fn new(meta: &Metainfo) -> Result<LayerFetch, &'static str> {
        let mut files: Vec<FileLayer> = Vec::new();
        let mut total = 0u64;
        for f in &meta.files {
            let Some(root) = f.pieces_root else { continue };
            if f.length <= meta.piece_length || files.iter().any(|l| l.root == root) {
                continue;
            }
            let pieces = f.length.div_ceil(meta.piece_length);
            total += pieces;
            if total > MAX_LAYER_HASHES {
                return Err("its piece layers would be larger than any .torrent we read");
            }
            files.push(FileLayer {
                root,
                pieces,
                height: pieces.next_power_of_two().trailing_zeros(),
                chunks: vec![None; pieces.div_ceil(MAX_REQUEST_HASHES as u64) as usize],
            });
        }
        Ok(LayerFetch {
            base_layer: (meta.piece_length / merkle::BLOCK).trailing_zeros(),
            files,
            in_flight: HashMap::new(),
            rejected: HashSet::new(),
        })
    }

    /// The request for `chunk` of `file`: up to 512 hashes (never one: libtorrent proves a
    /// single hash from one level too high) and every uncle up to the root.
    fn request(&self, file: usize, chunk: usize) -> HashRequest {
        let f = &self.files[file];
        let index = chunk as u64 * MAX_REQUEST_HASHES as u64;
        let length = (f.pieces - index)
            .next_power_of_two()
            .clamp(2, MAX_REQUEST_HASHES as u64);
        HashRequest {
            pieces_root: f.root,
            base_layer: self.base_layer,
            index: index as u32,
            length: length as u32,
            proof_layers: f.height - 1,
        }
    }

    /// The next request for connection `conn`, if a chunk is left that it did not refuse.
    pub fn next_request(&mut self, conn: u64, now: Instant) -> Option<HashRequest> {
        let (file, chunk) = self.files.iter().enumerate().find_map(|(i, f)| {
            let free = |c: &usize| {
                f.chunks[*c].is_none()
                    && !self.in_flight.contains_key(&(i, *c))
                    && !self.rejected.contains(&(conn, i, *c))
            };
            (0..f.chunks.len()).find(free).map(|c| (i, c))
        })?;
        self.in_flight.insert((file, chunk), (conn, now));
        Some(self.request(file, chunk))
    }

    /// Requests in flight to `conn`.
    pub fn in_flight(&self, conn: u64) -> usize {
        self.in_flight.values().filter(|(c, _)| *c == conn).count()
    }

    /// The (file, chunk) `req` asked of `conn`, if it is one of ours in flight to it.
    fn asked(&self, conn: u64, req: &HashRequest) -> Option<(usize, usize)> {
        let file = self.files.iter().position(|f| f.root == req.pieces_root)?;
        let chunk = (req.index / MAX_REQUEST_HASHES) as usize;
        let ours = self
            .in_flight
            .get(&(file, chunk))
            .is_some_and(|(c, _)| *c == conn)
            && self.request(file, chunk) == *req;
        ours.then_some((file, chunk))
    }

    /// An answer from `conn`: kept if it is one we asked it for and its proof leads to the
    /// file's root.
    pub fn on_hashes(
        &mut self,
        conn: u64,
        req: &HashRequest,
        hashes: &[Hash],
    ) -> Result<(), LayerFault> {
        let (file, chunk) = self.asked(conn, req).ok_or(LayerFault::Unrequested)?;
        self.in_flight.remove(&(file, chunk));
        let f = &mut self.files[file];
        let length = req.length as usize;
        let uncles = (f.height - req.length.trailing_zeros()) as usize;
        if hashes.len() != length + uncles
            || proven_node(&hashes[..length], req.index, &hashes[length..]) != Some(f.root)
        {
            return Err(LayerFault::BadProof);
        }
        let real = (f.pieces - req.index as u64).min(length as u64) as usize;
        f.chunks[chunk] = Some(hashes[..real].to_vec());
        Ok(())
    }

    /// `conn` will not send what `req` asked for: someone else is asked.
    pub fn on_reject(&mut self, conn: u64, req: &HashRequest) {
        if let Some((file, chunk)) = self.asked(conn, req) {
            self.in_flight.remove(&(file, chunk));
            self.rejected.insert((conn, file, chunk));
        }
    }

    /// Connection `conn` is gone: its requests go to others.
    pub fn release_conn(&mut self, conn: u64) {
        self.in_flight.retain(|_, (c, _)| *c != conn);
        self.rejected.retain(|(c, _, _)| *c != conn);
    }

    /// Drops requests unanswered for too long; returns the connections that let them lapse.
    pub fn timeouts(&mut self, now: Instant) -> Vec<u64> {
        super::assembly::expire(&mut self.in_flight, now, REQUEST_TIMEOUT)
    }

    /// Every layer, by its file's root, once all are verified.
    pub fn finished(&self) -> Option<Vec<(Hash, Vec<Hash>)>> {
        self.files
            .iter()
            .map(|f| {
                let mut layer = Vec::with_capacity(f.pieces as usize);
                for c in &f.chunks {
                    layer.extend_from_slice(c.as_deref()?);
                }
                Some((f.root, layer))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::piece_tree::PieceTree;
    use crate::metainfo::torrent_file;

    /// A v2-only torrent of one file of `pieces` 16 KiB pieces, without its layer; the layer.
    fn meta(pieces: u32) -> (Metainfo, Vec<Hash>) {
        let layer: Vec<Hash> = (0..pieces)
            .map(|i| merkle::sha256(&i.to_be_bytes()))
            .collect();
        let root = merkle::root(&layer, [0; 32]);
        let mut info = format!(
            "d9:file treed1:fd0:d6:lengthi{}e11:pieces root32:",
            pieces as u64 * merkle::BLOCK
        )
        .into_bytes();
        info.extend(root);
        info.extend(b"eee12:meta versioni2e4:name1:f12:piece lengthi16384ee");
        (
            Metainfo::from_bytes(&torrent_file(&info, &[])).unwrap(),
            layer,
        )
    }

    /// What an honest peer answers.
    fn answer(layer: &[Hash], r: &HashRequest) -> Vec<Hash> {
        let tree = PieceTree::new(layer.to_vec(), merkle::BLOCK);
        let uncles = r.proof_layers + 1 - r.length.trailing_zeros();
        tree.proof(r.index, r.length, uncles).unwrap()
    }

    #[test]
    fn a_layer_is_fetched_in_chunks_with_proofs_and_rebuilds_the_torrent() {
        let (m, layer) = meta(1025);
        assert_eq!(m.missing_piece_layers, 1);
        let mut f = LayerFetch::new(&m).unwrap();
        let now = Instant::now();
        let reqs: Vec<HashRequest> = std::iter::from_fn(|| f.next_request(1, now)).collect();
        let asked: Vec<(u32, u32)> = reqs.iter().map(|r| (r.index, r.length)).collect();
        assert_eq!(asked, [(0, 512), (512, 512), (1024, 2)]);
        for r in &reqs {
            assert_eq!(r.proof_layers, 10);
            f.on_hashes(1, r, &answer(&layer, r)).unwrap();
        }
        let got = f.finished().unwrap();
        assert_eq!(got, [(m.files[0].pieces_root.unwrap(), layer)]);
        let info = &m.info_bytes;
        let full = crate::metainfo::torrent_file_with_layers(info, &[], &got);
        let m2 = Metainfo::from_bytes(&full).unwrap();
        assert!(!m2.lacks_piece_layers());
    }

    #[test]
    fn wrong_or_unasked_hashes_are_refused_and_a_reject_goes_to_another_peer() {
        let (m, layer) = meta(40);
        let mut f = LayerFetch::new(&m).unwrap();
        let now = Instant::now();
        let r = f.next_request(1, now).unwrap();
        assert_eq!((r.index, r.length), (0, 64));
        let mut bad = answer(&layer, &r);
        bad[3][0] ^= 1;
        assert_eq!(f.on_hashes(1, &r, &bad), Err(LayerFault::BadProof));
        assert!(f.finished().is_none());
        assert_eq!(
            f.on_hashes(2, &r, &answer(&layer, &r)),
            Err(LayerFault::Unrequested)
        );
        let r = f.next_request(2, now).unwrap();
        f.on_reject(2, &r);
        assert_eq!(
            f.next_request(2, now),
            None,
            "not asked again of who refused"
        );
        let r = f.next_request(3, now).unwrap();
        assert_eq!(f.timeouts(now + REQUEST_TIMEOUT), [3]);
        let r2 = f.next_request(4, now).unwrap();
        assert_eq!(r, r2);
        f.on_hashes(4, &r2, &answer(&layer, &r2)).unwrap();
        assert_eq!(f.finished().unwrap()[0].1, layer);
    }

    #[test]
    fn a_tree_claiming_terabytes_is_refused_before_anything_is_allocated() {
        let mut info = format!(
            "d9:file treed1:fd0:d6:lengthi{}e11:pieces root32:",
            1u64 << 43
        )
        .into_bytes();
        info.extend([1; 32]);
        info.extend(b"eee12:meta versioni2e4:name1:f12:piece lengthi16384ee");
        let m = Metainfo::from_bytes(&torrent_file(&info, &[])).unwrap();
        assert!(LayerFetch::new(&m).is_err());
    }
}
