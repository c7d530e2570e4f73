//! Disk storage: the torrent's files under a root directory, each created sparse when it is
//! first written, read with pread and written with pwrite through a bounded set of open
//! descriptors.
//!
//! Nothing is created or changed by opening the storage or by reading: existing files are read
//! as they are (resume, seeding read-only data), and a range a file does not hold is
//! [`StorageError::Missing`]. The plugin keeps its name `mmap` (users select it with
//! `--storage mmap`) although it no longer maps files: see [`file`] for why.

mod file;
mod handles;
mod path;

use std::sync::atomic::{AtomicBool, Ordering};

use rivulet_core::plugin::{Storage, StorageError, StorageOpen, StorageSpec};

use crate::file::DiskFile;
use crate::handles::Handles;

pub struct MmapStorage {
    files: Vec<DiskFile>,
    handles: Handles,
    /// Set by the first write. The empty files, which no write reaches, are created by the
    /// first flush after it, so that a download yields them but reading never does.
    wrote: AtomicBool,
    empties_created: AtomicBool,
}

impl MmapStorage {
    /// Checks every path of `spec`; touches no file.
    pub fn open(spec: &StorageSpec) -> Result<Self, StorageError> {
        let files = spec
            .files
            .iter()
            .map(|(rel, len)| {
                path::check_relative(rel)?;
                Ok(DiskFile::new(spec.root.join(rel), *len))
            })
            .collect::<Result<_, _>>()?;
        Ok(MmapStorage {
            files,
            handles: Handles::new(),
            wrote: AtomicBool::new(false),
            empties_created: AtomicBool::new(false),
        })
    }

    fn file(&self, file: usize, offset: u64, len: usize) -> Result<&DiskFile, StorageError> {
        let f = self.files.get(file).ok_or(StorageError::OutOfRange {
            file,
            offset,
            len: len as u64,
        })?;
        f.check_range(file, offset, len)?;
        Ok(f)
    }
}

impl Storage for MmapStorage {
    fn write(&self, file: usize, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        let f = self.file(file, offset, data.len())?;
        if data.is_empty() {
            return Ok(());
        }
        self.wrote.store(true, Ordering::Release);
        f.write(&*self.handles.writable(file, f)?, offset, data)
    }

    fn read(&self, file: usize, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        let f = self.file(file, offset, buf.len())?;
        if buf.is_empty() {
            return Ok(());
        }
        f.read(&*self.handles.readable(file, f)?, offset, buf)
    }

    fn flush(&self) -> Result<(), StorageError> {
        // Every file gets its sync even if an earlier one failed; the first error is reported.
        let mut first_error = None;
        let create_empties = self.wrote.load(Ordering::Acquire)
            && !self.empties_created.swap(true, Ordering::AcqRel);
        for (index, f) in self.files.iter().enumerate() {
            let mut result = f.flush(|| self.handles.readable(index, f));
            if create_empties && f.len() == 0 {
                result = result.and(f.create_if_absent());
            }
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        if create_empties && first_error.is_some() {
            self.empties_created.store(false, Ordering::Release);
        }
        first_error.map_or(Ok(()), Err)
    }

    fn persistent(&self) -> bool {
        true
    }

    fn has_data(&self, file: usize, offset: u64, len: u64) -> bool {
        let Some(f) = self.files.get(file) else {
            return false;
        };
        self.handles
            .readable(file, f)
            .is_ok_and(|fd| f.has_data(&fd, offset, len))
    }
}

impl StorageOpen for MmapStorage {
    fn open(spec: &StorageSpec) -> Result<Self, StorageError> {
        MmapStorage::open(spec)
    }
}

rivulet_core::export_storage!(MmapStorage, "mmap", env!("CARGO_PKG_VERSION"));
