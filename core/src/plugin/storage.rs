//! Storage backend: where verified piece data lives.
//!
//! Backends see (file, offset) spans only; core's [`crate::layout`] splits pieces across files.
//! Every call is synchronous and may be made from several threads at once.

use std::path::PathBuf;

/// What a backend is asked to open.
#[derive(Clone, Debug)]
pub struct StorageSpec {
    /// Directory the torrent's files are placed under.
    pub root: PathBuf,
    /// Each file's sanitised path relative to `root`, and its length, in torrent order.
    pub files: Vec<(PathBuf, u64)>,
    pub piece_length: u64,
    /// Upper bound on memory held, for backends that keep data in RAM.
    pub memory_limit: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no space left on device")]
    NoSpace { path: PathBuf },
    /// The backend no longer holds these bytes (a bounded cache let them go): fetch them again.
    #[error("data no longer held by the storage backend")]
    Evicted,
    #[error("file {file} offset {offset} length {len} is out of range")]
    OutOfRange { file: usize, offset: u64, len: u64 },
    /// The backend holds no data for this range: the file is absent or shorter than expected.
    /// The engine treats the piece as missing.
    #[error("no data stored for this range")]
    Missing,
    /// A plugin backend broke (panicked, was disabled, or answered outside the ABI); `plugin`
    /// names it.
    #[error("{plugin}: {reason}")]
    Plugin { plugin: String, reason: String },
    /// A backend's own description of a failure none of the above fits.
    #[error("{0}")]
    Other(String),
}

impl StorageError {
    /// Wraps an I/O error, recognising a full disk.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.raw_os_error() == Some(28) {
            StorageError::NoSpace { path }
        } else {
            StorageError::Io { path, source }
        }
    }
}

pub trait Storage: Send + Sync {
    /// Writes `data` at `offset` of file `file`.
    fn write(&self, file: usize, offset: u64, data: &[u8]) -> Result<(), StorageError>;
    /// Fills `buf` from `offset` of file `file`.
    fn read(&self, file: usize, offset: u64, buf: &mut [u8]) -> Result<(), StorageError>;
    /// Fills `buf` from `offset` of file `file` only if that needs no wait for a disk (every
    /// byte is in memory already); `false` if it did not, and the engine then calls
    /// [`Storage::read`] on a blocking thread. Called on an async thread: it must never block.
    /// A backend that cannot tell keeps the default.
    fn read_cached(&self, file: usize, offset: u64, buf: &mut [u8]) -> bool {
        let _ = (file, offset, buf);
        false
    }
    /// Makes everything written so far durable.
    fn flush(&self) -> Result<(), StorageError>;
    /// Whether data survives a restart, so that resuming from it makes sense.
    fn persistent(&self) -> bool;
    /// Whether `len` bytes at `offset` of file `file` may hold written data. `false` lets the
    /// engine skip hashing a never-written piece when it rebuilds its state at start; a backend
    /// that cannot tell keeps the default.
    fn has_data(&self, file: usize, offset: u64, len: u64) -> bool {
        let _ = (file, offset, len);
        true
    }
}

/// A [`Storage`] backend that can be opened from a spec; what a built-in or a plugin library
/// needs to offer.
pub trait StorageOpen: Storage + Sized + 'static {
    fn open(spec: &StorageSpec) -> Result<Self, StorageError>;
}
