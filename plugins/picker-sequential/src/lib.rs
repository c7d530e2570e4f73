//! Sequential piece picker: the lowest-index wanted piece the peer has.
//!
//! Wanted pieces (not in progress, not verified) are a bitfield searched 64 pieces at a time from
//! a cursor that stays past the leading words holding nothing wanted, so picking through a
//! download in order is amortised O(1). Peer availability and deadlines do not matter here; what
//! each peer holds is kept only to know what it can give.

use rivulet_core::bitfield::Bitfield;
use rivulet_core::plugin::peer_pieces::PeerPieces;
use rivulet_core::plugin::picker::{PeerKey, PiecePicker};

#[derive(Default)]
pub struct Sequential {
    wanted: Bitfield,
    /// No word before this one holds a wanted piece.
    cursor: usize,
    peers: PeerPieces,
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
        self.peers.reset(pieces);
    }

    fn peer_bitfield(&mut self, peer: PeerKey, has: &Bitfield) {
        self.peers.bitfield(peer, has);
    }

    fn peer_have(&mut self, peer: PeerKey, piece: u32) {
        self.peers.have(peer, piece);
    }

    fn peer_left(&mut self, peer: PeerKey) {
        self.peers.left(peer);
    }

    fn piece_verified(&mut self, piece: u32) {
        self.wanted.clear(piece);
    }

    fn piece_lost(&mut self, piece: u32) {
        if self.wanted.set(piece) {
            self.cursor = self.cursor.min(piece as usize / 64);
        }
    }

    fn pick(&mut self, peer: PeerKey) -> Option<u32> {
        let peer_has = self.peers.get(peer)?;
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
