//! A picker that panics on its first pick.

use rivulet_core::bitfield::Bitfield;
use rivulet_core::plugin::{PeerKey, PiecePicker};

#[derive(Default)]
pub struct PanickyPicker;

impl PiecePicker for PanickyPicker {
    fn init(&mut self, _: u32, _: &Bitfield) {}
    fn pick(&mut self, _: PeerKey) -> Option<u32> {
        panic!("panicky picker refuses to pick")
    }
}

rivulet_core::export_picker!(PanickyPicker, "panicky", "0.0.1");
