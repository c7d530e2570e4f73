//! One torrent's engine: peers, piece states, verification, storage, readers and trackers.
//!
//! [`TorrentHandle`] is the whole public surface: `download`, `seed` and the FUSE mount drive a
//! torrent only through it.

mod handle;

pub use handle::{EngineError, Plugins, ReadError, Stats, TorrentConfig, TorrentHandle};
