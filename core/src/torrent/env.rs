//! What a torrent gets from its session: identity, listen address, shared limits, the peer
//! budget, the event bus; and how it is configured.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::rate::RateLimiter;
use crate::events::EventBus;
use crate::metainfo::Metainfo;
use crate::plugin::{PiecePicker, Storage, Tracker};
use crate::rt::{self, TcpStream};

/// How to run one torrent.
#[derive(Clone, Debug)]
pub struct TorrentConfig {
    pub meta: Arc<Metainfo>,
    /// Directory the files are placed under, when the storage keeps them on disk; their sizes
    /// and times tell whether the resume file still holds for them.
    pub data_dir: Option<PathBuf>,
    /// Fail at start, before going live, unless every piece is on disk and verifies (`seed`).
    pub require_complete: bool,
    /// Where the resume file is kept (`<state_dir>/<info-hash>.resume`).
    pub state_dir: PathBuf,
    /// Peers to dial besides those trackers return (tests, `--peer`).
    pub extra_peers: Vec<SocketAddr>,
    pub max_peers: usize,
    /// Keep serving after the download completes.
    pub seed: bool,
    /// Fetch only what readers ask for (mount `--lazy`); otherwise everything.
    pub lazy: bool,
    /// A read that waits longer than this fails.
    pub read_timeout: Duration,
    /// Regular upload slots of the choker (one more is optimistic).
    pub upload_slots: usize,
    /// Longest readahead window in bytes. A storage that lets data go must not be asked to read
    /// ahead more than it can hold, or it evicts what the reader needs next.
    pub max_readahead: u64,
}

/// The session's connection budget: every torrent's peers and dials count against it.
#[derive(Debug)]
pub(crate) struct PeerBudget {
    max: usize,
    used: AtomicUsize,
}

/// One connection's share of the budget, returned when dropped.
pub(crate) struct PeerSlot(Arc<PeerBudget>);

impl PeerBudget {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(PeerBudget {
            max,
            used: AtomicUsize::new(0),
        })
    }

    pub fn take(self: &Arc<Self>) -> Option<PeerSlot> {
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |u| {
                (u < self.max).then_some(u + 1)
            })
            .ok()
            .map(|_| PeerSlot(self.clone()))
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        self.0.used.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Shared by every torrent of a session.
#[derive(Clone)]
pub(crate) struct Env {
    pub peer_id: [u8; 20],
    /// The address peers reach us on (the session's listener).
    pub listen_addr: SocketAddr,
    pub down_limit: Arc<RateLimiter>,
    pub up_limit: Arc<RateLimiter>,
    pub budget: Arc<PeerBudget>,
    pub events: Arc<EventBus>,
}

impl Env {
    /// The address outgoing connections leave from: the listen address when it names one (a VPN
    /// or one interface), so that a tracker or peer sees the address we are reachable on; `None`
    /// for a wildcard listen, where the routing table chooses.
    pub fn local_ip(&self) -> Option<IpAddr> {
        let ip = self.listen_addr.ip();
        (!ip.is_unspecified()).then_some(ip)
    }

    /// Opens an outgoing connection to a peer, from [`Env::local_ip`].
    pub async fn connect(&self, addr: SocketAddr) -> std::io::Result<TcpStream> {
        let stream = rt::connect_from(self.local_ip(), addr).await?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
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
