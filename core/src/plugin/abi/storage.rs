//! A [`Storage`] backend across the boundary: the C table, the plugin-side functions that fill it
//! for any `T: StorageOpen`, and [`DynStorage`], the host-side backend that calls through it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::fault::{Poison, guard};
use super::*;
use crate::plugin::registry::StorageOpen;
use crate::plugin::{Storage, StorageError, StorageSpec};

type Status = i32;

/// One file of a [`StorageSpecRef`]: its path relative to the root (raw bytes) and its length.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FileEntry {
    pub path: RawSlice,
    pub length: u64,
}

/// A [`StorageSpec`] borrowed for the `open` call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct StorageSpecRef {
    pub root: RawSlice,
    pub files: *const FileEntry,
    pub files_len: usize,
    pub piece_length: u64,
    pub memory_limit: u64,
}

fn path_bytes(p: &Path) -> RawSlice {
    RawSlice::borrow(p.as_os_str().as_bytes())
}

/// # Safety
/// Every pointer in `spec` must be valid for the call.
unsafe fn to_spec(spec: *const StorageSpecRef) -> Result<StorageSpec, Fault> {
    // SAFETY: guaranteed by the caller.
    let spec = unsafe { spec.as_ref() }.ok_or_else(|| Fault::invalid("null storage spec"))?;
    let files: &[FileEntry] = if spec.files.is_null() || spec.files_len == 0 {
        &[]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(spec.files, spec.files_len) }
    };
    let owned = |raw: RawSlice| {
        // SAFETY: guaranteed by the caller.
        PathBuf::from(OsStr::from_bytes(unsafe { raw.as_bytes() }))
    };
    Ok(StorageSpec {
        root: owned(spec.root),
        files: files.iter().map(|f| (owned(f.path), f.length)).collect(),
        piece_length: spec.piece_length,
        memory_limit: spec.memory_limit,
    })
}

/// One entry per [`Storage`] method, plus open/destroy; see [`super::picker::PickerVTable`] for
/// the conventions.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct StorageVTable {
    pub open: Option<
        unsafe extern "C" fn(
            spec: *const StorageSpecRef,
            out: *mut Handle,
            err: *mut ErrorOut,
        ) -> Status,
    >,
    pub destroy: Option<unsafe extern "C" fn(h: Handle)>,
    pub write: Option<
        unsafe extern "C" fn(
            h: Handle,
            file: usize,
            offset: u64,
            data: *const u8,
            len: usize,
            err: *mut ErrorOut,
        ) -> Status,
    >,
    pub read: Option<
        unsafe extern "C" fn(
            h: Handle,
            file: usize,
            offset: u64,
            buf: *mut u8,
            len: usize,
            err: *mut ErrorOut,
        ) -> Status,
    >,
    pub flush: Option<unsafe extern "C" fn(h: Handle, err: *mut ErrorOut) -> Status>,
    /// Sets `*persistent` to 1 or 0.
    pub persistent:
        Option<unsafe extern "C" fn(h: Handle, persistent: *mut u8, err: *mut ErrorOut) -> Status>,
    /// Sets `*has` to 1 if `len` bytes at `offset` of file `file` may hold written data, else 0.
    pub has_data: Option<
        unsafe extern "C" fn(
            h: Handle,
            file: usize,
            offset: u64,
            len: u64,
            has: *mut u8,
            err: *mut ErrorOut,
        ) -> Status,
    >,
}

impl StorageVTable {
    /// The table for `T`, instantiated in the plugin crate by [`crate::export_storage!`].
    pub const fn of<T: StorageOpen>() -> Self {
        StorageVTable {
            open: Some(open::<T>),
            destroy: Some(destroy_instance::<T>),
            write: Some(write::<T>),
            read: Some(read::<T>),
            flush: Some(flush::<T>),
            persistent: Some(persistent::<T>),
            has_data: Some(has_data::<T>),
        }
    }

