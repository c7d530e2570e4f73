//! The fuser [`Filesystem`]: metadata comes from the inode table, file data from core's readers,
//! one per open file handle (readahead, timeouts and the engine's deadlines are theirs).
//!
//! Every data read becomes its own task that answers the kernel when the engine has the bytes,
//! so the FUSE thread never waits on the network: many reads are in flight while `ls` stays
//! instant. Closing the abort channel (on unmount) fails every waiting read with EIO.
//!
//! Over 500 lines because it is one trait implementation: the `Filesystem` callbacks (lookup,
//! getattr, readdir, open, read, release, xattrs, statfs) are short and read best side by side.

mod inodes;
pub(crate) mod status;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags,
    Generation, INodeNo, KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use futures::future::{Either, select};
use rivulet_core::metainfo::Metainfo;
use rivulet_core::reader::{Reader, Readers};
use rivulet_core::rt::{Receiver, Sender, Tasks};

use crate::source::Source;
use inodes::{Inodes, Kind, Node};
use status::{PROGRESS_XATTR, Progress, status_json};

/// The torrent's tree never changes while mounted, so the kernel may cache it for long.
const TREE_TTL: Duration = Duration::from_secs(3600);
/// Block size reported by `stat` and `statfs`; large so tools read in big chunks.
const BLOCK_SIZE: u32 = 1 << 20;
/// Reads (kernel readahead included) the kernel keeps in flight at once.
const MAX_BACKGROUND: u16 = 64;

/// State of one open file handle.
enum OpenFile<S: Source> {
    Torrent(Reader<S>),
    /// The status document as rendered at open, so one reader sees one consistent snapshot.
    Status(Arc<[u8]>),
}

pub(crate) struct TorrentFs<S: Source> {
    readers: Readers<S>,
    meta: Arc<Metainfo>,
    inodes: Inodes,
    mounted_at: SystemTime,
    uid: u32,
    gid: u32,
    open: Mutex<HashMap<u64, OpenFile<S>>>,
    next_fh: AtomicU64,
    /// Closed when the mount is being torn down.
    abort: Receiver<()>,
    /// The tasks answering reads; each ends by itself (answered, timed out or aborted).
    replies: Tasks,
    /// Dropped with the filesystem when the session ends, which tells [`crate::Mount`].
    _alive: Sender<()>,
}

