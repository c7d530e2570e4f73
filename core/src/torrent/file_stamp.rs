//! A data file's size and change times, recorded in the resume file and compared at start:
//! a file whose stamp changed is hashed again before its pieces are trusted. The change time
//! is kept too because `touch -r` can restore a modification time but not a change time.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::metainfo::Metainfo;

/// A data file's size and times, to notice that it changed since the resume file was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileStamp {
    pub(crate) len: u64,
    pub(crate) mtime_ns: i64,
    pub(crate) ctime_ns: i64,
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> FileStamp {
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        FileStamp {
            len: meta.len(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// As stored in the resume file: `[len, mtime_ns, ctime_ns]`, or empty for no file.
    pub(crate) fn fields(self) -> Vec<i64> {
        vec![self.len as i64, self.mtime_ns, self.ctime_ns]
    }

    /// The inverse of [`FileStamp::fields`] for an optional stamp; `None` if malformed.
    pub(crate) fn from_fields(f: &[i64]) -> Option<Option<FileStamp>> {
        match *f {
            [] => Some(None),
            [len, mtime_ns, ctime_ns] if len >= 0 => Some(Some(FileStamp {
                len: len as u64,
                mtime_ns,
                ctime_ns,
            })),
            _ => None,
        }
    }
}

/// The stamp of every torrent file under `data_dir`; `None` for an absent file and for empty
/// files (they hold no piece).
pub(crate) fn stamp_files(data_dir: &Path, meta: &Metainfo) -> Vec<Option<FileStamp>> {
    meta.files
        .iter()
        .map(|f| {
            if f.length == 0 {
                return None;
            }
            std::fs::metadata(data_dir.join(f.relative_path()))
                .ok()
                .map(|m| FileStamp::of(&m))
        })
        .collect()
}
