//! The plain C types every table shares: an opaque instance handle, a status code and borrowed
//! runs of bytes.

use std::ffi::c_void;

/// A plugin instance as the host sees it: a pointer only the plugin dereferences.
pub type Handle = *mut c_void;

/// What every call returns; `fault::STATUS_*`.
pub type Status = i32;

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

/// A buffer the host lends the plugin to fill during one call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawSliceMut {
    pub ptr: *mut u8,
    pub len: usize,
}