impl<S: Source> TorrentFs<S> {
    pub(crate) fn new(
        source: S,
        meta: Arc<Metainfo>,
        abort: Receiver<()>,
        alive: Sender<()>,
    ) -> Self {
        // SAFETY: getuid and getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        TorrentFs {
            inodes: Inodes::new(&meta),
            readers: Readers::new(source, meta.clone()),
            meta,
            mounted_at: SystemTime::now(),
            uid,
            gid,
            open: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            abort,
            replies: Tasks::default(),
            _alive: alive,
        }
    }

    fn open_files(&self) -> MutexGuard<'_, HashMap<u64, OpenFile<S>>> {
        // The map stays consistent even if a holder panicked: every update is one insert or
        // remove.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn status_doc(&self) -> Vec<u8> {
        status_json(&self.meta, self.readers.torrent().stats())
    }

    fn attr(&self, ino: u64, node: &Node) -> (FileAttr, Duration) {
        let (kind, perm, size, nlink, ttl) = match &node.kind {
            Kind::Dir(_) => (
                FileType::Directory,
                0o555,
                0,
                2 + self.inodes.subdirs(ino),
                TREE_TTL,
            ),
            Kind::File(i) => {
                let file = self.meta.files.get(*i);
                let len = file.map_or(0, |f| f.length);
                // BEP 47 `x`: executable, still read-only.
                let perm = if file.is_some_and(|f| f.attr.executable) {
                    0o555
                } else {
                    0o444
                };
                (FileType::RegularFile, perm, len, 1, TREE_TTL)
            }
            Kind::Symlink(i) => {
                let len = self.link_target(*i).map_or(0, |t| t.len() as u64);
                (FileType::Symlink, 0o777, len, 1, TREE_TTL)
            }
            // Its size changes as the download progresses: never cached.
            Kind::Status => (
                FileType::RegularFile,
                0o444,
                self.status_doc().len() as u64,
                1,
                Duration::ZERO,
            ),
        };
        let attr = FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: self.mounted_at,
            mtime: self.mounted_at,
            ctime: self.mounted_at,
            crtime: self.mounted_at,
            kind,
            perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: BLOCK_SIZE,
            flags: 0,
        };
        (attr, ttl)
    }

    /// The progress attribute of a torrent file or folder; `None` for the status nodes.
    /// Whether `x` permission is granted: folders, and files with the BEP 47 `x` attribute.
    fn executable(&self, kind: &Kind) -> bool {
        match kind {
            Kind::Dir(_) => true,
            Kind::File(i) => self.meta.files.get(*i).is_some_and(|f| f.attr.executable),
            _ => false,
        }
    }

    /// The content of symlink `index`: a relative path that stays inside the torrent.
    fn link_target(&self, index: usize) -> Option<Vec<u8>> {
        use std::os::unix::ffi::OsStrExt;
        let link = self.meta.symlinks.get(index)?;
        Some(link.relative_target().as_os_str().as_bytes().to_vec())
    }

    fn progress(&self, node: &Node) -> Option<String> {
        if node.status {
            return None;
        }
        Some(Progress::of(&self.readers.torrent().have(), &node.pieces).to_string())
    }

    /// Starts a read of `size` bytes at `offset` through the reader of handle `fh`.
    fn read_torrent(&self, fh: u64, offset: u64, size: u32, reply: ReplyData) {
        let read = match self.open_files().get(&fh) {
            Some(OpenFile::Torrent(reader)) if offset >= reader.len() => {
                reply.data(&[]);
                return;
            }
            Some(OpenFile::Torrent(reader)) => reader.read_at(offset, u64::from(size)),
            _ => {
                reply.error(Errno::EBADF);
                return;
            }
        };
        let abort = self.abort.clone();
        self.replies.spawn(async move {
            if abort.is_closed() {
                reply.error(Errno::EIO);
                return;
            }
            match select(pin!(read), pin!(abort.recv())).await {
                Either::Left((Ok(data), _)) => reply.data(&data),
                Either::Left((Err(e), _)) => {
                    tracing::warn!(fh, offset, size, "read failed: {e}");
                    reply.error(Errno::EIO);
                }
                Either::Right(_) => reply.error(Errno::EIO),
            }
        });
    }
}

/// Answers an xattr request: the size when asked for it, ERANGE when the buffer is too small.
fn reply_xattr(reply: ReplyXattr, size: u32, value: &[u8]) {
    if size == 0 {
        reply.size(value.len() as u32);
    } else if value.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(value);
    }
}

