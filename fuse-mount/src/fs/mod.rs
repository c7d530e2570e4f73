//! The fuser [`Filesystem`]: metadata comes from the inode table, file data from core's readers,
//! one per open file handle (readahead, timeouts and the engine's deadlines are theirs).
//!
//! Every data read becomes its own task that answers the kernel when the engine has the bytes,
//! so the FUSE thread never waits on the network: many reads are in flight while `ls` stays
//! instant. Closing the abort channel (on unmount) fails every waiting read with EIO; so does a
//! torrent leaving the mount, for its own reads.
//!
//! Over 500 lines because it is one trait implementation: the `Filesystem` callbacks (lookup,
//! getattr, readdir, open, read, release, xattrs, statfs) are short and read best side by side.

mod entries;
mod inodes;
pub(crate) mod library;
pub(crate) mod status;

use std::collections::HashMap;
use std::ffi::OsStr;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, CopyFileRangeFlags, Errno, FileAttr, FileHandle, Filesystem, FopenFlags, INodeNo,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use futures::future::{Either, select};
use rivulet_core::reader::Reader;
use rivulet_core::rt::{Receiver, Sender, Tasks};

use crate::source::Source;
use entries::{Owner, attr, dir_entries, executable, link_target, reply_dir, reply_lookup};
use inodes::{Inodes, Kind, Node, ROOT};
use library::{Mounted, Shared};
use status::{PROGRESS_XATTR, Progress};

/// Reads (kernel readahead included) the kernel keeps in flight at once.
const MAX_BACKGROUND: u16 = 64;

/// State of one open file handle.
enum OpenFile<S: Source> {
    Torrent(Reader<S>, Arc<Mounted<S>>),
    /// The status document as rendered at open, so one reader sees one consistent snapshot.
    Status(Arc<[u8]>),
}

