//! Collects the blocks of one piece until it can be verified.
//!
//! Tracks per block whether it is missing, requested (and from how many peers, for endgame
//! duplicates) or received, and who sent each block, so a piece that fails its hash can be
//! blamed on the peer whose block was wrong rather than on everyone who helped.
//!
//! A piece of up to [`MAX_HELD_PIECE`] is held in memory until it is checked. A longer one
//! (libtorrent accepts 512 MiB) is *spilled*: each block is written to storage as it comes
//! (off the lock, by the runner) and only its SHA-1 is kept, for blame; the piece is complete
//! once every block is written, and is then checked from storage a chunk at a time.

use std::net::SocketAddr;

use crate::wire::BLOCK_SIZE;

/// Longest piece assembled in memory: sixteen of them (the unfinished-piece floor) are
/// 256 MiB, already more than the 128 MiB cap meant for ordinary pieces.
pub(crate) const MAX_HELD_PIECE: u64 = 16 << 20;

/// SHA-1 of one block of a spilled piece.
pub(crate) type BlockDigest = [u8; 20];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlockState {
    Missing,
    /// Requested from this many peers at once.
    Requested(u8),
    Received,
}

/// What happened to a block that arrived.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Accepted {
    /// Stored; the piece still misses blocks.
    Partial,
    /// Stored and the piece is whole: verify it.
    Complete,
    /// We already had it (endgame duplicate).
    Duplicate,
    /// Offset or length do not match any block of this piece.
    Invalid,
}

impl std::fmt::Debug for PieceAssembly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PieceAssembly({})", self.index)
    }
}

pub(crate) struct PieceAssembly {
    pub index: u32,
    /// Which assembly of the piece this is: a spilled block written after its piece was
    /// dropped and started again must not count for the new one.
    pub id: u64,
    len: u64,
    /// The piece's bytes; empty for a spilled piece.
    pub data: Vec<u8>,
    /// Spilled blocks received but not yet written.
    unwritten: usize,
    /// Digests of the spilled blocks written, to compare with a good copy.
    digests: Vec<Option<BlockDigest>>,
    blocks: Vec<BlockState>,
    received: usize,
    /// Who sent each received block.
    senders: Vec<Option<SocketAddr>>,
    /// Only this peer may fill the piece: set when a piece failed with several contributors, so
    /// the next attempt comes from one peer and the blocks that differ name the liar.
    pub owner: Option<crate::plugin::PeerKey>,
    /// When a block last arrived (or the piece started): a piece nobody advances is released.
    pub touched: std::time::Instant,
}

impl PieceAssembly {
    /// Piece `index` of `len` bytes, spilled if longer than [`MAX_HELD_PIECE`].
    pub fn new(index: u32, id: u64, len: u64) -> Self {
        let n = len.div_ceil(BLOCK_SIZE as u64) as usize;
        let spilled = len > MAX_HELD_PIECE;
        PieceAssembly {
            index,
            id,
            len,
            data: if spilled {
                Vec::new()
            } else {
                vec![0; len as usize]
            },
            unwritten: 0,
            digests: if spilled { vec![None; n] } else { Vec::new() },
            blocks: vec![BlockState::Missing; n],
            received: 0,
            senders: vec![None; n],
            owner: None,
            touched: std::time::Instant::now(),
        }
    }

    pub fn block_count(&self) -> usize {
        self.blocks.len()
    }

    /// (offset, len) of block `i`.
    pub fn block(&self, i: usize) -> (u32, u32) {
        let off = i as u32 * BLOCK_SIZE;
        (off, (self.len as u32 - off).min(BLOCK_SIZE))
    }

    pub fn state(&self, i: usize) -> BlockState {
        self.blocks[i]
    }

    pub fn mark_requested(&mut self, i: usize) {
        self.blocks[i] = match self.blocks[i] {
            BlockState::Missing => BlockState::Requested(1),
            BlockState::Requested(n) => BlockState::Requested(n.saturating_add(1)),
            BlockState::Received => BlockState::Received,
        };
    }

