//! What the torrent knows about each connected peer, and the per-peer limits that keep one
//! peer from costing the process more than its share.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::rate::RateMeter;
use crate::bitfield::Bitfield;
use crate::peer::PeerTx;
use crate::rt::CancelSource;
use crate::wire::BlockRequest;

/// Requests kept in flight per peer at first; grows with the peer's rate.
pub(crate) const MIN_QUEUE: usize = 16;
pub(crate) const MAX_QUEUE: usize = 512;
/// Where the growth of an unmeasured peer's pipeline stops (1 MiB, a 4 MB/s peer 250 ms away):
/// uncapped, a loopback seeder's pipeline reached the full 512 blocks before its first
/// measurement; until the rate is known, blocks committed to a peer that may turn out slow are
/// blocks other peers cannot fetch.
const SLOW_START_CAP: usize = 4 * MIN_QUEUE;
/// The floor while a reader waits, once the peer's rate is known: 16 blocks at a 0.1 MB/s peer
/// are 2.6 s that a reader's block would queue behind.
const MIN_STREAM_QUEUE: usize = 4;
/// Seconds of a peer's rate kept in flight while no reader waits: deep pipelines cost nothing
/// then and ride out a peer's pauses.
const BULK_QUEUE_SECS: f64 = 1.0;
/// ... and while a reader waits, at least this much (more for a peer many round trips away):
/// a peer answers requests in order, so a reader's block waits behind the whole pipeline, and
/// that queue sits in the link, where no cancel reaches it. At 2 MB/s seeders 50 ms away
/// (benches/RESULTS.md, issue 13, scenarios 2 and 3), the first read after a seek took
/// 0.99-2.57 s with one second, 0.35-0.36 s with 0.3 s (and once, after a seek onto a piece on
/// disk, the next piece stalled playback 0.134 s), 0.18-0.23 s with 0.15 s, three round trips.
const STREAM_QUEUE_SECS: f64 = 0.15;
/// Round trips kept in flight while a reader waits, so a far peer's link stays full.
const STREAM_QUEUE_RTTS: f64 = 3.0;
/// A peer holding requests a reader waits on that has sent nothing for this long gets a
/// keep-alive, once per quiet spell. aria2 1.36 with an upload limit holds the blocks it owes
/// while its rate meter reads over the limit, and looks again only when the peer sends
/// something or at its 1 s tick; after 10 s idle the meter reads the first 16 KiB block as over
/// it. A stream's first 1 MiB from such a seeder then took 2.0 s (one block, a second's wait,
/// then the rest), where rqbit, whose next requests happened to come 43 ms later, took 0.69 s
/// (aria2's debug log); with the nudge 0.68 s (benches/RESULTS.md, 2026-12-06).
pub(crate) const NUDGE_AFTER: Duration = Duration::from_millis(20);
/// Rate assumed for a peer that has not delivered yet.
const UNMEASURED_RATE: f64 = 256.0 * 1024.0;
/// Their requests we queue before calling it a flood.
pub(crate) const MAX_PENDING_UPLOADS: usize = 512;
/// Blocks we never asked for (or that fit no block) tolerated before dropping a peer. Late
/// answers to requests we withdrew are not counted here: see [`PeerState::withdrawn`].
pub(crate) const MAX_UNREQUESTED: u32 = 64;
/// Allowed-fast pieces kept per peer; BEP 6 suggests 10, more is only a peer padding the list.
pub(crate) const MAX_ALLOWED_FAST: usize = 32;
/// Withdrawn requests remembered per peer, so their late answers are recognised as ours.
const WITHDRAWN_MEMORY: usize = 1024;

/// A budget of control messages (keep-alive, choke, interested, have, ...) per peer: `burst`
/// at once, refilled at `per_sec`. A peer past it is flooding; a flood of keep-alives from two
/// connections froze a two-core process for 20 s before connections yielded and this existed.
#[derive(Debug)]
pub(crate) struct MessageBudget {
    tokens: f64,
    last: Instant,
    burst: f64,
    per_sec: f64,
}

impl MessageBudget {
    pub fn new(burst: u32, per_sec: u32) -> Self {
        MessageBudget {
            tokens: burst as f64,
            last: Instant::now(),
            burst: burst as f64,
            per_sec: per_sec as f64,
        }
    }

    /// Takes one message from the budget; false when the peer is over it.
    pub fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.per_sec).min(self.burst);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

