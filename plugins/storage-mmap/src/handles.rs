//! The open descriptors: a bounded least-recently-used set, opened on demand.
//!
//! One descriptor per torrent file made a 10,000-file torrent fail with EMFILE under the usual
//! `ulimit -n 1024`. At most [`CAPACITY`] are kept; a descriptor is shared (`Arc`) with the calls
//! using it, so one evicted mid-read closes when that read ends.

use std::fs::File;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use lru::LruCache;
use rivulet_core::plugin::StorageError;

use crate::file::DiskFile;

/// Leaves most of a 1024-descriptor limit to peers' sockets, plugins and FUSE; more gains
/// little, since pieces are read and written file by file.
const CAPACITY: NonZeroUsize = NonZeroUsize::new(128).unwrap();

struct Handle {
    fd: Arc<File>,
    writable: bool,
}

pub(crate) struct Handles {
    open: Mutex<LruCache<usize, Handle>>,
}

impl Handles {
    pub(crate) fn new() -> Self {
        Handles {
            open: Mutex::new(LruCache::new(CAPACITY)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<usize, Handle>> {
        // The cache holds only descriptors; whatever a panicking thread left is still valid.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A descriptor of file `index` (`file`) to read it; [`StorageError::Missing`] if the file
    /// does not exist.
    pub(crate) fn readable(
        &self,
        index: usize,
        file: &DiskFile,
    ) -> Result<Arc<File>, StorageError> {
        self.get(index, false, || file.open_existing())
    }

    /// The descriptor of file `index` if one is open: opening may wait for the disk.
    pub(crate) fn open_already(&self, index: usize) -> Option<Arc<File>> {
        self.lock().get(&index).map(|h| Arc::clone(&h.fd))
    }

    /// A descriptor of file `index` (`file`) to write it, created if absent.
    pub(crate) fn writable(
        &self,
        index: usize,
        file: &DiskFile,
    ) -> Result<Arc<File>, StorageError> {
        self.get(index, true, || file.open_writable())
    }

    /// The cached descriptor if it is good for the access asked, else `open`'s, which replaces
    /// it. Opened under the lock, so that two writers never both create the file.
    fn get(
        &self,
        index: usize,
        writable: bool,
        open: impl FnOnce() -> Result<File, StorageError>,
    ) -> Result<Arc<File>, StorageError> {
        let mut cache = self.lock();
        if let Some(h) = cache.get(&index)
            && (h.writable || !writable)
        {
            return Ok(Arc::clone(&h.fd));
        }
        let fd = Arc::new(open()?);
        let handle = Handle {
            fd: Arc::clone(&fd),
            writable,
        };
        cache.put(index, handle);
        Ok(fd)
    }
}
