//! The C ABI between the engine and a plugin shared library.
//!
//! A plugin library exports one symbol, [`ENTRY_SYMBOL`], an `extern "C" fn() -> *const
//! PluginDescriptor`. The descriptor's first field is the ABI version, so the host can refuse a
//! library from another ABI before reading anything else; then come a build stamp, the kind, the
//! name and version, and a pointer to the kind's table of `extern "C"` functions over an opaque
//! handle ([`picker::PickerVTable`], [`storage::StorageVTable`], [`tracker::TrackerVTable`]).
//!
//! Only integers, pointers with lengths and `#[repr(C)]` structs cross. Every function the export
//! macros generate runs the plugin's code under `catch_unwind`: a panic comes back as
//! [`STATUS_PANIC`] and the host poisons that instance (see [`fault`]). Plugin authors never
//! write any of this by hand: they call [`crate::export_picker!`], [`crate::export_storage!`] or
//! [`crate::export_tracker!`].

use std::ffi::c_void;

pub mod export;
pub mod fault;
pub mod picker;
pub mod storage;
pub mod tracker;

pub use fault::{ErrorOut, Fault};

/// Version of this boundary; bumped on any change to a `#[repr(C)]` type or table below.
pub const ABI_VERSION: u32 = 1;

/// What a plugin is built against: rivulet-core's major.minor, the ABI version and a fingerprint
/// of the boundary's layout. A plugin built against another stamp is refused even if the ABI
/// number matches: the traits behind the tables may have changed meaning, or (while an ABI
/// version is unreleased) a table may have gained an entry the plugin's copy lacks.
pub const BUILD_STAMP: &str = match std::str::from_utf8(&STAMP_BYTES) {
    Ok(stamp) => stamp,
    Err(_) => panic!("the build stamp is ASCII"),
};

const STAMP_PREFIX: &str = concat!(
    "rivulet-core ",
    env!("CARGO_PKG_VERSION_MAJOR"),
    ".",
    env!("CARGO_PKG_VERSION_MINOR"),
    " abi 1 layout "
);

/// Size and alignment of every `#[repr(C)]` type that crosses the boundary: adding, removing or
/// retyping a table entry or a field changes at least one of them.
const LAYOUT: [(usize, usize); 12] = {
    use std::mem::{align_of, size_of};
    macro_rules! shape {
        ($($t:ty),*) => { [$((size_of::<$t>(), align_of::<$t>())),*] };
    }
    shape!(
        PluginDescriptor,
        RawSlice,
        ErrorOut,
        picker::PickerVTable,
        picker::BitfieldRef,
        storage::StorageVTable,
        storage::StorageSpecRef,
        storage::FileEntry,
        tracker::TrackerVTable,
        tracker::AnnounceRequestRef,
        tracker::PeerAddr,
        tracker::AnnounceResponseOut
    )
};

/// FNV-1a over [`LAYOUT`], as 8 hex digits.
const fn layout_fingerprint() -> [u8; 8] {
    let mut hash: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < LAYOUT.len() {
        let (size, align) = LAYOUT[i];
        let mut word = (size as u64) << 16 | align as u64;
        let mut b = 0;
        while b < 8 {
            hash = (hash ^ (word & 0xff) as u32).wrapping_mul(0x0100_0193);
            word >>= 8;
            b += 1;
        }
        i += 1;
    }
    let mut out = [0u8; 8];
    let mut d = 0;
    while d < 8 {
        let nibble = (hash >> (28 - 4 * d)) & 0xf;
        out[d] = b"0123456789abcdef"[nibble as usize];
        d += 1;
    }
    out
}

const STAMP_BYTES: [u8; STAMP_PREFIX.len() + 8] = {
    let mut out = [0u8; STAMP_PREFIX.len() + 8];
    let prefix = STAMP_PREFIX.as_bytes();
    let fingerprint = layout_fingerprint();
    let mut i = 0;
    while i < out.len() {
        out[i] = if i < prefix.len() {
            prefix[i]
        } else {
            fingerprint[i - prefix.len()]
        };
        i += 1;
    }
    out
};

/// The symbol every plugin library exports.
pub const ENTRY_SYMBOL: &str = "rivulet_plugin_entry";

/// Type of [`ENTRY_SYMBOL`].
pub type EntryFn = unsafe extern "C" fn() -> *const PluginDescriptor;

/// A plugin instance as the host sees it: a pointer only the plugin dereferences.
pub type Handle = *mut c_void;

pub const KIND_PICKER: u32 = 1;
pub const KIND_STORAGE: u32 = 2;
pub const KIND_TRACKER: u32 = 3;

/// Never sent by a plugin: the host's status for a call it refused to make because the instance
/// panicked earlier.
pub const STATUS_POISONED: i32 = -1;
pub const STATUS_OK: i32 = 0;
/// The plugin's code panicked; the message holds the panic payload.
pub const STATUS_PANIC: i32 = 1;
/// The host passed something the plugin cannot use (a null handle, a malformed bitfield).
pub const STATUS_INVALID_ARGUMENT: i32 = 2;
/// The plugin refused, with a message (e.g. a picker that could not be created).
pub const STATUS_FAILED: i32 = 3;
pub const STATUS_STORAGE_IO: i32 = 10;
pub const STATUS_STORAGE_NO_SPACE: i32 = 11;
pub const STATUS_STORAGE_EVICTED: i32 = 12;
pub const STATUS_STORAGE_OUT_OF_RANGE: i32 = 13;
pub const STATUS_STORAGE_OTHER: i32 = 14;
pub const STATUS_STORAGE_MISSING: i32 = 15;
pub const STATUS_TRACKER_FAILURE: i32 = 20;
pub const STATUS_TRACKER_UNREACHABLE: i32 = 21;
pub const STATUS_TRACKER_TIMEOUT: i32 = 22;
pub const STATUS_TRACKER_BAD_REPLY: i32 = 23;
pub const STATUS_TRACKER_UNSUPPORTED: i32 = 24;

