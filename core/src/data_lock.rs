//! One rivulet per torrent's data: an advisory lock on the torrent's root in the data folder (its
//! single file, or its folder), held for as long as the [`DataLock`] lives.
//!
//! Without it a second rivulet on the same folder (another torrent whose file has the same name,
//! or the same torrent mounted twice with the default cache folder) wrote into, resized or
//! re-downloaded files under a running one. `flock` on a read-only descriptor works for folders
//! as well as files on Linux, and the kernel drops it when the process dies, so a crash never
//! leaves a stale lock behind. The refusal names the holder, found through `/proc/locks` by
//! device and inode.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

use crate::metainfo::Metainfo;

/// Longest holder command line shown, in characters.
const CMDLINE_CHARS: usize = 200;

/// Held for the life of the process (or until dropped).
#[derive(Debug)]
pub struct DataLock {
    _fd: Option<File>,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{} is in use by another rivulet ({holder}); stop it or use another folder", root.display())]
    Held { root: PathBuf, holder: String },
    #[error("cannot lock {}: {source}", root.display())]
    Io { root: PathBuf, source: io::Error },
}

/// The file or folder a torrent's data lives in under `data_dir`.
pub fn torrent_root(meta: &Metainfo, data_dir: &Path) -> Option<PathBuf> {
    let first = meta.files.first()?.path.first()?;
    Some(data_dir.join(first))
}

/// Locks the torrent's root under `data_dir`, creating it (an empty folder, or an empty file
/// for a single-file torrent) if it is missing.
pub fn lock(meta: &Metainfo, data_dir: &Path) -> Result<DataLock, LockError> {
    let Some(root) = torrent_root(meta, data_dir) else {
        return Ok(DataLock { _fd: None });
    };
    let io_error = |source| LockError::Io {
        root: root.clone(),
        source,
    };
    let fd = open_root(&root, meta.multi_file).map_err(io_error)?;
    match flock(&fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(DataLock { _fd: Some(fd) }),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(LockError::Held {
            holder: holder(&fd).unwrap_or_else(|| "pid unknown".to_string()),
            root,
        }),
        // A file system without flock (some network mounts): run unguarded, as before.
        Err(e @ (rustix::io::Errno::NOLCK | rustix::io::Errno::OPNOTSUPP)) => {
            tracing::warn!(
                "cannot lock {}: {e}; running without a lock",
                root.display()
            );
            Ok(DataLock { _fd: None })
        }
        Err(e) => Err(io_error(e.into())),
    }
}

/// Opens the root read-only if it exists (read-only data can be seeded), else creates it.
fn open_root(root: &Path, folder: bool) -> io::Result<File> {
    match File::open(root) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if folder {
                std::fs::create_dir_all(root)?;
                File::open(root)
            } else {
                if let Some(parent) = root.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                // Append without truncation: a file created meanwhile by someone else is kept.
                OpenOptions::new().append(true).create(true).open(root)
            }
        }
        other => other,
    }
}

/// "pid N: command line" of a process holding a lock on `fd`'s inode.
fn holder(fd: &File) -> Option<String> {
    let meta = fd.metadata().ok()?;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let pid = holder_pid(&locks, meta.dev(), meta.ino())?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline: String = String::from_utf8_lossy(&cmdline)
        .split('\0')
        .filter(|a| !a.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .escape_debug()
        .take(CMDLINE_CHARS)
        .collect();
    Some(if cmdline.is_empty() {
        format!("pid {pid}")
    } else {
        format!("pid {pid}: {cmdline}")
    })
}

/// The pid of a lock in `/proc/locks` text on device `dev`, inode `ino`. A line reads
/// `1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF`: major and minor in hex, inode in
/// decimal; lines with `->` are waiters, not holders.
fn holder_pid(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    locks
        .lines()
        .filter(|l| !l.contains("->"))
        .find_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let at = words.iter().position(|w| w.matches(':').count() == 2)?;
            let mut id = words[at].split(':');
            let found = (
                u32::from_str_radix(id.next()?, 16).ok()?,
                u32::from_str_radix(id.next()?, 16).ok()?,
                id.next()?.parse::<u64>().ok()?,
            );
            let pid = words.get(at.checked_sub(1)?)?.parse::<u32>().ok()?;
            (found == (major, minor, ino)).then_some(pid)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_pid_reads_hex_device_and_decimal_inode() {
        let dev = rustix::fs::makedev(0x103, 0x2a);
        let locks = "1: POSIX  ADVISORY  WRITE 77 01:2a:99 0 EOF\n\
                     2: FLOCK  ADVISORY  WRITE 4242 103:2a:5678 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 5151 103:2a:5678 0 EOF\n";
        assert_eq!(holder_pid(locks, dev, 5678), Some(4242));
        assert_eq!(holder_pid(locks, dev, 5679), None);
        assert_eq!(holder_pid("garbage\n: : :\n", dev, 5678), None);
    }

    fn multi() -> Metainfo {
        let t = format!(
            "d4:infod5:filesld6:lengthi6e4:pathl1:aeee4:name1:d12:piece lengthi8e6:pieces20:{}ee",
            "x".repeat(20)
        );
        Metainfo::from_bytes(t.as_bytes()).unwrap()
    }

    #[test]
    fn a_second_lock_on_the_same_root_is_refused_naming_this_process() {
        let dir = tempfile::tempdir().unwrap();
        let meta = multi();
        let first = lock(&meta, dir.path()).unwrap();
        assert!(dir.path().join("d").is_dir());
        // flock locks belong to the open file, so a second open in one process conflicts too.
        let e = lock(&meta, dir.path()).unwrap_err().to_string();
        assert!(e.contains("is in use by another rivulet"), "{e}");
        assert!(e.contains(&format!("(pid {}: ", std::process::id())), "{e}");
        drop(first);
        lock(&meta, dir.path()).unwrap();
    }
}