pub(crate) struct PeerState {
    /// Unique per connection: peer keys are reused, so a connection's tasks check this before
    /// acting on the key they were given.
    pub conn: u64,
    pub addr: SocketAddr,
    pub peer_id: [u8; 20],
    pub tx: PeerTx,
    /// Dropped with the peer: ends the connection's tasks.
    pub _close: CancelSource,
    pub has: Bitfield,
    pub peer_choking: bool,
    pub peer_interested: bool,
    pub am_choking: bool,
    pub am_interested: bool,
    pub optimistic: bool,
    /// Our requests to this peer, with the time they were sent.
    pub requests: HashMap<BlockRequest, Instant>,
    /// Requests we withdrew (timeout, choke, endgame cancel), newest last: a block answering
    /// one of them is late, not unasked, and is used if still wanted.
    pub withdrawn: VecDeque<BlockRequest>,
    /// Pieces this peer was given to fetch, finished first.
    pub assigned: Vec<u32>,
    /// How many requests to keep in flight.
    pub queue_target: usize,
    /// The quickest answer to a request seen on this connection: its round trip plus one
    /// block's transfer, an upper bound on the delay a pipeline must cover.
    pub min_latency: Option<Duration>,
    /// Their requests queued for the writer and not yet served.
    pub pending_uploads: usize,
    pub cancelled: Vec<BlockRequest>,
    pub down: RateMeter,
    pub up: RateMeter,
    pub downloaded: u64,
    pub uploaded: u64,
    /// Blocks we did not ask for (or that did not fit any block).
    pub unrequested: u32,
    /// Control messages (anything but blocks and requests).
    pub control: MessageBudget,
    /// BEP 52 hash requests: each answer costs up to 512 hashes copied and a few SHA-256s, so
    /// a flood of them is held to the cost of a trickle of block requests.
    pub hash_requests: MessageBudget,
    /// Requests sent while we choke them, which a polite peer does not do for long.
    pub choked_requests: u32,
    pub connected_at: Instant,
    /// When data last moved either way; `None` if it never has. Peers that exchange data keep
    /// their slots; the others make room for newcomers first.
    pub last_data: Option<Instant>,
    /// When we last nudged it (see [`PeerState::nudge_in`]).
    pub nudged_at: Option<Instant>,
    /// It dialled us: `addr`'s port is not where it listens (see `ext.listen_port`).
    pub incoming: bool,
    /// The extensions (BEP 10) it speaks.
    pub ext: super::state::PeerExtensions,
    /// Both sides speak the fast extension (BEP 6): have-all/none, reject, allowed-fast.
    pub fast: bool,
    /// Pieces it lets us request while it chokes us (BEP 6 allowed-fast), at most
    /// [`MAX_ALLOWED_FAST`].
    pub allowed_fast: Vec<u32>,
}

impl PeerState {
    pub fn new(
        conn: u64,
        addr: SocketAddr,
        peer_id: [u8; 20],
        tx: PeerTx,
        close: CancelSource,
        pieces: u32,
    ) -> Self {
        let now = Instant::now();
        PeerState {
            conn,
            addr,
            peer_id,
            tx,
            _close: close,
            has: Bitfield::new(pieces),
            peer_choking: true,
            peer_interested: false,
            am_choking: true,
            am_interested: false,
            optimistic: false,
            requests: HashMap::new(),
            withdrawn: VecDeque::new(),
            assigned: Vec::new(),
            queue_target: MIN_QUEUE,
            min_latency: None,
            pending_uploads: 0,
            cancelled: Vec::new(),
            down: RateMeter::since(now),
            up: RateMeter::since(now),
            downloaded: 0,
            uploaded: 0,
            unrequested: 0,
            // Bitfield, interested, unchoke and a `have` per piece they finish: a fast peer on
            // small pieces sends a few thousand haves a second.
            control: MessageBudget::new(2000, 4000),
            // libtorrent asks once per 512 pieces of each file it lacks the layer of.
            hash_requests: MessageBudget::new(64, 32),
            choked_requests: 0,
            connected_at: now,
            last_data: None,
            nudged_at: None,
            incoming: false,
            ext: Default::default(),
            fast: false,
            allowed_fast: Vec::new(),
        }
    }

