//! What the kernel sees of an entry: its attributes (sizes, one fixed time per torrent, link
//! counts, how long the kernel may cache them), a folder's listing and a lookup's answer.

use std::time::{Duration, SystemTime};

use rivulet_core::metainfo::Metainfo;

use fuser::{Errno, FileAttr, FileType, Generation, INodeNo, ReplyDirectory, ReplyEntry};

use super::inodes::{Inodes, Kind, Node, ROOT, STATUS_DIR};
use super::library::{FIXED_TIME, Shared};
use crate::source::Source;

/// A torrent's tree never changes while mounted (a removed torrent's entry is invalidated), so
/// the kernel may cache it for long.
const TREE_TTL: Duration = Duration::from_secs(3600);
/// Block size reported by `stat` and `statfs`; large so tools read in big chunks.
const BLOCK_SIZE: u32 = 1 << 20;

/// One entry of a directory listing.
type DirEntry = (String, u64, FileType);

/// The listing of folder `ino` after `.` and `..`; the root's leaves out the status folder
/// (reachable by name, hidden like a dot-file should be from tools walking the tree).
pub(super) fn dir_entries(inodes: &Inodes, ino: u64) -> Result<Vec<DirEntry>, Errno> {
    let node = inodes.get(ino).ok_or(Errno::ENOENT)?;
    let Kind::Dir(children) = &node.kind else {
        return Err(Errno::ENOTDIR);
    };
    let dots = [(".", ino), ("..", node.parent)]
        .into_iter()
        .map(|(name, ino)| (name.to_owned(), ino, FileType::Directory));
    let entries = children
        .iter()
        .filter(|&(name, &child)| {
            !(ino == ROOT
                && name == STATUS_DIR
                && inodes.get(child).is_some_and(|n| n.torrent.is_none()))
        })
        .map(|(name, &child)| {
            let kind = match inodes.get(child).map(|n| &n.kind) {
                Some(Kind::Dir(_)) => FileType::Directory,
                Some(Kind::Symlink(_)) => FileType::Symlink,
                _ => FileType::RegularFile,
            };
            (name.clone(), child, kind)
        });
    Ok(dots.chain(entries).collect())
}

pub(super) fn reply_dir(
    entries: Result<Vec<DirEntry>, Errno>,
    offset: u64,
    mut reply: ReplyDirectory,
) {
    let entries = match entries {
        Ok(e) => e,
        Err(e) => return reply.error(e),
    };
    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
    for (i, (name, child, kind)) in entries.iter().enumerate().skip(skip) {
        // The offset given with an entry is where the next readdir call resumes.
        if reply.add(INodeNo(*child), i as u64 + 1, *kind, name) {
            break;
        }
    }
    reply.ok();
}

/// Who owns every entry: the user that mounted.
#[derive(Clone, Copy)]
pub(super) struct Owner {
    pub uid: u32,
    pub gid: u32,
}

pub(super) fn attr<S: Source>(
    shared: &Shared<S>,
    owner: Owner,
    inodes: &Inodes,
    ino: u64,
    node: &Node,
) -> (FileAttr, Duration) {
    let torrent = node.torrent.and_then(|slot| shared.torrent(slot));
    let time = torrent
        .as_ref()
        .map_or(SystemTime::UNIX_EPOCH + FIXED_TIME, |t| t.time);
    let (kind, perm, size, nlink, ttl) = match &node.kind {
        Kind::Dir(_) => (
            FileType::Directory,
            0o555,
            0,
            2 + inodes.subdirs(ino),
            // The root changes as torrents come and go.
            if ino == ROOT {
                Duration::ZERO
            } else {
                TREE_TTL
            },
        ),
        Kind::File(i) => {
            let file = torrent.as_ref().and_then(|t| t.meta.files.get(*i));
            // BEP 47 `x`: executable, still read-only.
            let perm = if file.is_some_and(|f| f.attr.executable) {
                0o555
            } else {
                0o444
            };
            (
                FileType::RegularFile,
                perm,
                file.map_or(0, |f| f.length),
                1,
                TREE_TTL,
            )
        }
        Kind::Symlink(i) => {
            let len = torrent
                .as_ref()
                .and_then(|t| link_target(&t.meta, *i))
                .map_or(0, |t| t.len() as u64);
            (FileType::Symlink, 0o777, len, 1, TREE_TTL)
        }
        // Its size changes as the download progresses: never cached.
        Kind::Status => (
            FileType::RegularFile,
            0o444,
            shared.status_doc().len() as u64,
            1,
            Duration::ZERO,
        ),
    };
    let attr = FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: time,
        mtime: time,
        ctime: time,
        crtime: time,
        kind,
        perm,
        nlink,
        uid: owner.uid,
        gid: owner.gid,
        rdev: 0,
        blksize: BLOCK_SIZE,
        flags: 0,
    };
    (attr, ttl)
}

/// The content of symlink `index` of a torrent: a relative path that stays inside it.
pub(super) fn link_target(meta: &Metainfo, index: usize) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let link = meta.symlinks.get(index)?;
    Some(link.relative_target().as_os_str().as_bytes().to_vec())
}

/// Whether `x` permission is granted: folders, and files with the BEP 47 `x` attribute.
pub(super) fn executable<S: Source>(shared: &Shared<S>, node: &Node) -> bool {
    match &node.kind {
        Kind::Dir(_) => true,
        Kind::File(i) => node
            .torrent
            .and_then(|slot| shared.torrent(slot))
            .is_some_and(|t| t.meta.files.get(*i).is_some_and(|f| f.attr.executable)),
        _ => false,
    }
}

/// Answers a lookup from the table as it is now.
pub(super) fn reply_lookup<S: Source>(
    shared: &Shared<S>,
    owner: Owner,
    parent: u64,
    name: &str,
    reply: ReplyEntry,
) {
    let inodes = shared.inodes();
    let found = inodes
        .lookup(parent, name)
        .and_then(|ino| Some((ino, inodes.get(ino)?)));
    match found {
        Some((ino, node)) => {
            let (attr, ttl) = attr(shared, owner, &inodes, ino, node);
            reply.entry(&ttl, &attr, Generation(0));
        }
        None => reply.error(Errno::ENOENT),
    }
}
