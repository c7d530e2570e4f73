//! A picker that answers every pick with a piece index past the end of the torrent.

use rivulet_core::bitfield::Bitfield;
use rivulet_core::plugin::{PeerKey, PiecePicker};

#[derive(Default)]
pub struct LiarPicker {
    pieces: u32,
}

impl PiecePicker for LiarPicker {
    fn init(&mut self, pieces: u32, _: &Bitfield) {
        self.pieces = pieces;
    }
    fn peer_bitfield(&mut self, _: PeerKey, _: &Bitfield) {}
    fn peer_have(&mut self, _: PeerKey, _: u32) {}
    fn peer_left(&mut self, _: PeerKey) {}
    fn piece_verified(&mut self, _: u32) {}
    fn piece_lost(&mut self, _: u32) {}
    fn set_deadline(&mut self, _: u32, _: Option<u64>) {}
    fn pick(&mut self, _: PeerKey, _: &Bitfield) -> Option<u32> {
        Some(self.pieces + 1000)
    }
}

rivulet_core::export_picker!(LiarPicker, "liar", "0.0.1");