    /// Sizes the pipeline to this peer's rate times the delay it must cover: a second while
    /// no reader waits (`streaming` false), a few round trips while one does.
    pub fn retarget_queue(&mut self, streaming: bool) {
        let rate = self.down.rate() as f64;
        let (secs, min) = match (streaming, rate > 0.0) {
            (true, true) => {
                let rtts = self
                    .min_latency
                    .map_or(0.0, |l| l.as_secs_f64() * STREAM_QUEUE_RTTS);
                (
                    rtts.clamp(STREAM_QUEUE_SECS, BULK_QUEUE_SECS),
                    MIN_STREAM_QUEUE,
                )
            }
            _ => (BULK_QUEUE_SECS, MIN_QUEUE),
        };
        let blocks = (rate * secs / crate::wire::BLOCK_SIZE as f64) as usize;
        self.queue_target = blocks.clamp(min, MAX_QUEUE);
    }

    /// Records the answer to a request sent at `sent`. Until its rate is first measured, a
    /// peer's pipeline grows by a block per answer (doubling each round trip, as TCP's slow
    /// start) up to [`SLOW_START_CAP`], unless a reader waits: 16 blocks only just cover a 4 MB/s
    /// seeder 50 ms away, and such links idled about 0.1 s in their first second (swarm
    /// scenario 5, the proxies' idle figures; benches/RESULTS.md, 2026-12-06).
    pub fn answered(&mut self, sent: Instant, now: Instant, streaming: bool) {
        let took = now.saturating_duration_since(sent);
        self.min_latency = Some(self.min_latency.map_or(took, |m| m.min(took)));
        if !streaming && self.down.rate() == 0 && self.queue_target < SLOW_START_CAP {
            self.queue_target += 1;
        }
    }

    /// How long until this peer should be nudged: it is not choking us, holds a request for a
    /// piece `waited_on`, has sent nothing since that request or its last data for
    /// [`NUDGE_AFTER`] or two of its quickest answers, whichever is longer, and was not nudged
    /// since its last data. `None` if no nudge is due at all.
    pub fn nudge_in(&self, waited_on: impl Fn(u32) -> bool, now: Instant) -> Option<Duration> {
        if self.peer_choking
            || self
                .nudged_at
                .is_some_and(|n| self.last_data.is_none_or(|d| n >= d))
        {
            return None;
        }
        let oldest = self
            .requests
            .iter()
            .filter(|(r, _)| waited_on(r.piece))
            .map(|(_, &sent)| sent)
            .min()?;
        let quiet_from = self.last_data.map_or(oldest, |d| d.max(oldest));
        // A far peer's answers take a while anyway: quiet is only what outlasts two trips.
        let after = self
            .min_latency
            .map_or(NUDGE_AFTER, |l| NUDGE_AFTER.max(l * 2));
        Some(after.saturating_sub(now.saturating_duration_since(quiet_from)))
    }

    /// Seconds until this peer would deliver `more` blocks asked of it now, behind its
    /// outstanding requests, at its observed rate.
    pub fn eta_secs(&self, more: usize) -> f64 {
        self.secs_for(self.requests.len() + more)
    }

    /// Seconds this peer takes to send `blocks` blocks at its observed rate.
    pub fn secs_for(&self, blocks: usize) -> f64 {
        let rate = match self.down.rate() {
            0 => UNMEASURED_RATE,
            r => r as f64,
        };
        blocks as f64 * crate::wire::BLOCK_SIZE as f64 / rate
    }

    /// Seconds of work already queued at this peer.
    pub fn queue_secs(&self) -> f64 {
        self.eta_secs(0)
    }

    /// Forgets request `r` as withdrawn: its answer may still come.
    pub fn withdraw(&mut self, r: BlockRequest) {
        if self.requests.remove(&r).is_some() {
            if self.withdrawn.len() >= WITHDRAWN_MEMORY {
                self.withdrawn.pop_front();
            }
            self.withdrawn.push_back(r);
        }
    }

    /// Whether `r` answers a request we withdrew (and forgets it).
    pub fn take_withdrawn(&mut self, r: &BlockRequest) -> bool {
        match self.withdrawn.iter().position(|w| w == r) {
            Some(i) => {
                self.withdrawn.remove(i);
                true
            }
            None => false,
        }
    }

    /// Whether this peer may be evicted for a newcomer: connected at least `grace` (time to
    /// get started) and either never moved data or not for `idle`.
    pub fn evictable(&self, now: Instant, idle: Duration, grace: Duration) -> bool {
        now.saturating_duration_since(self.connected_at) >= grace
            && self
                .last_data
                .is_none_or(|t| now.saturating_duration_since(t) >= idle)
    }
}
