//! What the mount needs from a torrent.
//!
//! The CLI mounts a [`TorrentHandle`]; the trait exists so the FUSE layer's own tests can inject
//! faults a real swarm cannot produce on demand (a read that never returns, a failing read).

use std::future::Future;
use std::ops::Range;
use std::time::Duration;

use rivulet_core::bitfield::Bitfield;
use rivulet_core::torrent::{ReadError, Stats, TorrentHandle};

/// The reading side of a running torrent; offsets are torrent-global.
pub trait Source: Send + Sync + 'static {
    /// Reads `offset..offset+len`, waiting for the pieces under it. The future owns what it
    /// needs, so it can be moved into a task that answers the kernel later.
    fn read(
        &self,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = Result<Vec<u8>, ReadError>> + Send + 'static;
    /// Readahead hint of one reader (open file handle); replaces its previous hint.
    fn prefetch(&self, reader: u64, range: Range<u64>, urgency: Duration);
    /// The reader's file handle was closed.
    fn forget_reader(&self, reader: u64);
    fn stats(&self) -> Stats;
    fn have(&self) -> Bitfield;
}

impl Source for TorrentHandle {
    fn read(
        &self,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = Result<Vec<u8>, ReadError>> + Send + 'static {
        let handle = self.clone();
        async move { handle.read(offset, len).await }
    }

    fn prefetch(&self, reader: u64, range: Range<u64>, urgency: Duration) {
        TorrentHandle::prefetch(self, reader, range, urgency);
    }

    fn forget_reader(&self, reader: u64) {
        TorrentHandle::forget_reader(self, reader);
    }

    fn stats(&self) -> Stats {
        TorrentHandle::stats(self)
    }

    fn have(&self) -> Bitfield {
        TorrentHandle::have(self)
    }
}
