//! Tracker client: announce to one tracker URL and get peers back.
//!
//! Calls are blocking (the engine runs them on a blocking-task pool), so that the same trait
//! works across the C ABI of a dynamic plugin. An implementation bounds its own time.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnnounceEvent {
    None,
    Started,
    Completed,
    Stopped,
}

#[derive(Clone, Debug)]
pub struct AnnounceRequest {
    pub info_hash: [u8; 20],
    pub peer_id: [u8; 20],
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: AnnounceEvent,
    pub num_want: u32,
    /// Random per session, lets a tracker recognise us across IP changes.
    pub key: u32,
    /// How long the whole call may take.
    pub timeout: Duration,
    /// The address the announce must leave from (the session's listen address when it names
    /// one), so that the tracker hands out an address we listen on; `None` lets the routing
    /// table choose. A client that cannot bind to it must fail the announce, not send it from
    /// elsewhere.
    pub local_ip: Option<IpAddr>,
}

#[derive(Clone, Debug, Default)]
pub struct AnnounceResponse {
    pub peers: Vec<SocketAddr>,
    pub interval: Duration,
    pub min_interval: Option<Duration>,
    pub seeders: Option<u32>,
    pub leechers: Option<u32>,
    pub warning: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    /// The tracker answered with a `failure reason`.
    #[error("tracker refused: {0}")]
    Failure(String),
    #[error("tracker unreachable: {0}")]
    Unreachable(String),
    #[error("tracker timed out")]
    Timeout,
    #[error("tracker sent an invalid reply: {0}")]
    BadReply(String),
    #[error("unsupported tracker URL: {0}")]
    Unsupported(String),
}

pub trait Tracker: Send + Sync {
    /// The announce URL this instance talks to.
    fn url(&self) -> &str;
    /// One announce; blocks up to `req.timeout`.
    fn announce(&self, req: &AnnounceRequest) -> Result<AnnounceResponse, TrackerError>;
}

/// A [`Tracker`] client that can be opened for an announce URL; what a built-in or a plugin
/// library needs to offer.
pub trait TrackerOpen: Tracker + Sized + 'static {
    fn open(url: &str) -> Result<Self, TrackerError>;
}
