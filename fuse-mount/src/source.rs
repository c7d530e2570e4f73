//! What the mount needs from a torrent: its bytes, through core's readers, and its progress.
//!
//! The CLI mounts a [`TorrentHandle`]; the trait exists so the FUSE layer's own tests can inject
//! faults a real swarm cannot produce on demand (a read that never returns, a failing read).

use rivulet_core::bitfield::Bitfield;
use rivulet_core::reader::TorrentBytes;
use rivulet_core::torrent::{Stats, TorrentHandle};

/// A running torrent as the mount sees it.
pub trait Source: TorrentBytes {
    fn stats(&self) -> Stats;
    fn have(&self) -> Bitfield;
}

impl Source for TorrentHandle {
    fn stats(&self) -> Stats {
        TorrentHandle::stats(self)
    }

    fn have(&self) -> Bitfield {
        TorrentHandle::have(self)
    }
}
