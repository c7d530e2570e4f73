//! Disk storage: the torrent's files under a root directory, each created sparse when it is
//! first written, read with pread and written with pwrite through a bounded set of open
//! descriptors. What the page cache holds can also be read without waiting (`read_cached`),
//! so the engine serves it on an async thread.
//!
//! Nothing is created or changed by opening the storage or by reading: existing files are read
//! as they are (resume, seeding read-only data), and a range a file does not hold is
//! [`StorageError::Missing`]. The plugin keeps its name `mmap` (users select it with
//! `--storage mmap`) although it no longer maps files: see [`file`] for why.

mod file;
mod handles;
mod path;

use std::sync::{Mutex, PoisonError};

use rivulet_core::plugin::{Storage, StorageError, StorageOpen, StorageSpec};

use crate::file::DiskFile;
use crate::handles::Handles;

pub struct MmapStorage {
    files: Vec<DiskFile>,
    handles: Handles,
    /// Whether the empty files, which no write reaches, were created. That happens at the first
    /// write, so that a download has them before any piece is complete, and reading never
    /// creates them.
    empties_created: Mutex<bool>,
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
            empties_created: Mutex::new(false),
        })
    }

    fn create_empty_files(&self) -> Result<(), StorageError> {
        // Nothing in it can be left half-updated: a later write tries again.
        let mut created = self
            .empties_created
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !*created {
            for f in self.files.iter().filter(|f| f.len() == 0) {
                f.create_if_absent()?;
            }
            *created = true;
        }
        Ok(())
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
        self.create_empty_files()?;
        f.write(&*self.handles.writable(file, f)?, offset, data)
    }

    fn read(&self, file: usize, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        let f = self.file(file, offset, buf.len())?;
        if buf.is_empty() {
            return Ok(());
        }
        f.read(&*self.handles.readable(file, f)?, offset, buf)
    }

    fn read_cached(&self, file: usize, offset: u64, buf: &mut [u8]) -> bool {
        let Ok(f) = self.file(file, offset, buf.len()) else {
            return false;
        };
        buf.is_empty()
            || self
                .handles
                .open_already(file)
                .is_some_and(|fd| f.read_cached(&fd, offset, buf))
    }

    fn flush(&self) -> Result<(), StorageError> {
        // Every file gets its sync even if an earlier one failed; the first error is reported.
        let mut first_error = None;
        for (index, f) in self.files.iter().enumerate() {
            if let Err(e) = f.flush(|| self.handles.readable(index, f)) {
                first_error.get_or_insert(e);
            }
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
