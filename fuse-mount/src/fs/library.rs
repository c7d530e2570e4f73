//! The torrents of one mount, shared by the filesystem (which serves them) and [`Torrents`]
//! (which adds and removes them while mounted: a watch folder, a command).
//!
//! A removed torrent leaves the root at once: the kernel is told to forget its entry, its
//! reads still waiting fail with EIO and its inodes answer ENOENT from then on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, RwLockReadGuard, Weak};
use std::time::{Duration, SystemTime};

use fuser::{INodeNo, Notifier};
use rivulet_core::metainfo::{InfoHash, Metainfo};
use rivulet_core::reader::Readers;
use rivulet_core::rt::{self, Receiver, Sender};
use serde_json::Value;

use super::inodes::{Inodes, ROOT, Slot};
use super::status::{TorrentStatus, status_json};
use crate::source::Source;

/// The time every entry shows when its torrent names no creation date: fixed, so that tools
/// comparing times (tar, rsync, backups) see the same tree at every mount.
pub(crate) const FIXED_TIME: Duration = Duration::from_secs(1_000_000_000);

/// One torrent in the mount.
pub(crate) struct Mounted<S: Source> {
    pub readers: Readers<S>,
    pub meta: Arc<Metainfo>,
    /// Inode of its entry at the root, and that entry's name.
    pub top: u64,
    pub path: String,
    /// Modification, change and creation time of all its entries.
    pub time: SystemTime,
    /// Closed when the torrent leaves the mount: its waiting reads fail.
    pub gone: Receiver<()>,
    gone_tx: Sender<()>,
}

/// A section a front end adds to the status document.
type Section = (&'static str, Box<dyn Fn() -> Value + Send + Sync>);

/// Keeps root listings waiting while a torrent is on its way.
struct PendingGen {
    _open: Sender<()>,
}

pub(crate) struct Shared<S: Source> {
    pub inodes: RwLock<Inodes>,
    torrents: RwLock<BTreeMap<Slot, Arc<Mounted<S>>>>,
    next_slot: AtomicU64,
    notifier: OnceLock<Notifier>,
    pending: Mutex<(Weak<PendingGen>, Receiver<()>)>,
    /// How long a root listing waits for torrents still on their way.
    pending_wait: Duration,
    sections: Mutex<Vec<Section>>,
}

impl<S: Source> Shared<S> {
    pub fn new(pending_wait: Duration) -> Self {
        let (_, settled) = rt::bounded(1);
        Shared {
            inodes: RwLock::new(Inodes::new()),
            torrents: RwLock::new(BTreeMap::new()),
            next_slot: AtomicU64::new(1),
            notifier: OnceLock::new(),
            pending: Mutex::new((Weak::new(), settled)),
            pending_wait,
            sections: Mutex::new(Vec::new()),
        }
    }

    pub fn set_notifier(&self, notifier: Notifier) {
        let _ = self.notifier.set(notifier);
    }

    pub fn inodes(&self) -> RwLockReadGuard<'_, Inodes> {
        // Every update leaves the table consistent (nodes are added, then linked).
        self.inodes.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn torrent(&self, slot: Slot) -> Option<Arc<Mounted<S>>> {
        self.torrents
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&slot)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<Mounted<S>>> {
        self.torrents
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Resolves once no torrent is on its way any more, or after the pending wait.
    pub fn settled(&self) -> Option<impl Future<Output = ()> + Send + 'static> {
        let (gen_, settled) = &*self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        gen_.upgrade()?;
        let settled = settled.clone();
        let limit = self.pending_wait;
        Some(async move {
            // Nothing is ever sent: recv returns when the last pending guard is dropped.
            let _ = rt::timeout(limit, settled.recv()).await;
        })
    }

    pub fn status_doc(&self) -> Vec<u8> {
        let all = self.all();
        let torrents = all
            .iter()
            .map(|t| TorrentStatus {
                meta: &t.meta,
                path: &t.path,
                stats: t.readers.torrent().stats(),
            })
            .collect();
        let sections = self.sections.lock().unwrap_or_else(PoisonError::into_inner);
        status_json(
            torrents,
            sections.iter().map(|(name, f)| (*name, f())).collect(),
        )
    }

    fn add(&self, source: S, meta: Arc<Metainfo>) -> String {
        // Adding what is shown already keeps it (a follower may hear of a torrent twice).
        if let Some(shown) = self
            .torrents
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .find(|t| t.meta.info_hash == meta.info_hash)
        {
            return shown.path.clone();
        }
        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed);
        let time = meta
            .creation_date
            .and_then(|d| u64::try_from(d).ok())
            .map_or(FIXED_TIME, Duration::from_secs);
        let (gone_tx, gone) = rt::bounded(1);
        let mut inodes = self.inodes.write().unwrap_or_else(PoisonError::into_inner);
        let path = inodes.free_name(&meta);
        let top = inodes.add_torrent(slot, &meta, &path);
        let mounted = Mounted {
            readers: Readers::new(source, meta.clone()),
            meta,
            top,
            path: path.clone(),
            time: SystemTime::UNIX_EPOCH + time,
            gone,
            gone_tx,
        };
        self.torrents
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(slot, Arc::new(mounted));
        drop(inodes);
        // The root's size and link count changed; a new name needs no invalidation (the kernel
        // never cached its absence).
        self.invalidate(|n| n.inval_inode(INodeNo(ROOT), 0, 0));
        path
    }

    fn remove(&self, hash: &InfoHash) -> Option<String> {
        let removed = {
            let mut torrents = self
                .torrents
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            let slot = *torrents.iter().find(|(_, t)| t.meta.info_hash == *hash)?.0;
            torrents.remove(&slot)?
        };
        self.inodes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove_torrent(removed.top);
        removed.gone_tx.close();
        let name = std::ffi::OsStr::new(&removed.path);
        self.invalidate(|n| n.inval_entry(INodeNo(ROOT), name));
        self.invalidate(|n| n.inval_inode(INodeNo(ROOT), 0, 0));
        Some(removed.path.clone())
    }

    fn invalidate(&self, f: impl FnOnce(&Notifier) -> std::io::Result<()>) {
        if let Some(n) = self.notifier.get()
            && let Err(e) = f(n)
            // The kernel may not hold the entry at all: nothing to forget.
            && e.raw_os_error() != Some(libc::ENOENT)
        {
            tracing::debug!("cannot invalidate a kernel cache entry: {e}");
        }
    }
}

