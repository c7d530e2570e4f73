//! A [`Storage`] backend across the boundary: its method list, from which [`abi_table!`] makes
//! the C table, the plugin-side shims and [`DynStorage`]; and how a [`StorageSpec`] crosses.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::plugin::abi::descriptor::KIND_STORAGE;
use crate::plugin::abi::fault::Fault;
use crate::plugin::abi::raw::{RawSlice, RawSliceMut};
use crate::plugin::abi::table::abi_table;
use crate::plugin::abi::wire::Arg;
use crate::plugin::storage::{Storage, StorageError, StorageOpen, StorageSpec};

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

/// The host keeps the file entries alive next to the spec that points at them.
impl Arg for &StorageSpec {
    type Raw = *const StorageSpecRef;
    type Lowered = (Vec<FileEntry>, StorageSpecRef);
    type Lifted = StorageSpec;
    type Rebuilt<'l>
        = &'l StorageSpec
    where
        Self: 'l;

    fn lower(self) -> Self::Lowered {
        let files: Vec<FileEntry> = self
            .files
            .iter()
            .map(|(path, length)| FileEntry {
                path: path_bytes(path),
                length: *length,
            })
            .collect();
        let spec = StorageSpecRef {
            root: path_bytes(&self.root),
            files: files.as_ptr(),
            files_len: files.len(),
            piece_length: self.piece_length,
            memory_limit: self.memory_limit,
        };
        (files, spec)
    }
    fn raw(lowered: &Self::Lowered) -> *const StorageSpecRef {
        &lowered.1
    }
    unsafe fn lift(raw: *const StorageSpecRef) -> Result<StorageSpec, Fault> {
        // SAFETY: the host keeps the spec and what it points at alive for the call.
        let spec = unsafe { raw.as_ref() }.ok_or_else(|| Fault::invalid("null storage spec"))?;
        let files: &[FileEntry] = if spec.files.is_null() || spec.files_len == 0 {
            &[]
        } else {
            // SAFETY: as above.
            unsafe { std::slice::from_raw_parts(spec.files, spec.files_len) }
        };
        // SAFETY: as above.
        let owned = |raw: RawSlice| PathBuf::from(OsStr::from_bytes(unsafe { raw.as_bytes() }));
        Ok(StorageSpec {
            root: owned(spec.root),
            files: files.iter().map(|f| (owned(f.path), f.length)).collect(),
            piece_length: spec.piece_length,
            memory_limit: spec.memory_limit,
        })
    }
    unsafe fn rebuilt(lifted: &mut StorageSpec) -> &StorageSpec {
        lifted
    }
}

abi_table! {
    /// One entry per [`Storage`] method, plus open/destroy.
    table StorageVTable(KIND_STORAGE, "storage"), complete StorageFns;
    /// A storage backend living in a plugin library. After a panic the instance is poisoned and
    /// every call fails with [`StorageError::Plugin`] without reaching the plugin.
    host DynStorage: Storage, Send, Sync;
    plugin [T: StorageOpen];
    wire [StorageSpecRef, FileEntry, RawSliceMut];
    new open(spec: &StorageSpec) -> StorageError = T::open(spec);
    state () = ();
    methods {
        fn write(&self, file: usize, offset: u64, data: &[u8]) -> Result<(), StorageError>;
        fn read(&self, file: usize, offset: u64, buf: &mut [u8]) -> Result<(), StorageError>;
        // "Not read" is the safe answer: the engine then reads the normal way.
        fn read_cached(&self, file: usize, offset: u64, buf: &mut [u8]) -> bool => false;
        fn flush(&self) -> Result<(), StorageError>;
        // Claiming nothing survives is the safe answer: the engine will not resume from it.
        fn persistent(&self) -> bool => false;
        // "May hold data" is the safe answer: the engine then hashes the piece to find out.
        fn has_data(&self, file: usize, offset: u64, len: u64) -> bool => true;
    }
    host_only {}
}