    /// The same table with every entry checked present, or `None` if one is missing.
    pub fn check(&self) -> Option<StorageFns> {
        Some(StorageFns {
            open: self.open?,
            destroy: self.destroy?,
            write: self.write?,
            read: self.read?,
            flush: self.flush?,
            persistent: self.persistent?,
            has_data: self.has_data?,
        })
    }
}

/// A [`StorageVTable`] known to be complete.
#[derive(Clone, Copy, Debug)]
pub struct StorageFns {
    open: unsafe extern "C" fn(*const StorageSpecRef, *mut Handle, *mut ErrorOut) -> Status,
    destroy: unsafe extern "C" fn(Handle),
    write: unsafe extern "C" fn(Handle, usize, u64, *const u8, usize, *mut ErrorOut) -> Status,
    read: unsafe extern "C" fn(Handle, usize, u64, *mut u8, usize, *mut ErrorOut) -> Status,
    flush: unsafe extern "C" fn(Handle, *mut ErrorOut) -> Status,
    persistent: unsafe extern "C" fn(Handle, *mut u8, *mut ErrorOut) -> Status,
    has_data: unsafe extern "C" fn(Handle, usize, u64, u64, *mut u8, *mut ErrorOut) -> Status,
}

// SAFETY (all entries below): the host passes a handle from `open`, buffers valid for their
// lengths, and a valid ErrorOut.
unsafe extern "C" fn open<T: StorageOpen>(
    spec: *const StorageSpecRef,
    out: *mut Handle,
    err: *mut ErrorOut,
) -> Status {
    unsafe { guard(err, || hand_out(out, T::open(&to_spec(spec)?)?)) }
}

unsafe extern "C" fn write<T: StorageOpen>(
    h: Handle,
    file: usize,
    offset: u64,
    data: *const u8,
    len: usize,
    err: *mut ErrorOut,
) -> Status {
    unsafe {
        guard(err, || {
            let data = RawSlice { ptr: data, len }.as_bytes();
            Ok(instance::<T>(h)?.write(file, offset, data)?)
        })
    }
}

unsafe extern "C" fn read<T: StorageOpen>(
    h: Handle,
    file: usize,
    offset: u64,
    buf: *mut u8,
    len: usize,
    err: *mut ErrorOut,
) -> Status {
    unsafe {
        guard(err, || {
            let buf: &mut [u8] = if buf.is_null() || len == 0 {
                &mut []
            } else {
                std::slice::from_raw_parts_mut(buf, len)
            };
            Ok(instance::<T>(h)?.read(file, offset, buf)?)
        })
    }
}

unsafe extern "C" fn flush<T: StorageOpen>(h: Handle, err: *mut ErrorOut) -> Status {
    unsafe { guard(err, || Ok(instance::<T>(h)?.flush()?)) }
}

unsafe extern "C" fn persistent<T: StorageOpen>(
    h: Handle,
    persistent: *mut u8,
    err: *mut ErrorOut,
) -> Status {
    unsafe {
        guard(err, || {
            if persistent.is_null() {
                return Err(Fault::invalid("null out-pointer for persistent"));
            }
            persistent.write(u8::from(instance::<T>(h)?.persistent()));
            Ok(())
        })
    }
}

unsafe extern "C" fn has_data<T: StorageOpen>(
    h: Handle,
    file: usize,
    offset: u64,
    len: u64,
    has: *mut u8,
    err: *mut ErrorOut,
) -> Status {
    unsafe {
        guard(err, || {
            if has.is_null() {
                return Err(Fault::invalid("null out-pointer for has_data"));
            }
            has.write(u8::from(instance::<T>(h)?.has_data(file, offset, len)));
            Ok(())
        })
    }
}

