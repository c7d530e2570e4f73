//! Collects the blocks of one piece until it can be verified.
//!
//! Tracks per block whether it is missing, requested (and from how many peers, for endgame
//! duplicates) or received, and who sent each block, so a piece that fails its hash can be
//! blamed on the peer whose block was wrong rather than on everyone who helped.

use std::net::SocketAddr;

use crate::wire::BLOCK_SIZE;

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
    pub data: Vec<u8>,
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
    pub fn new(index: u32, len: u64) -> Self {
        let n = len.div_ceil(BLOCK_SIZE as u64) as usize;
        PieceAssembly {
            index,
            data: vec![0; len as usize],
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
        (off, (self.data.len() as u32 - off).min(BLOCK_SIZE))
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

    /// Senders of the blocks in which `self` differs from `good` (the same piece, verified).
    pub fn senders_of_differing_blocks(&self, good: &[u8]) -> Vec<SocketAddr> {
        let mut liars: Vec<SocketAddr> = (0..self.blocks.len())
            .filter(|&i| {
                let (off, len) = self.block(i);
                let r = off as usize..(off + len) as usize;
                good.get(r.clone()) != self.data.get(r)
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
        self.data[offset as usize..offset as usize + data.len()].copy_from_slice(data);
        self.blocks[i] = BlockState::Received;
        self.received += 1;
        self.senders[i] = Some(from);
        self.touched = std::time::Instant::now();
        if self.received == self.blocks.len() {
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
        let mut p = PieceAssembly::new(3, BLOCK_SIZE as u64 + 10);
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
        let mut p = PieceAssembly::new(0, 4 * BLOCK_SIZE as u64);
        p.assume_zeros(BLOCK_SIZE as u64 + 5..4 * BLOCK_SIZE as u64);
        assert_eq!(p.missing().collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(p.accept(0, &[1; BLOCK_SIZE as usize], a), Accepted::Partial);
        assert_eq!(
            p.accept(BLOCK_SIZE, &[2; BLOCK_SIZE as usize], a),
            Accepted::Complete
        );
        let mut all = PieceAssembly::new(1, 2 * BLOCK_SIZE as u64);
        all.assume_zeros(0..2 * BLOCK_SIZE as u64);
        assert_eq!(all.missing().count(), 1);
    }
}
