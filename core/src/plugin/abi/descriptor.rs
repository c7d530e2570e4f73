//! The one symbol a plugin library exports: a static [`PluginDescriptor`], whose first fields
//! (ABI version, kind, layout fingerprint) hold no pointers, so the host reads them straight from
//! the file before it lets the library's code run (see [`crate::plugin::loader`]).

use std::ffi::c_void;
use std::mem::{align_of, size_of};

use crate::plugin::abi::fault::ErrorOut;
use crate::plugin::abi::raw::RawSlice;

/// Version of this boundary's conventions; bumped by hand when a call keeps its shape but changes
/// meaning. Shape changes are caught by the fingerprint on their own.
pub const ABI_VERSION: u32 = 2;

/// The name of the exported [`PluginDescriptor`] static.
pub const DESCRIPTOR_SYMBOL: &str = "rivulet_plugin_descriptor";

pub const KIND_PICKER: u32 = 1;
pub const KIND_STORAGE: u32 = 2;
pub const KIND_TRACKER: u32 = 3;

/// What a plugin library exports under [`DESCRIPTOR_SYMBOL`], in its static memory.
#[repr(C)]
#[derive(Debug)]
pub struct PluginDescriptor {
    /// Stays the first field in every ABI version.
    pub abi_version: u32,
    /// [`KIND_PICKER`], [`KIND_STORAGE`] or [`KIND_TRACKER`].
    pub kind: u32,
    /// [`fingerprint`] of the kind's method list and the layout of what crosses.
    pub fingerprint: u64,
    pub name: RawSlice,
    pub version: RawSlice,
    /// Lower-case URL schemes a tracker handles, e.g. "http"; empty for other kinds.
    pub schemes: *const RawSlice,
    pub schemes_len: usize,
    /// The kind's table: `*const PickerVTable`, `*const StorageVTable` or `*const TrackerVTable`.
    pub vtable: *const c_void,
}

// SAFETY: a descriptor is immutable static data pointing at other immutable static data.
unsafe impl Sync for PluginDescriptor {}

impl PluginDescriptor {
    /// The descriptor the export macros put in a plugin; `vtable` points at a static table.
    pub const fn new(
        kind: u32,
        fingerprint: u64,
        name: &'static str,
        version: &'static str,
        schemes: &'static [RawSlice],
        vtable: *const c_void,
    ) -> Self {
        PluginDescriptor {
            abi_version: ABI_VERSION,
            kind,
            fingerprint,
            name: RawSlice::from_static(name),
            version: RawSlice::from_static(version),
            schemes: schemes.as_ptr(),
            schemes_len: schemes.len(),
            vtable,
        }
    }
}

/// Size and alignment of a type that crosses.
pub const fn shape<T>() -> (usize, usize) {
    (size_of::<T>(), align_of::<T>())
}

/// The types every kind's calls use.
const COMMON: [(usize, usize); 3] = [
    shape::<PluginDescriptor>(),
    shape::<RawSlice>(),
    shape::<ErrorOut>(),
];

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0100_0000_01b3;

/// FNV-1a over a kind's method list as written (whitespace skipped, so that how a compiler
/// spaces `stringify!` output does not matter), then the shapes of the common types and of the
/// kind's own `layouts`. Adding, removing, renaming or retyping a method or a field changes it.
pub const fn fingerprint(methods: &str, layouts: &[(usize, usize)]) -> u64 {
    let mut hash = FNV_OFFSET;
    let text = methods.as_bytes();
    let mut i = 0;
    while i < text.len() {
        if !text[i].is_ascii_whitespace() {
            hash = (hash ^ text[i] as u64).wrapping_mul(FNV_PRIME);
        }
        i += 1;
    }
    hash = mix(hash, &COMMON);
    mix(hash, layouts)
}

const fn mix(mut hash: u64, layouts: &[(usize, usize)]) -> u64 {
    let mut i = 0;
    while i < layouts.len() {
        let (size, align) = layouts[i];
        let mut word = ((size as u64) << 16) | align as u64;
        let mut b = 0;
        while b < 8 {
            hash = (hash ^ (word & 0xff)).wrapping_mul(FNV_PRIME);
            word >>= 8;
            b += 1;
        }
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_ignores_spacing_but_not_a_changed_method_or_layout() {
        let base = fingerprint("fn pick(&mut self, peer: u32) -> Option<u32>;", &[(8, 4)]);
        assert_eq!(
            base,
            fingerprint("fn pick(& mut self,peer:u32)->Option<u32>;", &[(8, 4)])
        );
        assert_ne!(
            base,
            fingerprint("fn pick(&mut self, peer: u64) -> Option<u32>;", &[(8, 4)])
        );
        assert_ne!(
            base,
            fingerprint("fn pick(&mut self, peer: u32) -> Option<u32>;", &[(12, 4)])
        );
    }
}
