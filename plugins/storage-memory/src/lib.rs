//! RAM storage for mounts that keep nothing: a bounded cache of piece-sized chunks, each an
//! anonymous memory map.
//!
//! Data is kept per torrent-global chunk of one piece length, so a read that spans several
//! writes, or several files, is served like any other. Past `memory_limit` the least recently
//! used chunks are dropped; reading bytes that are not (or no longer) held returns
//! [`StorageError::Evicted`] and the engine fetches them again.

mod cache;
mod ranges;

use std::ops::Range;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rivulet_core::plugin::{Storage, StorageError, StorageOpen, StorageSpec};

use crate::cache::Cache;

/// Chunks are never smaller than one block, whatever the spec says.
const MIN_CHUNK: u64 = 16 * 1024;
/// At most this many chunks fit under the limit: each is a map of its own, and a process may
/// hold 65,530 (vm.max_map_count); 16 KiB pieces under a 2 GiB limit would otherwise need 131,072.
const MAX_CHUNKS: u64 = 4096;

pub struct MemoryStorage {
    /// (torrent-global offset, length) of each file.
    files: Vec<(u64, u64)>,
    cache: Mutex<Cache>,
}

impl MemoryStorage {
    pub fn new(spec: &StorageSpec) -> Self {
        let mut offset = 0u64;
        let files = spec
            .files
            .iter()
            .map(|&(_, len)| {
                let f = (offset, len);
                offset = offset.saturating_add(len);
                f
            })
            .collect();
        let piece = spec.piece_length.max(MIN_CHUNK);
        let chunk = piece * (spec.memory_limit / MAX_CHUNKS).div_ceil(piece).max(1);
        MemoryStorage {
            files,
            cache: Mutex::new(Cache::new(chunk, offset, spec.memory_limit)),
        }
    }

    /// Bytes of piece data held now (at most `memory_limit`, or one piece if that is larger).
    pub fn held_bytes(&self) -> u64 {
        self.lock().held()
    }

    fn lock(&self) -> MutexGuard<'_, Cache> {
        // A panic elsewhere cannot leave the cache half-updated in a way that matters more than
        // losing it: keep serving.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The torrent-global range of `len` bytes at `offset` of `file`.
    fn global(&self, file: usize, offset: u64, len: usize) -> Result<Range<u64>, StorageError> {
        let len = len as u64;
        self.files
            .get(file)
            .and_then(|&(start, file_len)| {
                let end = offset.checked_add(len).filter(|&end| end <= file_len)?;
                Some(start + offset..start + end)
            })
            .ok_or(StorageError::OutOfRange { file, offset, len })
    }
}

impl Storage for MemoryStorage {
    fn write(&self, file: usize, offset: u64, data: &[u8]) -> Result<(), StorageError> {
        let range = self.global(file, offset, data.len())?;
        self.lock().write(range, data).map_err(|e| {
            StorageError::Other(format!("no memory for a chunk of the memory storage: {e}"))
        })
    }

    fn read(&self, file: usize, offset: u64, buf: &mut [u8]) -> Result<(), StorageError> {
        let range = self.global(file, offset, buf.len())?;
        if self.lock().read(range, buf) {
            Ok(())
        } else {
            Err(StorageError::Evicted)
        }
    }

    fn read_cached(&self, file: usize, offset: u64, buf: &mut [u8]) -> bool {
        // All of it is memory: a read never waits for more than the cache's short lock.
        self.read(file, offset, buf).is_ok()
    }

    fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }

    fn persistent(&self) -> bool {
        false
    }
}

impl StorageOpen for MemoryStorage {
    fn open(spec: &StorageSpec) -> Result<Self, StorageError> {
        Ok(MemoryStorage::new(spec))
    }
}

rivulet_core::export_storage!(MemoryStorage, "memory", env!("CARGO_PKG_VERSION"));
