//! The readahead all readers of one torrent may hold at once, shared fairly between them.
//!
//! A storage that lets data go (the memory cache) can hold only so much. Capping each window on
//! its own is not enough: 32 random readers of an 8 MiB cache, each with a 1 MiB window, asked
//! for 32 MiB ahead and evicted each other's pieces before anyone read them (measured: 583
//! verifications for a 256-piece file read once by `sha1sum` after them). Grants are counted
//! in whole pieces, since that is what the engine fetches and the storage keeps.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Mutex, PoisonError};

pub(crate) struct Budget {
    /// Pieces all windows together may span; `None` when the storage keeps everything.
    pieces: Option<u64>,
    piece_len: u64,
    /// reader -> pieces its current window spans; zero for a reader that asked and got none,
    /// which still counts when the budget is shared out.
    grants: Mutex<HashMap<u64, u64>>,
}

impl Budget {
    /// A budget of `bytes` (`u64::MAX`: unlimited) for a torrent of `piece_len` pieces.
    pub(crate) fn new(bytes: u64, piece_len: u64) -> Self {
        let piece_len = piece_len.max(1);
        Budget {
            pieces: (bytes != u64::MAX).then_some(bytes / piece_len),
            piece_len,
            grants: Mutex::new(HashMap::new()),
        }
    }

    /// Replaces `reader`'s window with as much of the torrent-global `want` as it may have:
    /// at most its fair share of the budget and never more than the others leave free. `None`
    /// when that is not even one piece, or `want` is empty.
    pub(crate) fn grant(&self, reader: u64, want: Range<u64>) -> Option<Range<u64>> {
        let Some(total) = self.pieces else {
            return (!want.is_empty()).then_some(want);
        };
        let first = want.start / self.piece_len;
        let wanted = if want.is_empty() {
            0
        } else {
            want.end.div_ceil(self.piece_len) - first
        };
        // The map stays consistent if a holder panicked: every update is one insert or remove.
        let mut grants = self.grants.lock().unwrap_or_else(PoisonError::into_inner);
        grants.remove(&reader);
        let fair = total / (grants.len() as u64 + 1);
        let free = total.saturating_sub(grants.values().sum());
        let pieces = wanted.min(fair).min(free);
        grants.insert(reader, pieces);
        if pieces == 0 {
            return None;
        }
        let end = want.end.min((first + pieces) * self.piece_len);
        Some(want.start..end)
    }

    /// `reader` is closed: it neither holds nor wants a window any more.
    pub(crate) fn release(&self, reader: u64) {
        if self.pieces.is_some() {
            let mut grants = self.grants.lock().unwrap_or_else(PoisonError::into_inner);
            grants.remove(&reader);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIECE: u64 = 256 << 10;

    #[test]
    fn an_unlimited_budget_grants_every_window_whole() {
        let b = Budget::new(u64::MAX, PIECE);
        for reader in 0..100 {
            assert_eq!(b.grant(reader, 10..(40 << 20)), Some(10..(40 << 20)));
        }
    }

    #[test]
    fn a_lone_reader_gets_the_whole_budget_in_whole_pieces() {
        let b = Budget::new(4 * PIECE, PIECE);
        // Starting mid-piece, four pieces end at the fourth piece boundary.
        assert_eq!(b.grant(1, 100..100 * PIECE), Some(100..4 * PIECE));
        // A smaller window is granted as asked.
        assert_eq!(b.grant(1, PIECE..2 * PIECE), Some(PIECE..2 * PIECE));
    }

    #[test]
    fn the_windows_of_many_readers_together_never_exceed_the_budget() {
        let b = Budget::new(16 * PIECE, PIECE);
        let spanned = |r: &Range<u64>| r.end.div_ceil(PIECE) - r.start / PIECE;
        let mut held: HashMap<u64, u64> = HashMap::new();
        // 32 readers each ask for 1 MiB (four pieces), twice over.
        for round in 0..2 {
            for reader in 0..32u64 {
                let start = (reader * 8 + round) * PIECE;
                match b.grant(reader, start..start + 4 * PIECE) {
                    Some(r) => held.insert(reader, spanned(&r)),
                    None => held.remove(&reader),
                };
                let total: u64 = held.values().sum();
                assert!(total <= 16, "{total} pieces granted of 16");
            }
        }
        // Once they all read, each has its fair share, which is below one piece: no window.
        assert!(held.is_empty(), "{held:?}");
    }

    #[test]
    fn a_released_reader_frees_its_share() {
        let b = Budget::new(4 * PIECE, PIECE);
        assert_eq!(b.grant(1, 0..4 * PIECE), Some(0..4 * PIECE));
        assert_eq!(
            b.grant(2, 0..4 * PIECE),
            None,
            "nothing left while 1 holds all"
        );
        b.release(1);
        assert_eq!(b.grant(2, 0..4 * PIECE), Some(0..4 * PIECE));
        // When reader 1 comes back it gets its fair half once 2 shrinks to its own.
        assert_eq!(b.grant(1, 0..4 * PIECE), None);
        assert_eq!(b.grant(2, 0..4 * PIECE), Some(0..2 * PIECE));
        assert_eq!(b.grant(1, 0..4 * PIECE), Some(0..2 * PIECE));
    }
}
