//! One torrent file on disk: opened read-only to be read, created sparse at its full length only
//! when the first write to it comes, read and written with pread/pwrite.
//!
//! No memory map: a map of a file that another process truncates raises SIGBUS on the next read
//! of the lost range and kills the process; pread returns a short read instead, which becomes
//! [`StorageError::Missing`]. Writing with pwrite likewise turns a full disk into ENOSPC rather
//! than a SIGBUS. An existing file is never cut or extended on open: it may be the user's data
//! (`seed --data` of the wrong folder), possibly read-only.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rivulet_core::plugin::StorageError;

/// Set once a file system refused `RWF_NOWAIT`: every read then takes the blocking path
/// without trying it first.
static NOWAIT_UNSUPPORTED: AtomicBool = AtomicBool::new(false);

pub(crate) struct DiskFile {
    path: PathBuf,
    len: u64,
    /// Written since the last flush.
    dirty: AtomicBool,
}

impl DiskFile {
    pub(crate) fn new(path: PathBuf, len: u64) -> Self {
        DiskFile {
            path,
            len,
            dirty: AtomicBool::new(false),
        }
    }

    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn check_range(
        &self,
        file: usize,
        offset: u64,
        len: usize,
    ) -> Result<(), StorageError> {
        let len = len as u64;
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(StorageError::OutOfRange { file, offset, len }),
        }
    }

    /// The file opened read-only; [`StorageError::Missing`] if it does not exist.
    pub(crate) fn open_existing(&self) -> Result<File, StorageError> {
        match File::open(&self.path) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(StorageError::Missing),
            Err(e) => Err(StorageError::io(&self.path, e)),
        }
    }

    /// The file opened for writing; created (with its folders) at its full length, sparse, if it
    /// does not exist yet. An existing file keeps its length.
    pub(crate) fn open_writable(&self) -> Result<File, StorageError> {
        let io = |e| StorageError::io(&self.path, e);
        match OpenOptions::new().read(true).write(true).open(&self.path) {
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            opened => return opened.map_err(io),
        }
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| StorageError::io(parent, e))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&self.path)
            .map_err(io)?;
        file.set_len(self.len).map_err(io)?;
        Ok(file)
    }

    /// Creates the file unless something exists at its path.
    pub(crate) fn create_if_absent(&self) -> Result<(), StorageError> {
        match self.path.try_exists() {
            Ok(true) => Ok(()),
            Ok(false) => self.open_writable().map(drop),
            Err(e) => Err(StorageError::io(&self.path, e)),
        }
    }

    /// Fills `buf` from `offset`; a file that ends before the range does is
    /// [`StorageError::Missing`].
    pub(crate) fn read(&self, fd: &File, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        fd.read_exact_at(buf, offset).map_err(|e| match e.kind() {
            ErrorKind::UnexpectedEof => StorageError::Missing,
            _ => StorageError::io(&self.path, e),
        })
    }

    /// Fills `buf` from `offset` only if the page cache holds every byte: `preadv2` with
    /// `RWF_NOWAIT` takes what is cached and never waits for the disk. False if `buf` was not
    /// filled (not all cached, past the end, no support on this file system); the caller then
    /// reads with [`DiskFile::read`].
    pub(crate) fn read_cached(&self, fd: &File, offset: u64, buf: &mut [u8]) -> bool {
        if NOWAIT_UNSUPPORTED.load(Ordering::Relaxed) {
            return false;
        }
        let Ok(at) = libc::off_t::try_from(offset) else {
            return false;
        };
        let iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: one iovec over `buf`, valid and writable for the call; the descriptor is ours.
        let n = unsafe { libc::preadv2(fd.as_raw_fd(), &iov, 1, at, libc::RWF_NOWAIT) };
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EOPNOTSUPP) {
            NOWAIT_UNSUPPORTED.store(true, Ordering::Relaxed);
        }
        usize::try_from(n).is_ok_and(|n| n == buf.len())
    }

    pub(crate) fn write(&self, fd: &File, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        let written = fd.write_all_at(data, offset);
        // Marked after the write, so that a concurrent flush that misses it leaves it dirty.
        self.dirty.store(true, Ordering::Release);
        written.map_err(|e| StorageError::io(&self.path, e))
    }

    /// Whether `offset..offset+len` may hold written data: false if the file ends before the
    /// range does, or if the file system says the whole range is a hole (never written).
    pub(crate) fn has_data(&self, fd: &File, offset: u64, len: u64) -> bool {
        let Some(end) = offset.checked_add(len) else {
            return false;
        };
        if len == 0 || end > self.len || !fd.metadata().is_ok_and(|m| m.len() >= end) {
            return false;
        }
        // SAFETY: lseek on a descriptor we own; it does not touch memory.
        let next = unsafe { libc::lseek(fd.as_raw_fd(), offset as libc::off_t, libc::SEEK_DATA) };
        if next < 0 {
            // ENXIO: no data at or after offset. Anything else (no SEEK_DATA support): assume data.
            return std::io::Error::last_os_error().raw_os_error() != Some(libc::ENXIO);
        }
        (next as u64) < end
    }

    /// fdatasync through `fd` if anything was written since the last flush. Any descriptor of
    /// the file will do, read-only included: the kernel syncs the file, and since Linux 4.16 a
    /// writeback error not yet seen is reported to a descriptor opened after it happened.
    pub(crate) fn flush(
        &self,
        fd: impl FnOnce() -> Result<Arc<File>, StorageError>,
    ) -> Result<(), StorageError> {
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let synced =
            fd().and_then(|fd| fd.sync_data().map_err(|e| StorageError::io(&self.path, e)));
        if synced.is_err() {
            self.dirty.store(true, Ordering::Release);
        }
        synced
    }
}
