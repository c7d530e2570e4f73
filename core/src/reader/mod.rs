//! Readers of a torrent's files, for every front end: a FUSE file handle, an HTTP response
//! streaming a range.
//!
//! A [`Reader`] is one consumer of one file. It maps file offsets onto the torrent, follows the
//! consumer's sequential runs to put readahead deadlines on the pieces ahead (its window, shared
//! fairly with the other readers of the torrent within what the storage can hold), and
//! remembers which bytes it already waited for in vain. Its id is allocated here, so two front
//! ends never collide; dropping it withdraws its readahead. Several reads of one reader may be
//! in flight at once (the kernel sends readahead requests concurrently): `read_at` updates the
//! reader's state under a short lock and returns a future that owns what it needs.

mod budget;
mod gave_up;
mod readahead;

use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::metainfo::Metainfo;
use crate::torrent::{ReadError, TorrentHandle};
use budget::Budget;
use gave_up::GaveUp;
use readahead::Readahead;

/// The torrent as readers use it; offsets are torrent-global. [`TorrentHandle`] is the real
/// one; front ends' tests implement it to inject faults a swarm cannot produce on demand.
pub trait TorrentBytes: Send + Sync + 'static {
    /// Reads `offset..offset+len`, waiting for the pieces under it until the torrent's read
    /// timeout. The future owns what it needs; dropping it withdraws the request.
    fn read(
        &self,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = Result<Vec<u8>, ReadError>> + Send + 'static + use<Self>;
    /// Replaces `reader`'s readahead window: `range` is needed in `urgency`.
    fn prefetch(&self, reader: u64, range: Range<u64>, urgency: Duration);
    /// Withdraws `reader`'s readahead window.
    fn forget_reader(&self, reader: u64);
    /// Bytes all readers' windows together may span (`u64::MAX`: no limit), so that a storage
    /// that lets data go is never asked to hold more readahead than it can.
    fn readahead_budget(&self) -> u64 {
        u64::MAX
    }
}

impl TorrentBytes for TorrentHandle {
    fn read(
        &self,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = Result<Vec<u8>, ReadError>> + Send + 'static + use<> {
        let handle = self.clone();
        async move { handle.read(offset, len).await }
    }

    fn prefetch(&self, reader: u64, range: Range<u64>, urgency: Duration) {
        TorrentHandle::prefetch(self, reader, range, urgency);
    }

    fn forget_reader(&self, reader: u64) {
        TorrentHandle::forget_reader(self, reader);
    }

    fn readahead_budget(&self) -> u64 {
        self.config().max_readahead
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    #[error("the torrent has no file {0}")]
    NoSuchFile(usize),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("the torrent answered {got} of {len} bytes at {offset}")]
    Short { offset: u64, len: u64, got: u64 },
}

/// Reader ids are unique in the process, so whichever front end opens a reader, and however
/// many [`Readers`] there are, the engine never mixes two readers' windows up.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Opens readers of one torrent's files; clones share the readahead budget. Make one per
/// torrent and hand it to every front end: two would each spend the whole budget.
pub struct Readers<T> {
    shared: Arc<Shared<T>>,
}

struct Shared<T> {
    torrent: T,
    meta: Arc<Metainfo>,
    budget: Budget,
}

impl<T> Clone for Readers<T> {
    fn clone(&self) -> Self {
        Readers {
            shared: self.shared.clone(),
        }
    }
}

impl<T: TorrentBytes> Readers<T> {
    pub fn new(torrent: T, meta: Arc<Metainfo>) -> Self {
        let budget = Budget::new(torrent.readahead_budget(), meta.piece_length);
        Readers {
            shared: Arc::new(Shared {
                torrent,
                meta,
                budget,
            }),
        }
    }

    pub fn torrent(&self) -> &T {
        &self.shared.torrent
    }

