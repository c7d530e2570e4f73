//! The picker itself, apart from its export so it can also be compiled into a benchmark.

use rivulet_core::bitfield::Bitfield;
use rivulet_core::plugin::{PeerKey, PiecePicker};

#[derive(Default)]
pub struct ReversePicker {
    /// Pieces we hold or have handed out; neither is picked again until lost.
    taken: Bitfield,
}

impl PiecePicker for ReversePicker {
    fn init(&mut self, pieces: u32, have: &Bitfield) {
        self.taken = Bitfield::new(pieces);
        for p in have.ones() {
            self.taken.set(p);
        }
    }

    // This picker looks only at the bitfield `pick` is given, so peer bookkeeping is not needed.
    fn peer_bitfield(&mut self, _peer: PeerKey, _has: &Bitfield) {}
    fn peer_have(&mut self, _peer: PeerKey, _piece: u32) {}
    fn peer_left(&mut self, _peer: PeerKey) {}

    fn piece_verified(&mut self, piece: u32) {
        self.taken.set(piece);
    }

    fn piece_lost(&mut self, piece: u32) {
        self.taken.clear(piece);
    }

    fn set_deadline(&mut self, _piece: u32, _deadline_ms: Option<u64>) {}

    fn pick(&mut self, _peer: PeerKey, peer_has: &Bitfield) -> Option<u32> {
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
