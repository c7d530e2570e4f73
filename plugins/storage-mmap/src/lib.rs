//! Disk storage: the torrent's files under a root directory, sparse until written, read through
//! memory maps (memmap2), written with pwrite so that a full disk is an error and not a crash.
//!
//! Existing files of the right length are reused as they are, which is what makes resuming work;
//! files of the wrong length are cut or extended to it.

mod file;
mod path;

use rivulet_core::plugin::{Storage, StorageError, StorageOpen, StorageSpec};

use crate::file::DiskFile;

pub struct MmapStorage {
    files: Vec<DiskFile>,
}

impl MmapStorage {
    /// Creates (or reopens) every file of `spec` under `spec.root`, with its parent folders.
    pub fn open(spec: &StorageSpec) -> Result<Self, StorageError> {
        let files = spec
            .files
            .iter()
            .map(|(rel, len)| {
                path::check_relative(rel)?;
                DiskFile::open(spec.root.join(rel), *len)
            })
            .collect::<Result<_, _>>()?;
        Ok(MmapStorage { files })
    }

    fn file(&self, file: usize, offset: u64, len: usize) -> Result<&DiskFile, StorageError> {
        self.files.get(file).ok_or(StorageError::OutOfRange {
            file,
            offset,
            len: len as u64,
        })
    }
}

impl Storage for MmapStorage {
    fn write(&self, file: usize, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        self.file(file, offset, data.len())?
            .write(file, offset, data)
    }

    fn read(&self, file: usize, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        self.file(file, offset, buf.len())?.read(file, offset, buf)
    }

    fn flush(&self) -> Result<(), StorageError> {
        // Every file gets its sync even if an earlier one failed; the first error is reported.
        let results: Vec<_> = self.files.iter().map(DiskFile::flush).collect();
        results.into_iter().collect()
    }

    fn persistent(&self) -> bool {
        true
    }

    fn has_data(&self, file: usize, offset: u64, len: u64) -> bool {
        self.files
            .get(file)
            .is_some_and(|f| f.has_data(offset, len))
    }
}

impl StorageOpen for MmapStorage {
    fn open(spec: &StorageSpec) -> Result<Self, StorageError> {
        MmapStorage::open(spec)
    }
}

rivulet_core::export_storage!(MmapStorage, "mmap", env!("CARGO_PKG_VERSION"));
