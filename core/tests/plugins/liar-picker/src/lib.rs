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
    fn pick(&mut self, _: PeerKey) -> Option<u32> {
        Some(self.pieces + 1000)
    }
}

rivulet_core::export_picker!(LiarPicker, "liar", "0.0.1");