/// A borrowed run of bytes: UTF-8 for names and URLs, raw `OsStr` bytes for paths.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawSlice {
    pub ptr: *const u8,
    pub len: usize,
}

// SAFETY: a RawSlice in a static only ever points at immutable `'static` data.
unsafe impl Sync for RawSlice {}

impl RawSlice {
    pub const EMPTY: RawSlice = RawSlice {
        ptr: std::ptr::null(),
        len: 0,
    };

    pub const fn from_static(s: &'static str) -> Self {
        RawSlice {
            ptr: s.as_ptr(),
            len: s.len(),
        }
    }

    /// Borrows `bytes` for the duration of one call across the boundary.
    pub fn borrow(bytes: &[u8]) -> Self {
        RawSlice {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// # Safety
    /// `ptr` must be null or valid for reads of `len` bytes for `'a`.
    pub unsafe fn as_bytes<'a>(self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            // SAFETY: guaranteed by the caller.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }

    /// # Safety
    /// As for [`RawSlice::as_bytes`].
    pub unsafe fn as_str<'a>(self) -> Result<&'a str, std::str::Utf8Error> {
        // SAFETY: guaranteed by the caller.
        std::str::from_utf8(unsafe { self.as_bytes() })
    }
}

/// What [`ENTRY_SYMBOL`] returns a pointer to; lives in the plugin's static memory.
#[repr(C)]
#[derive(Debug)]
pub struct PluginDescriptor {
    /// Stays the first field in every ABI version.
    pub abi_version: u32,
    /// [`KIND_PICKER`], [`KIND_STORAGE`] or [`KIND_TRACKER`].
    pub kind: u32,
    /// [`BUILD_STAMP`] of the rivulet-core the plugin was built against.
    pub build_stamp: RawSlice,
    pub name: RawSlice,
    pub version: RawSlice,
    /// The kind's table: `*const PickerVTable`, `*const StorageVTable` or `*const TrackerVTable`.
    pub vtable: *const c_void,
}

// SAFETY: a descriptor is immutable static data pointing at other immutable static data.
unsafe impl Sync for PluginDescriptor {}

impl PluginDescriptor {
    /// The descriptor the export macros put in a plugin; `vtable` points at a static table.
    pub const fn new(
        kind: u32,
        name: &'static str,
        version: &'static str,
        vtable: *const c_void,
    ) -> Self {
        PluginDescriptor {
            abi_version: ABI_VERSION,
            kind,
            build_stamp: RawSlice::from_static(BUILD_STAMP),
            name: RawSlice::from_static(name),
            version: RawSlice::from_static(version),
            vtable,
        }
    }
}

/// Reads `*const T` out of a host-provided pointer as `&mut T`, refusing null.
///
/// # Safety
/// `handle` must be null or a handle this plugin created for a `T` and not yet destroyed.
unsafe fn instance<'a, T>(handle: Handle) -> Result<&'a mut T, Fault> {
    // SAFETY: guaranteed by the caller.
    unsafe { handle.cast::<T>().as_mut() }.ok_or_else(|| Fault::invalid("null plugin handle"))
}

/// Drops an instance created with `Box::into_raw`; a panicking `Drop` is swallowed since there is
/// nobody left to tell.
///
/// # Safety
/// `handle` must be null or a live handle for a `T`; it is invalid afterwards.
unsafe extern "C" fn destroy_instance<T>(handle: Handle) {
    if handle.is_null() {
        return;
    }
    // SAFETY: guaranteed by the caller; ownership passes back from the host.
    let boxed = unsafe { Box::from_raw(handle.cast::<T>()) };
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(boxed)));
}

/// Stores a freshly created instance into the host's out-pointer.
///
/// # Safety
/// `out` must be null or valid for a write.
unsafe fn hand_out<T>(out: *mut Handle, value: T) -> Result<(), Fault> {
    if out.is_null() {
        return Err(Fault::invalid("null out-pointer for the new handle"));
    }
    // SAFETY: checked non-null; validity guaranteed by the caller.
    unsafe { out.write(Box::into_raw(Box::new(value)).cast()) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_stamp_names_this_abi_version_and_layout() {
        assert!(
            BUILD_STAMP.contains(&format!(" abi {ABI_VERSION} layout ")),
            "{BUILD_STAMP}"
        );
        assert!(BUILD_STAMP.starts_with(&format!(
            "rivulet-core {}.{} ",
            env!("CARGO_PKG_VERSION_MAJOR"),
            env!("CARGO_PKG_VERSION_MINOR")
        )));
        let fingerprint = BUILD_STAMP.rsplit(' ').next().unwrap();
        assert_eq!(fingerprint.len(), 8);
        assert!(fingerprint.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
