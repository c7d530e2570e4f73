//! What the engine knows about each connected peer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use async_std::channel::Sender;

use super::rate::RateMeter;
use crate::bitfield::Bitfield;
use crate::wire::{BlockRequest, Message};

/// Work for a connection's writer task.
#[derive(Debug)]
pub(crate) enum Outbound {
    Msg(Message),
    /// Read this block from storage and send it, if still allowed.
    Serve(BlockRequest),
}

pub(crate) struct PeerState {
    /// Unique per connection: peer keys are reused, so a connection's tasks check this before
    /// acting on the key they were given.
    pub conn: u64,
    pub addr: SocketAddr,
    pub peer_id: [u8; 20],
    pub tx: Sender<Outbound>,
    /// Used to break the reader out of its read when we drop the peer.
    pub stream: async_std::net::TcpStream,
    pub has: Bitfield,
    pub peer_choking: bool,
    pub peer_interested: bool,
    pub am_choking: bool,
    pub am_interested: bool,
    pub optimistic: bool,
    /// Our requests to this peer, with the time they were sent.
    pub requests: HashMap<BlockRequest, Instant>,
    /// Pieces this peer was given to fetch, finished first.
    pub assigned: Vec<u32>,
    /// How many requests to keep in flight.
    pub queue_target: usize,
    /// Their requests queued for the writer and not yet served.
    pub pending_uploads: usize,
    pub cancelled: Vec<BlockRequest>,
    pub down: RateMeter,
    pub up: RateMeter,
    pub downloaded: u64,
    pub uploaded: u64,
    /// Blocks we did not ask for (or that did not fit any block).
    pub unrequested: u32,
    /// When the peer last gave or asked for data (or connected); the stalest goes first when a
    /// newcomer needs its slot.
    pub last_useful: Instant,
}

/// Requests kept in flight per peer at first; grows with the peer's rate.
pub(crate) const MIN_QUEUE: usize = 16;
pub(crate) const MAX_QUEUE: usize = 512;
/// Their requests we queue before calling it a flood.
pub(crate) const MAX_PENDING_UPLOADS: usize = 512;
/// Unrequested or malformed blocks tolerated before dropping a peer.
pub(crate) const MAX_UNREQUESTED: u32 = 64;

impl PeerState {
    pub fn new(
        conn: u64,
        addr: SocketAddr,
        peer_id: [u8; 20],
        tx: Sender<Outbound>,
        stream: async_std::net::TcpStream,
        pieces: u32,
    ) -> Self {
        PeerState {
            conn,
            addr,
            peer_id,
            tx,
            stream,
            has: Bitfield::new(pieces),
            peer_choking: true,
            peer_interested: false,
            am_choking: true,
            am_interested: false,
            optimistic: false,
            requests: HashMap::new(),
            assigned: Vec::new(),
            queue_target: MIN_QUEUE,
            pending_uploads: 0,
            cancelled: Vec::new(),
            down: RateMeter::default(),
            up: RateMeter::default(),
            downloaded: 0,
            uploaded: 0,
            unrequested: 0,
            last_useful: Instant::now(),
        }
    }

    pub fn send(&self, m: Message) {
        // A closed channel means the connection is going away; nothing to do.
        let _ = self.tx.try_send(Outbound::Msg(m));
    }

    /// Sizes the pipeline to about one second of this peer's rate (bandwidth-delay product with
    /// a generous delay), within bounds.
    pub fn retarget_queue(&mut self) {
        let per_sec = self.down.rate() as usize / crate::wire::BLOCK_SIZE as usize;
        self.queue_target = per_sec.clamp(MIN_QUEUE, MAX_QUEUE);
    }
}