    /// A reader of file `index` of the torrent, positioned nowhere yet.
    pub fn open(&self, index: usize) -> Result<Reader<T>, ReaderError> {
        let file = self
            .shared
            .meta
            .files
            .get(index)
            .ok_or(ReaderError::NoSuchFile(index))?;
        Ok(Reader {
            shared: self.shared.clone(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            start: file.offset,
            len: file.length,
            state: Arc::default(),
        })
    }
}

/// One consumer of one file of the torrent.
pub struct Reader<T: TorrentBytes> {
    shared: Arc<Shared<T>>,
    id: u64,
    /// Torrent-global offset of the file's first byte.
    start: u64,
    len: u64,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    readahead: Readahead,
    gave_up: GaveUp,
    /// Whether the engine holds a window of this reader.
    has_window: bool,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Every update leaves the state usable; a panic elsewhere must not stop reads.
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T: TorrentBytes> Reader<T> {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Length of the file.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads `len` bytes at file offset `offset`, clamped to the end of the file (past it:
    /// nothing), waiting for the pieces under them; never a short answer. The readahead is
    /// updated before this returns, so reads issued one after another are seen in that order
    /// even when their futures run concurrently.
    pub fn read_at(
        &self,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = Result<Vec<u8>, ReaderError>> + Send + 'static + use<T> {
        let end = offset.saturating_add(len).min(self.len);
        let started = (offset < end).then(|| self.start_read(offset..end));
        async move {
            match started {
                Some(read) => read.await,
                None => Ok(Vec::new()),
            }
        }
    }

    /// Updates the readahead for a read of `range` (non-empty, inside the file) and starts it.
    fn start_read(
        &self,
        range: Range<u64>,
    ) -> impl Future<Output = Result<Vec<u8>, ReaderError>> + Send + 'static + use<T> {
        let now = Instant::now();
        let len = range.end - range.start;
        let retry = {
            let mut st = lock(&self.state);
            let hint = st.readahead.on_read(range.start, len, self.len, now);
            let want = hint.as_ref().map_or(0..0, |h| {
                self.start + h.range.start..self.start + h.range.end
            });
            let torrent = &self.shared.torrent;
            // Under the lock: hints of concurrent reads reach the engine in the order taken.
            match self.shared.budget.grant(self.id, want) {
                Some(window) => {
                    let urgency = hint.map_or(Duration::ZERO, |h| h.urgency);
                    tracing::trace!(reader = self.id, ?window, "readahead");
                    torrent.prefetch(self.id, window, urgency);
                    st.has_window = true;
                }
                None if st.has_window => {
                    torrent.forget_reader(self.id);
                    st.has_window = false;
                }
                None => {}
            }
            st.gave_up.covers(&range, now)
        };
        let offset = self.start + range.start;
        let read = self.shared.torrent.read(offset, len);
        let state = self.state.clone();
        async move {
            let result = if retry {
                // These bytes were waited for a whole timeout moments ago: serve them if they
                // came since, never wait for them again.
                crate::rt::timeout(Duration::ZERO, read)
                    .await
                    .unwrap_or_else(|_| {
                        tracing::debug!(offset, len, "read of bytes that just timed out");
                        Err(ReadError::Timeout { offset, len })
                    })
            } else {
                read.await
            };
            match result {
                Ok(data) if data.len() as u64 == len => Ok(data),
                Ok(data) => Err(ReaderError::Short {
                    offset,
                    len,
                    got: data.len() as u64,
                }),
                Err(e) => {
                    // A retry that fails does not extend the first wait: a second later the
                    // reader gets a fresh one.
                    if !retry && matches!(e, ReadError::Timeout { .. }) {
                        lock(&state).gave_up.record(range, Instant::now());
                    }
                    Err(e.into())
                }
            }
        }
    }
}

impl<T: TorrentBytes> Drop for Reader<T> {
    fn drop(&mut self) {
        self.shared.budget.release(self.id);
        if lock(&self.state).has_window {
            self.shared.torrent.forget_reader(self.id);
        }
    }
}

#[cfg(test)]
mod tests;
