//! Sequential piece picker: the lowest-index wanted piece the peer has.
//!
//! Wanted pieces (not in progress, not verified) are a bitfield searched 64 pieces at a time from
//! a cursor that stays past the leading words holding nothing wanted, so picking through a
//! download in order is amortised O(1). Peer availability and deadlines do not matter here.

use rivulet_core::bitfield::Bitfield;
use rivulet_core::plugin::{PeerKey, PiecePicker};

#[derive(Default)]
pub struct Sequential {
    wanted: Bitfield,
    /// No word before this one holds a wanted piece.
    cursor: usize,
}

impl PiecePicker for Sequential {
    fn init(&mut self, pieces: u32, have: &Bitfield) {
        self.wanted = Bitfield::full(pieces);
        for piece in 0..pieces {
            if have.get(piece) {
                self.wanted.clear(piece);
            }
        }
        self.cursor = 0;
    }

    fn peer_bitfield(&mut self, _peer: PeerKey, _has: &Bitfield) {}

    fn peer_have(&mut self, _peer: PeerKey, _piece: u32) {}

    fn peer_left(&mut self, _peer: PeerKey) {}

    fn piece_verified(&mut self, piece: u32) {
        self.wanted.clear(piece);
    }

    fn piece_lost(&mut self, piece: u32) {
        if self.wanted.set(piece) {
            self.cursor = self.cursor.min(piece as usize / 64);
        }
    }

    fn set_deadline(&mut self, _piece: u32, _deadline_ms: Option<u64>) {}

    fn pick(&mut self, _peer: PeerKey, peer_has: &Bitfield) -> Option<u32> {
        let words = self.wanted.word_count();
        while self.cursor < words && self.wanted.word(self.cursor) == 0 {
            self.cursor += 1;
        }
        let piece = (self.cursor..words).find_map(|w| {
            let both = self.wanted.word(w) & peer_has.word(w);
            (both != 0).then(|| w as u32 * 64 + both.leading_zeros())
        })?;
        self.wanted.clear(piece);
        Some(piece)
    }
}

rivulet_core::export_picker!(Sequential, "sequential", env!("CARGO_PKG_VERSION"));