/// Adds torrents to a live mount and takes them out; cheap to clone.
pub struct Torrents<S: Source> {
    shared: Arc<Shared<S>>,
}

impl<S: Source> Clone for Torrents<S> {
    fn clone(&self) -> Self {
        Torrents {
            shared: self.shared.clone(),
        }
    }
}

/// While held, listings of the mount root wait (bounded) for the torrent it stands for: a
/// source named at start whose metadata is still on its way. Drop it once that torrent was
/// added or failed.
pub struct Pending {
    _gen: Arc<PendingGen>,
}

impl<S: Source> Torrents<S> {
    /// An empty set, to fill before and while it is mounted ([`crate::mount_torrents`]). A
    /// listing of the root waits up to `pending_wait` for torrents on their way (see
    /// [`Torrents::pending`]); usually the read timeout.
    pub fn new(pending_wait: Duration) -> Self {
        Torrents {
            shared: Arc::new(Shared::new(pending_wait)),
        }
    }

    pub(crate) fn shared(&self) -> Arc<Shared<S>> {
        self.shared.clone()
    }

    /// Shows the torrent at the mount root; returns the name it got there (its own, or with a
    /// short info-hash suffix when another entry has that name).
    pub fn add(&self, source: S, meta: Arc<Metainfo>) -> String {
        self.shared.add(source, meta)
    }

    /// Takes the torrent out of the mount (its name, if it was there). Its open files fail
    /// with EIO from then on.
    pub fn remove(&self, hash: &InfoHash) -> Option<String> {
        self.shared.remove(hash)
    }

    /// Makes root listings wait for a torrent on its way, until the guard is dropped.
    pub fn pending(&self) -> Pending {
        let mut p = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(gen_) = p.0.upgrade() {
            return Pending { _gen: gen_ };
        }
        let (open, settled) = rt::bounded(1);
        let gen_ = Arc::new(PendingGen { _open: open });
        *p = (Arc::downgrade(&gen_), settled);
        Pending { _gen: gen_ }
    }

    /// Adds `name` to the status document, rendered by `f` at each open of it.
    pub fn add_status_section(
        &self,
        name: &'static str,
        f: impl Fn() -> Value + Send + Sync + 'static,
    ) {
        self.shared
            .sections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((name, Box::new(f)));
    }
}
