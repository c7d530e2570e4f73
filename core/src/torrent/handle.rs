//! The public face of a running torrent.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::engine::Engine;
use crate::bitfield::Bitfield;
use crate::events::EventSink;
use crate::metainfo::Metainfo;
use crate::plugin::{PiecePicker, Storage, StorageError, Tracker};

/// How to run one torrent.
#[derive(Clone, Debug)]
pub struct TorrentConfig {
    pub meta: Arc<Metainfo>,
    /// Where the resume file is kept (`<state_dir>/<info-hash>.resume`).
    pub state_dir: PathBuf,
    /// Where a persistent storage keeps the torrent's files; their sizes and times tell whether
    /// the resume file still holds for them.
    pub data_dir: PathBuf,
    /// Fail at start, before listening, unless every piece is on disk and verifies (`seed`).
    pub require_complete: bool,
    /// Address to accept peers on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Peers to dial besides those trackers return (tests, `--peer`).
    pub extra_peers: Vec<SocketAddr>,
    pub max_peers: usize,
    /// Keep serving after the download completes.
    pub seed: bool,
    /// Fetch only what readers ask for (mount `--lazy`); otherwise everything.
    pub lazy: bool,
    /// A read that waits longer than this fails.
    pub read_timeout: Duration,
    /// Bytes per second, 0 = unlimited.
    pub download_limit: u64,
    pub upload_limit: u64,
    /// Regular upload slots of the choker (one more is optimistic).
    pub upload_slots: usize,
    /// Longest readahead window in bytes. A storage that lets data go must not be asked to read
    /// ahead more than it can hold, or it evicts what the reader needs next.
    pub max_readahead: u64,
}

/// The plugin instances a torrent runs with.
pub struct Plugins {
    pub picker: Box<dyn PiecePicker>,
    pub picker_name: String,
    /// Takes over, told everything the engine knows, if `picker` reports a fault
    /// ([`PiecePicker::fault`]); a built-in, so that it cannot break the same way.
    pub fallback_picker: Box<dyn PiecePicker>,
    pub fallback_picker_name: String,
    pub storage: Arc<dyn Storage>,
    pub storage_name: String,
    /// Trackers in BEP 12 tiers.
    pub trackers: Vec<Vec<Arc<dyn Tracker>>>,
}

/// A snapshot of progress for display and the mount's status file.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Stats {
    pub pieces_total: u32,
    pub pieces_have: u32,
    pub bytes_total: u64,
    pub bytes_have: u64,
    pub downloaded: u64,
    pub uploaded: u64,
    /// Bytes per second over the last few seconds.
    pub download_rate: u64,
    pub upload_rate: u64,
    pub peers: usize,
    pub waiting_reads: usize,
    pub complete: bool,
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("resume file {path}: {source}")]
    Resume {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("engine stopped")]
    Stopped,
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Data(#[from] super::recheck::DataError),
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("read of {len} bytes at {offset} timed out waiting for pieces")]
    Timeout { offset: u64, len: u64 },
    #[error("read at {offset} is past the end of the torrent")]
    OutOfRange { offset: u64 },
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("engine stopped")]
    Stopped,
}

/// A running torrent. Cloning gives another handle to the same torrent.
#[derive(Clone)]
pub struct TorrentHandle {
    engine: Arc<Engine>,
}

impl TorrentHandle {
    /// Opens storage, loads or rebuilds resume state, binds the listener and starts peers and
    /// trackers in the background.
    pub async fn start(
        cfg: TorrentConfig,
        plugins: Plugins,
        events: EventSink,
    ) -> Result<TorrentHandle, EngineError> {
        Ok(TorrentHandle {
            engine: Engine::start(cfg, plugins, events).await?,
        })
    }

    /// Reads the torrent-global byte range `offset..offset+len` (clamped to the torrent's end),
    /// waiting until every piece under it is verified; those pieces jump the queue. Fails after
    /// the configured `read_timeout`. Dropping the future withdraws the request.
    pub async fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, ReadError> {
        self.engine.read(offset, len).await
    }

    /// Readahead hint: fetch `range` soon, ahead of background pieces but after pending reads;
    /// `urgency` is how far in the future the bytes will be needed. Replaces the previous hint of
    /// the same `reader` (one reader = one open file handle).
    pub fn prefetch(&self, reader: u64, range: Range<u64>, urgency: Duration) {
        self.engine.prefetch(reader, range, urgency)
    }

    /// Forgets the readahead of `reader` (its file handle was closed).
    pub fn forget_reader(&self, reader: u64) {
        self.engine.forget_reader(reader)
    }

    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }

    /// Which pieces are verified and stored.
    pub fn have(&self) -> Bitfield {
        self.engine.state().have.clone()
    }

    /// The address peers can reach us on.
    pub fn listen_addr(&self) -> SocketAddr {
        self.engine.listen_addr
    }

    /// Resolves once every piece is verified; fails if storage failed or the torrent stopped.
    pub async fn wait_complete(&self) -> Result<(), EngineError> {
        self.engine.wait_complete().await
    }

    /// Announces `stopped`, flushes storage and the resume file, closes connections. Pending
    /// reads fail with [`ReadError::Stopped`].
    pub async fn shutdown(&self) {
        self.engine.shutdown().await
    }
}