pub(crate) struct TorrentFs<S: Source> {
    shared: Arc<Shared<S>>,
    owner: Owner,
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
    pub(crate) fn new(shared: Arc<Shared<S>>, abort: Receiver<()>, alive: Sender<()>) -> Self {
        // SAFETY: getuid and getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        TorrentFs {
            shared,
            owner: Owner { uid, gid },
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

    fn attr(&self, inodes: &Inodes, ino: u64, node: &Node) -> (FileAttr, Duration) {
        attr(&self.shared, self.owner, inodes, ino, node)
    }

    /// The progress attribute of a torrent file or folder, or of the root (all torrents);
    /// `None` for the status nodes.
    fn progress(&self, inodes: &Inodes, ino: u64, node: &Node) -> Option<String> {
        let progress = match node.torrent {
            Some(slot) => {
                let t = self.shared.torrent(slot)?;
                Progress::of(&t.readers.torrent().have(), &node.pieces)
            }
            None if ino == ROOT => {
                self.shared
                    .all()
                    .iter()
                    .fold(Progress { have: 0, total: 0 }, |sum, t| {
                        let pieces = inodes.get(t.top).map_or(&[][..], |n| &n.pieces[..]);
                        let p = Progress::of(&t.readers.torrent().have(), pieces);
                        Progress {
                            have: sum.have + p.have,
                            total: sum.total + p.total,
                        }
                    })
            }
            None => return None,
        };
        Some(progress.to_string())
    }

    /// Starts a read of `size` bytes at `offset` through the reader of handle `fh`.
    fn read_torrent(&self, fh: u64, offset: u64, size: u32, reply: ReplyData) {
        let (read, gone) = match self.open_files().get(&fh) {
            Some(OpenFile::Torrent(_, torrent)) if torrent.gone.is_closed() => {
                reply.error(Errno::EIO);
                return;
            }
            Some(OpenFile::Torrent(reader, _)) if offset >= reader.len() => {
                reply.data(&[]);
                return;
            }
            Some(OpenFile::Torrent(reader, torrent)) => (
                reader.read_at(offset, u64::from(size)),
                torrent.gone.clone(),
            ),
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
            let (abort, gone) = (pin!(abort.recv()), pin!(gone.recv()));
            match select(pin!(read), select(abort, gone)).await {
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
        let Some(name) = name.to_str() else {
            return reply.error(Errno::ENOENT);
        };
        let missing = self.shared.inodes().lookup(parent.0, name).is_none();
        // A name not at the root yet may belong to a torrent on its way: wait for it (bounded).
        if missing
            && parent.0 == ROOT
            && let Some(settled) = self.shared.settled()
        {
            let (shared, owner, name) = (self.shared.clone(), self.owner, name.to_owned());
            self.replies.spawn(async move {
                settled.await;
                reply_lookup(&shared, owner, ROOT, &name, reply);
            });
            return;
        }
        reply_lookup(&self.shared, self.owner, parent.0, name, reply);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let inodes = self.shared.inodes();
        match inodes.get(ino.0) {
            Some(node) => {
                let (attr, ttl) = self.attr(&inodes, ino.0, node);
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
        let found = self.shared.inodes().get(ino.0).map(|n| {
            (
                n.torrent,
                n.kind.file_index(),
                match n.kind {
                    Kind::Dir(_) => Some(Errno::EISDIR),
                    // The kernel follows links itself; an open of the link node is a misuse.
                    Kind::Symlink(_) => Some(Errno::ELOOP),
                    _ => None,
                },
            )
        });
        let (state, fopen) = match found {
            None => return reply.error(Errno::ENOENT),
            Some((_, _, Some(refused))) => return reply.error(refused),
            // Torrent data never changes once verified: let the page cache keep it.
            Some((Some(slot), Some(index), _)) => {
                let Some(torrent) = self.shared.torrent(slot) else {
                    return reply.error(Errno::ENOENT);
                };
                match torrent.readers.open(index) {
                    Ok(reader) => (
                        OpenFile::Torrent(reader, torrent),
                        FopenFlags::FOPEN_KEEP_CACHE,
                    ),
                    Err(e) => {
                        tracing::warn!("open of file {index}: {e}");
                        return reply.error(Errno::EIO);
                    }
                }
            }
            // Direct I/O: readers see this open's snapshot whatever size getattr reported.
            Some(_) => (
                OpenFile::Status(self.shared.status_doc().into()),
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
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        // By the handle, not the inode: a removed torrent's files have no inode any more, yet
        // their handles must fail as reads (EIO), not as lookups.
        let doc = match self.open_files().get(&fh.0) {
            Some(OpenFile::Torrent(..)) => None,
            Some(OpenFile::Status(doc)) => Some(doc.clone()),
            None => return reply.error(Errno::EBADF),
        };
        match doc {
            None => self.read_torrent(fh.0, offset, size, reply),
            Some(doc) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(doc.len());
                let end = start.saturating_add(size as usize).min(doc.len());
                reply.data(&doc[start..end]);
            }
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
        let is_dir = self
            .shared
            .inodes()
            .get(ino.0)
            .map(|n| matches!(n.kind, Kind::Dir(_)));
        match is_dir {
            // The root changes as torrents come and go: listed afresh at each open.
            Some(true) if ino.0 == ROOT => reply.opened(FileHandle(0), FopenFlags::empty()),
            Some(true) => reply.opened(
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
        reply: ReplyDirectory,
    ) {
        // The first listing of the root waits (bounded) for torrents still on their way.
        if ino.0 == ROOT
            && offset == 0
            && let Some(settled) = self.shared.settled()
        {
            let shared = self.shared.clone();
            self.replies.spawn(async move {
                settled.await;
                let entries = dir_entries(&shared.inodes(), ROOT);
                reply_dir(entries, offset, reply);
            });
            return;
        }
        let entries = dir_entries(&self.shared.inodes(), ino.0);
        reply_dir(entries, offset, reply);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let bsize = 4096u32;
        let bytes: u64 = self.shared.all().iter().map(|t| t.meta.total_length).sum();
        reply.statfs(
            bytes.div_ceil(u64::from(bsize)),
            0,
            0,
            self.shared.inodes().count(),
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
        let inodes = self.shared.inodes();
        let Some(node) = inodes.get(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        match self.progress(&inodes, ino.0, node) {
            Some(p) if name == PROGRESS_XATTR => reply_xattr(reply, size, p.as_bytes()),
            _ => reply.error(Errno::NO_XATTR),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let inodes = self.shared.inodes();
        let Some(node) = inodes.get(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let names = if node.torrent.is_none() && ino.0 != ROOT {
            String::new()
        } else {
            format!("{PROGRESS_XATTR}\0")
        };
        reply_xattr(reply, size, names.as_bytes());
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::EROFS);
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let target = match self.shared.inodes().get(ino.0) {
            Some(Node {
                kind: Kind::Symlink(i),
                torrent: Some(slot),
                ..
            }) => self
                .shared
                .torrent(*slot)
                .and_then(|t| link_target(&t.meta, *i)),
            Some(_) => return reply.error(Errno::EINVAL),
            None => None,
        };
        match target {
            Some(target) => reply.data(&target),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let Some(executable) = self
            .shared
            .inodes()
            .get(ino.0)
            .map(|n| executable(&self.shared, n))
        else {
            return reply.error(Errno::ENOENT);
        };
        if mask.contains(AccessFlags::W_OK) {
            reply.error(Errno::EROFS);
        } else if mask.contains(AccessFlags::X_OK) && !executable {
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
