//! The public face of a running torrent.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use super::env::TorrentConfig;
use super::error::{EngineError, ReadError};
use super::runner::Torrent;
use super::state::Phase;
use crate::bitfield::Bitfield;

/// A snapshot of progress for display and the mount's status file.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Stats {
    pub phase: Phase,
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
    /// Addresses known to dial, per source (tracker, manual, incoming).
    pub known_peers: std::collections::HashMap<super::PeerSource, usize>,
    pub waiting_reads: usize,
    /// Bytes held in pieces still being assembled (bounded: see the piece tracker).
    pub partial_bytes: u64,
    pub complete: bool,
    /// Why fetching stopped, while storage writes fail.
    pub storage_error: Option<String>,
    pub listen: Option<SocketAddr>,
}

/// One connected peer, for display (the HTTP API's peer list).
#[derive(Clone, Debug, serde::Serialize)]
pub struct PeerInfo {
    pub addr: SocketAddr,
    /// The client's peer-id prefix (e.g. `-qB4650-`), printable characters only.
    pub client: String,
    pub download_rate: u64,
    pub upload_rate: u64,
    pub downloaded: u64,
    pub uploaded: u64,
    /// Pieces the peer says it has.
    pub pieces: u32,
    pub peer_choking: bool,
    pub am_choking: bool,
}

/// A running torrent. Cloning gives another handle to the same torrent.
#[derive(Clone)]
pub struct TorrentHandle {
    pub(crate) torrent: Arc<Torrent>,
}

impl TorrentHandle {
    /// Reads the torrent-global byte range `offset..offset+len` (clamped to the torrent's end),
    /// waiting until every piece under it is verified; those pieces jump the queue. Fails after
    /// the configured `read_timeout`. Dropping the future withdraws the request.
    pub async fn read(&self, offset: u64, len: u64) -> Result<Vec<u8>, ReadError> {
        self.torrent.read(offset, len).await
    }

    /// Readahead hint: fetch `range` soon, ahead of background pieces but after pending reads;
    /// `urgency` is how far in the future the bytes will be needed. Replaces the previous hint of
    /// the same `reader` (one reader = one open file handle).
    pub fn prefetch(&self, reader: u64, range: Range<u64>, urgency: Duration) {
        self.torrent.prefetch(reader, range, urgency)
    }

    /// Forgets the readahead of `reader` (its file handle was closed).
    pub fn forget_reader(&self, reader: u64) {
        self.torrent.forget_reader(reader)
    }

    pub fn meta(&self) -> &Arc<crate::metainfo::Metainfo> {
        &self.torrent.meta
    }

    /// How the torrent runs: its metainfo, read timeout, readahead cap.
    pub fn config(&self) -> &TorrentConfig {
        &self.torrent.cfg
    }

    pub fn stats(&self) -> Stats {
        let t = &self.torrent;
        let s = t.state();
        Stats {
            phase: s.phase,
            pieces_total: s.pieces.have.len(),
            pieces_have: s.pieces.have.count(),
            bytes_total: t.meta.total_length,
            bytes_have: s.pieces.bytes_have(),
            downloaded: s.downloaded,
            uploaded: s.uploaded,
            download_rate: s.down.rate(),
            upload_rate: s.up.rate(),
            peers: s.swarm.peers.len(),
            known_peers: s.swarm.sources(),
            waiting_reads: s.readers.waiting(),
            partial_bytes: s.pieces.partial_bytes(),
            complete: s.complete(),
            storage_error: s.storage_fault.as_ref().map(|f| f.error.to_string()),
            listen: Some(t.env.listen_addr),
        }
    }

    /// The peers connected now.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let s = self.torrent.state();
        s.swarm
            .peers
            .values()
            .map(|p| PeerInfo {
                addr: p.addr,
                client: p.peer_id[..8]
                    .iter()
                    .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
                    .collect(),
                download_rate: p.down.rate(),
                upload_rate: p.up.rate(),
                downloaded: p.downloaded,
                uploaded: p.uploaded,
                pieces: p.has.count(),
                peer_choking: p.peer_choking,
                am_choking: p.am_choking,
            })
            .collect()
    }

    /// Which pieces are verified and stored.
    pub fn have(&self) -> Bitfield {
        self.torrent.state().pieces.have.clone()
    }

    /// The address peers can reach us on.
    pub fn listen_addr(&self) -> SocketAddr {
        self.torrent.env.listen_addr
    }

    pub fn phase(&self) -> Phase {
        self.torrent.phase()
    }

    /// Resolves once every piece is verified; fails if storage failed or the torrent stopped.
    pub async fn wait_complete(&self) -> Result<(), EngineError> {
        self.torrent.wait_complete().await
    }

    /// Closes every connection and stops fetching and announcing until [`Self::resume`].
    pub async fn pause(&self) {
        self.torrent.pause().await
    }

    pub fn resume(&self) {
        self.torrent.resume()
    }

    /// Adds peers to dial (the session API's and `--peer`'s way in).
    pub fn add_peers(&self, peers: &[SocketAddr]) {
        self.torrent.add_peers(super::PeerSource::Manual, peers)
    }

    /// Tasks this torrent still runs; zero once [`Self::shutdown`] returned.
    pub fn live_tasks(&self) -> usize {
        self.torrent.tasks.live()
    }

    /// Announces `stopped`, flushes storage and the resume file, closes connections and ends
    /// every task of the torrent. Pending reads fail with [`ReadError::Stopped`].
    pub async fn shutdown(&self) {
        self.torrent.shutdown().await
    }
}
