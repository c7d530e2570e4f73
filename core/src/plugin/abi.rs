//! The C ABI between the engine and a plugin shared library.
//!
//! A plugin library exports one symbol, a static [`descriptor::PluginDescriptor`] named
//! [`descriptor::DESCRIPTOR_SYMBOL`]: ABI version, kind, layout fingerprint, name, version, URL
//! schemes (trackers) and a pointer to the kind's table of `extern "C"` functions over an
//! opaque handle ([`picker::PickerVTable`], [`storage::StorageVTable`],
//! [`tracker::TrackerVTable`]). Only integers, pointers with lengths and `#[repr(C)]` structs
//! cross. Every plugin-side function runs the plugin's code under `catch_unwind`: a panic comes
//! back as [`fault::STATUS_PANIC`] and the host poisons that instance. Plugin authors write none
//! of this: they call [`crate::export_picker!`], [`crate::export_storage!`] or
//! [`crate::export_tracker!`], and each table is generated from its trait's method list
//! ([`table`]).
//!
//! # What the stamp guarantees
//!
//! A library loads if and only if its descriptor carries this host's
//! [`descriptor::ABI_VERSION`] and, for its kind, this host's layout fingerprint. Nothing else
//! is compared: not the rivulet-core version a plugin was built against, not the compiler. So a
//! plugin keeps loading across rivulet releases for as long as its kind's boundary is unchanged.
//!
//! - The fingerprint ([`descriptor::fingerprint`]) is computed at compile time from the kind's
//!   method list as written (a changed, added, removed or reordered method changes it, without
//!   anyone remembering to) and from the size and alignment of every `#[repr(C)]` type its calls
//!   pass. Each kind has its own, so changing the tracker table does not refuse pickers.
//! - `ABI_VERSION` is bumped by hand for what the fingerprint cannot see: a call that keeps its
//!   shape but changes meaning (a new status code a plugin may return, a different encoding in
//!   the same layout, a changed contract of a trait method).
//! - Both are read from the library file before it is loaded, so the code of an incompatible
//!   library never runs (see [`crate::plugin::loader`]), and checked again on the loaded
//!   descriptor.

pub mod descriptor;
pub mod export;
pub mod fault;
pub mod picker;
pub mod raw;
pub mod storage;
mod table;
pub mod tracker;
pub mod wire;