/// A storage backend living in a plugin library. After a panic the instance is poisoned and every
/// call fails with [`StorageError::Other`] without reaching the plugin.
pub struct DynStorage {
    fns: StorageFns,
    handle: Handle,
    poison: Poison,
    name: Arc<str>,
    /// Keeps the code behind `fns` mapped; dropped after `handle` is destroyed.
    _library: Option<Arc<libloading::Library>>,
}

// SAFETY: the handle is a `T: Storage` (which is `Send + Sync`) created by the plugin, and every
// entry takes it by shared reference, as the trait does.
unsafe impl Send for DynStorage {}
unsafe impl Sync for DynStorage {}

impl DynStorage {
    /// Opens a backend through `fns`; `library` as for [`super::picker::DynPicker::create`].
    pub fn open(
        fns: StorageFns,
        name: Arc<str>,
        library: Option<Arc<libloading::Library>>,
        spec: &StorageSpec,
    ) -> Result<Self, StorageError> {
        let files: Vec<FileEntry> = spec
            .files
            .iter()
            .map(|(path, length)| FileEntry {
                path: path_bytes(path),
                length: *length,
            })
            .collect();
        let spec_ref = StorageSpecRef {
            root: path_bytes(&spec.root),
            files: files.as_ptr(),
            files_len: files.len(),
            piece_length: spec.piece_length,
            memory_limit: spec.memory_limit,
        };
        let poison = Poison::default();
        let mut handle: Handle = std::ptr::null_mut();
        // SAFETY: complete table; `spec_ref` and what it points to outlive the call.
        poison
            .call(&name, |err| unsafe {
                (fns.open)(&spec_ref, &mut handle, err)
            })
            .map_err(|f| f.into_storage_error(&name))?;
        if handle.is_null() {
            return Err(StorageError::Other(format!(
                "storage plugin '{name}': open returned no instance"
            )));
        }
        Ok(DynStorage {
            fns,
            handle,
            poison,
            name,
            _library: library,
        })
    }

    /// Why this instance was disabled, if a call panicked.
    pub fn poisoned(&self) -> Option<&str> {
        self.poison.reason()
    }

    fn call(&self, f: impl FnOnce(Handle, *mut ErrorOut) -> Status) -> Result<(), StorageError> {
        let h = self.handle;
        self.poison
            .call(&self.name, |err| f(h, err))
            .map_err(|fault| fault.into_storage_error(&self.name))
    }
}

// SAFETY (every call below): live handle, complete table, buffers valid for their lengths.
impl Storage for DynStorage {
    fn write(&self, file: usize, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        let f = self.fns.write;
        self.call(|h, err| unsafe { f(h, file, offset, data.as_ptr(), data.len(), err) })
    }

    fn read(&self, file: usize, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        let f = self.fns.read;
        self.call(|h, err| unsafe { f(h, file, offset, buf.as_mut_ptr(), buf.len(), err) })
    }

    fn flush(&self) -> Result<(), StorageError> {
        let f = self.fns.flush;
        self.call(|h, err| unsafe { f(h, err) })
    }

    fn persistent(&self) -> bool {
        let (f, mut persistent) = (self.fns.persistent, 0u8);
        match self.call(|h, err| unsafe { f(h, &mut persistent, err) }) {
            Ok(()) => persistent != 0,
            // Claiming nothing survives is the safe answer: the engine will not resume from it.
            Err(_) => false,
        }
    }

    fn has_data(&self, file: usize, offset: u64, len: u64) -> bool {
        let (f, mut has) = (self.fns.has_data, 1u8);
        match self.call(|h, err| unsafe { f(h, file, offset, len, &mut has, err) }) {
            Ok(()) => has != 0,
            // "May hold data" is the safe answer: the engine then hashes the piece to find out.
            Err(_) => true,
        }
    }
}

impl Drop for DynStorage {
    fn drop(&mut self) {
        if self.poison.reason().is_none() {
            // SAFETY: the handle is live and never used again.
            unsafe { (self.fns.destroy)(self.handle) };
        }
    }
}