    /// A request for block `i` was withdrawn (timeout, choke, disconnect).
    pub fn unrequest(&mut self, i: usize) {
        if let BlockState::Requested(n) = self.blocks[i] {
            self.blocks[i] = if n <= 1 {
                BlockState::Missing
            } else {
                BlockState::Requested(n - 1)
            };
        }
    }

    fn index_of(&self, offset: u32, len: usize) -> Option<usize> {
        if !offset.is_multiple_of(BLOCK_SIZE) {
            return None;
        }
        let i = (offset / BLOCK_SIZE) as usize;
        (i < self.blocks.len() && self.block(i).1 as usize == len).then_some(i)
    }

    /// Everyone who sent a block of this piece, once each.
    pub fn contributors(&self) -> Vec<SocketAddr> {
        let mut all: Vec<SocketAddr> = self.senders.iter().flatten().copied().collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    /// Whether its blocks go to storage as they come (longer than [`MAX_HELD_PIECE`]).
    pub fn spilled(&self) -> bool {
        self.len > MAX_HELD_PIECE
    }

    /// Bytes this assembly holds in memory.
    pub fn held(&self) -> u64 {
        self.data.len() as u64
    }

    /// Senders of the blocks in which `self` differs from `good` (the same piece, verified).
    pub fn senders_of_differing_blocks(&self, good: &PieceAssembly) -> Vec<SocketAddr> {
        let mut liars: Vec<SocketAddr> = (0..self.blocks.len())
            .filter(|&i| match self.spilled() {
                true => good.digests.get(i) != self.digests.get(i),
                false => {
                    let (off, len) = self.block(i);
                    let r = off as usize..(off + len) as usize;
                    good.data.get(r.clone()) != self.data.get(r)
                }
            })
            .filter_map(|i| self.senders[i])
            .collect();
        liars.sort_unstable();
        liars.dedup();
        liars
    }

    /// Whether any block is requested from a peer right now.
    pub fn in_flight(&self) -> bool {
        self.blocks
            .iter()
            .any(|b| matches!(b, BlockState::Requested(_)))
    }

    /// Blocks nobody has been asked for, in order.
    pub fn missing(&self) -> impl Iterator<Item = usize> + '_ {
        self.blocks
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == BlockState::Missing)
            .map(|(i, _)| i)
    }

    /// Counts the blocks wholly inside `gap` (padding: zeros, which `data` already holds) as
    /// received, so nobody is asked for them. One block is always left to fetch, so that the
    /// piece still completes through [`accept`](Self::accept).
    pub fn assume_zeros(&mut self, gap: std::ops::Range<u64>) {
        for i in 0..self.blocks.len() {
            let (off, len) = self.block(i);
            let (start, end) = (u64::from(off), u64::from(off) + u64::from(len));
            if start >= gap.start
                && end <= gap.end
                && self.blocks[i] == BlockState::Missing
                && self.received + 1 < self.blocks.len()
            {
                self.blocks[i] = BlockState::Received;
                self.received += 1;
            }
        }
    }

    pub fn accept(&mut self, offset: u32, data: &[u8], from: SocketAddr) -> Accepted {
        let Some(i) = self.index_of(offset, data.len()) else {
            return Accepted::Invalid;
        };
        if self.blocks[i] == BlockState::Received {
            return Accepted::Duplicate;
        }
        match self.spilled() {
            true => self.unwritten += 1,
            false => self.data[offset as usize..offset as usize + data.len()].copy_from_slice(data),
        }
        self.blocks[i] = BlockState::Received;
        self.received += 1;
        self.senders[i] = Some(from);
        self.touched = std::time::Instant::now();
        self.progress()
    }

    /// A spilled block is in storage; `Complete` when it was the last one.
    pub fn written(&mut self, offset: u32, digest: BlockDigest) -> Accepted {
        let i = (offset / BLOCK_SIZE) as usize;
        match self.digests.get_mut(i) {
            Some(d @ None) if self.unwritten > 0 => {
                *d = Some(digest);
                self.unwritten -= 1;
                self.progress()
            }
            _ => Accepted::Invalid,
        }
    }

    fn progress(&self) -> Accepted {
        if self.received == self.blocks.len() && self.unwritten == 0 {
            Accepted::Complete
        } else {
            Accepted::Partial
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assembles_short_last_block() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut p = PieceAssembly::new(3, 0, BLOCK_SIZE as u64 + 10);
        assert_eq!(p.block_count(), 2);
        assert_eq!(p.block(1), (BLOCK_SIZE, 10));
        p.mark_requested(0);
        p.mark_requested(0);
        p.unrequest(0);
        assert_eq!(p.state(0), BlockState::Requested(1));
        assert_eq!(p.missing().next(), Some(1));
        assert_eq!(p.accept(BLOCK_SIZE, &[1; 9], a), Accepted::Invalid);
        assert_eq!(p.accept(5, &[1; 10], a), Accepted::Invalid);
        assert_eq!(p.accept(BLOCK_SIZE, &[1; 10], a), Accepted::Partial);
        assert_eq!(p.accept(BLOCK_SIZE, &[1; 10], a), Accepted::Duplicate);
        assert_eq!(
            p.accept(0, &[2; BLOCK_SIZE as usize], a),
            Accepted::Complete
        );
        assert_eq!(p.data[BLOCK_SIZE as usize], 1);
        assert_eq!(p.contributors(), vec![a]);
    }

    #[test]
    fn padding_blocks_are_never_asked_for_but_one_block_always_is() {
        let a = "127.0.0.1:1".parse().unwrap();
        let mut p = PieceAssembly::new(0, 0, 4 * BLOCK_SIZE as u64);
        p.assume_zeros(BLOCK_SIZE as u64 + 5..4 * BLOCK_SIZE as u64);
        assert_eq!(p.missing().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(p.accept(0, &[1; BLOCK_SIZE as usize], a), Accepted::Partial);
        assert_eq!(
            p.accept(BLOCK_SIZE, &[2; BLOCK_SIZE as usize], a),
            Accepted::Complete
        );
        let mut all = PieceAssembly::new(1, 0, 2 * BLOCK_SIZE as u64);
        all.assume_zeros(0..2 * BLOCK_SIZE as u64);
        assert_eq!(all.missing().count(), 1);
    }

    #[test]
    fn a_spilled_piece_is_complete_when_its_last_block_is_written_and_blames_by_digest() {
        let (a, b): (SocketAddr, SocketAddr) = (
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        );
        let len = MAX_HELD_PIECE + 10;
        let mut p = PieceAssembly::new(0, 7, len);
        assert!(p.spilled() && p.held() == 0);
        let last = (p.block_count() - 1) as u32 * BLOCK_SIZE;
        let block = vec![1; BLOCK_SIZE as usize];
        for i in 0..p.block_count() as u32 - 1 {
            assert_eq!(p.accept(i * BLOCK_SIZE, &block, a), Accepted::Partial);
        }
        assert_eq!(
            p.accept(last, &[2; 10], b),
            Accepted::Partial,
            "none written"
        );
        for i in 0..p.block_count() as u32 - 1 {
            assert_eq!(p.written(i * BLOCK_SIZE, [1; 20]), Accepted::Partial);
        }
        assert_eq!(p.written(last, [2; 20]), Accepted::Complete);
        assert_eq!(p.written(last, [2; 20]), Accepted::Invalid, "written twice");
        // A good copy differing in the last block only names its sender.
        let mut good = PieceAssembly::new(0, 8, len);
        for i in 0..good.block_count() as u32 {
            let n = good.block(i as usize).1 as usize;
            good.accept(i * BLOCK_SIZE, &vec![1; n], a);
            good.written(i * BLOCK_SIZE, [1; 20]);
        }
        assert_eq!(p.senders_of_differing_blocks(&good), vec![b]);
    }
}
