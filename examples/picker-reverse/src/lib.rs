//! A third-party piece picker: asks each peer for the highest-index piece it has that we still
//! want. Useful for little beyond showing how a plugin is written (see README.md); a real picker
//! keeps per-piece availability and deadlines.

mod picker;

pub use picker::ReversePicker;

rivulet_core::export_picker!(ReversePicker, "reverse", env!("CARGO_PKG_VERSION"));
