//! A picker that panics on its first pick.

use rivulet_core::bitfield::Bitfield;
use rivulet_core::plugin::{PeerKey, PiecePicker};

#[derive(Default)]
pub struct PanickyPicker;

impl PiecePicker for PanickyPicker {
    fn init(&mut self, _: u32, _: &Bitfield) {}
    fn peer_bitfield(&mut self, _: PeerKey, _: &Bitfield) {}
    fn peer_have(&mut self, _: PeerKey, _: u32) {}
    fn peer_left(&mut self, _: PeerKey) {}
    fn piece_verified(&mut self, _: u32) {}
    fn piece_lost(&mut self, _: u32) {}
    fn set_deadline(&mut self, _: u32, _: Option<u64>) {}
    fn pick(&mut self, _: PeerKey, _: &Bitfield) -> Option<u32> {
        panic!("panicky picker refuses to pick")
    }
}

rivulet_core::export_picker!(PanickyPicker, "panicky", "0.0.1");
