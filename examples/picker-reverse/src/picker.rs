//! The picker itself, apart from its export so it can also be compiled into a benchmark.

use rivulet_core::bitfield::Bitfield;
use rivulet_core::plugin::{PeerKey, PeerPieces, PiecePicker};

#[derive(Default)]
pub struct ReversePicker {
    /// Pieces we hold or have handed out; neither is picked again until lost.
    taken: Bitfield,
    /// What each peer holds, kept from its bitfield and haves.
    peers: PeerPieces,
}

impl PiecePicker for ReversePicker {
    fn init(&mut self, pieces: u32, have: &Bitfield) {
        self.taken = Bitfield::new(pieces);
        for p in have.ones() {
            self.taken.set(p);
        }
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
        self.taken.set(piece);
    }

    fn piece_lost(&mut self, piece: u32) {
        self.taken.clear(piece);
    }

    // Deadlines are ignored: `set_deadline` keeps its default, which does nothing.

    fn pick(&mut self, peer: PeerKey) -> Option<u32> {
        let peer_has = self.peers.get(peer)?;
        // Whole bytes first: a peer's bitfield is mostly 0x00 or 0xff, so this skips 8 at a time.
        let taken = self.taken.as_bytes();
        for (i, (&has, &taken)) in peer_has.as_bytes().iter().zip(taken).enumerate().rev() {
            let wanted = has & !taken;
            if wanted != 0 {
                // Bit 0x80 is the lowest piece of the byte, so the lowest set bit is the highest.
                let piece = i as u32 * 8 + (7 - wanted.trailing_zeros());
                self.taken.set(piece);
                return Some(piece);
            }
        }
        None
    }
}
