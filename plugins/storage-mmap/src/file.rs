//! One torrent file on disk: created sparse at its length, read through a map, written with
//! pwrite.
//!
//! Writing through a shared map of a sparse file on a full disk raises SIGBUS and kills the
//! process; pwrite reports ENOSPC as an error instead, and on Linux the map sees pwrite's data at
//! once (one page cache).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use memmap2::Mmap;
use rivulet_core::plugin::StorageError;

pub(crate) struct DiskFile {
    path: PathBuf,
    file: File,
    len: u64,
    /// `None` for an empty file, which cannot be mapped.
    map: Option<Mmap>,
    /// Written since the last flush.
    dirty: AtomicBool,
}

impl DiskFile {
    /// Opens or creates `path` with exactly `len` bytes, keeping existing data (resume).
    pub(crate) fn open(path: PathBuf, len: u64) -> Result<Self, StorageError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| StorageError::io(parent, e))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| StorageError::io(&path, e))?;
        let found = file
            .metadata()
            .map_err(|e| StorageError::io(&path, e))?
            .len();
        if found != len {
            if found != 0 {
                tracing::info!(path = %path.display(), found, len, "fixing file length");
            }
            file.set_len(len).map_err(|e| StorageError::io(&path, e))?;
        }
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the map is read-only and the file is sized above. Another process
            // truncating the file under us would make reads past its new end fault; that is
            // outside what the engine can guard against, like any program using mmap.
            Some(unsafe { Mmap::map(&file) }.map_err(|e| StorageError::io(&path, e))?)
        };
        Ok(DiskFile {
            path,
            file,
            len,
            map,
            dirty: AtomicBool::new(false),
        })
    }

    fn check_range(&self, file: usize, offset: u64, len: usize) -> Result<(), StorageError> {
        let len = len as u64;
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(StorageError::OutOfRange { file, offset, len }),
        }
    }

    pub(crate) fn read(
        &self,
        file: usize,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<(), StorageError> {
        self.check_range(file, offset, buf.len())?;
        if buf.is_empty() {
            return Ok(());
        }
        let map = self.map.as_deref().unwrap_or_default();
        let start = offset as usize;
        buf.copy_from_slice(&map[start..start + buf.len()]);
        Ok(())
    }

    pub(crate) fn write(&self, file: usize, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        self.check_range(file, offset, data.len())?;
        if data.is_empty() {
            return Ok(());
        }
        let written = self.file.write_all_at(data, offset);
        // Marked after the write, so that a concurrent flush that misses it leaves it dirty.
        self.dirty.store(true, Ordering::Release);
        written.map_err(|e| StorageError::io(&self.path, e))
    }

    /// Whether `offset..offset+len` may hold written data: false only if the file system says
    /// the whole range is a hole (never written in this sparse file).
    pub(crate) fn has_data(&self, offset: u64, len: u64) -> bool {
        use std::os::fd::AsRawFd;
        if len == 0 || offset >= self.len {
            return false;
        }
        // SAFETY: lseek on a descriptor we own; it does not touch memory.
        let next = unsafe {
            libc::lseek(
                self.file.as_raw_fd(),
                offset as libc::off_t,
                libc::SEEK_DATA,
            )
        };
        if next < 0 {
            // ENXIO: no data at or after offset. Anything else (no SEEK_DATA support): assume data.
            return std::io::Error::last_os_error().raw_os_error() != Some(libc::ENXIO);
        }
        (next as u64) < offset + len
    }

    /// fdatasync if anything was written since the last flush.
    pub(crate) fn flush(&self) -> Result<(), StorageError> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        self.file.sync_data().map_err(|e| {
            self.dirty.store(true, Ordering::Release);
            StorageError::io(&self.path, e)
        })
    }
}