impl<S: Source> Filesystem for TorrentFs<S> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        if let Err(max) = config.set_max_background(MAX_BACKGROUND) {
            tracing::debug!("kernel limits background requests to {max}");
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let found = name
            .to_str()
            .and_then(|n| self.inodes.lookup(parent.0, n))
            .and_then(|ino| Some((ino, self.inodes.get(ino)?)));
        match found {
            Some((ino, node)) => {
                let (attr, ttl) = self.attr(ino, node);
                reply.entry(&ttl, &attr, Generation(0));
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.inodes.get(ino.0) {
            Some(node) => {
                let (attr, ttl) = self.attr(ino.0, node);
                reply.attr(&ttl, &attr);
            }
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn mkdir(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn unlink(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn rmdir(&self, _req: &Request, _parent: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn symlink(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _link_name: &OsStr,
        _target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn rename(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _newparent: INodeNo,
        _newname: &OsStr,
        _flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        reply.error(Errno::EROFS);
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            reply.error(Errno::EROFS);
            return;
        }
        let (state, fopen) = match self.inodes.get(ino.0).map(|n| &n.kind) {
            None => return reply.error(Errno::ENOENT),
            Some(Kind::Dir(_)) => return reply.error(Errno::EISDIR),
            // The kernel follows links itself; an open of the link node is a misuse.
            Some(Kind::Symlink(_)) => return reply.error(Errno::ELOOP),
            // Torrent data never changes once verified: let the page cache keep it.
            Some(Kind::File(index)) => match self.readers.open(*index) {
                Ok(reader) => (OpenFile::Torrent(reader), FopenFlags::FOPEN_KEEP_CACHE),
                Err(e) => {
                    tracing::warn!("open of file {index}: {e}");
                    return reply.error(Errno::EIO);
                }
            },
            // Direct I/O: readers see this open's snapshot whatever size getattr reported.
            Some(Kind::Status) => (
                OpenFile::Status(self.status_doc().into()),
                FopenFlags::FOPEN_DIRECT_IO,
            ),
        };
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.open_files().insert(fh, state);
        reply.opened(FileHandle(fh), fopen);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.inodes.get(ino.0).map(|n| &n.kind) {
            Some(Kind::File(_)) => self.read_torrent(fh.0, offset, size, reply),
            Some(Kind::Status) => {
                let doc = match self.open_files().get(&fh.0) {
                    Some(OpenFile::Status(doc)) => doc.clone(),
                    _ => return reply.error(Errno::EBADF),
                };
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(doc.len());
                let end = start.saturating_add(size as usize).min(doc.len());
                reply.data(&doc[start..end]);
            }
            Some(Kind::Dir(_)) => reply.error(Errno::EISDIR),
            Some(Kind::Symlink(_)) => reply.error(Errno::EINVAL),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.inodes.get(ino.0).map(|n| &n.kind) {
            Some(Kind::Symlink(i)) => match self.link_target(*i) {
                Some(target) => reply.data(&target),
                None => reply.error(Errno::ENOENT),
            },
            Some(_) => reply.error(Errno::EINVAL),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        // Dropping the reader (after the map's lock is released) withdraws its readahead.
        let closed = self.open_files().remove(&fh.0);
        drop(closed);
        reply.ok();
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.inodes.get(ino.0).map(|n| &n.kind) {
            Some(Kind::Dir(_)) => reply.opened(
                FileHandle(0),
                FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_CACHE_DIR,
            ),
            Some(_) => reply.error(Errno::ENOTDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(node) = self.inodes.get(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let Kind::Dir(children) = &node.kind else {
            return reply.error(Errno::ENOTDIR);
        };
        let dots = [(".", ino.0), ("..", node.parent)]
            .into_iter()
            .map(|(name, ino)| (name, ino, FileType::Directory));
        let entries = children.iter().map(|(name, &child)| {
            let kind = match self.inodes.get(child).map(|n| &n.kind) {
                Some(Kind::Dir(_)) => FileType::Directory,
                Some(Kind::Symlink(_)) => FileType::Symlink,
                _ => FileType::RegularFile,
            };
            (name.as_str(), child, kind)
        });
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        for (i, (name, child, kind)) in dots.chain(entries).enumerate().skip(skip) {
            // The offset given with an entry is where the next readdir call resumes.
            if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let bsize = 4096u32;
        reply.statfs(
            self.meta.total_length.div_ceil(u64::from(bsize)),
            0,
            0,
            self.inodes.count(),
            0,
            bsize,
            255,
            bsize,
        );
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let Some(node) = self.inodes.get(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        match self.progress(node) {
            Some(p) if name == PROGRESS_XATTR => reply_xattr(reply, size, p.as_bytes()),
            _ => reply.error(Errno::NO_XATTR),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let Some(node) = self.inodes.get(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let names = if node.status {
            String::new()
        } else {
            format!("{PROGRESS_XATTR}\0")
        };
        reply_xattr(reply, size, names.as_bytes());
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let Some(node) = self.inodes.get(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        if mask.contains(AccessFlags::W_OK) {
            reply.error(Errno::EROFS);
        } else if mask.contains(AccessFlags::X_OK) && !self.executable(&node.kind) {
            reply.error(Errno::EACCES);
        } else {
            reply.ok();
        }
    }

    fn create(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        reply.error(Errno::EROFS);
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::EROFS);
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::EROFS);
    }
}
