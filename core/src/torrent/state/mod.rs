//! One torrent's state under its lock, composed of owned parts (pieces, swarm, choker,
//! readers), and every decision taken on a message, a finished piece or a tick.
//!
//! Methods never block, await, send or write: they change the parts and push effects (sends,
//! events, wakes) that the runner carries out after releasing the lock. See STATE.md.

use std::sync::Arc;
use std::time::{Duration, Instant};

mod extended;
mod fast;
mod outcomes;
mod pex;

pub(crate) use extended::PeerExtensions;
pub(crate) use fast::Upload;

use super::assembly::{Accepted, BlockDigest};
use super::choker::Choker;
use super::effects::{Effects, SpillBlock};
use super::peers::{MAX_PENDING_UPLOADS, MAX_UNREQUESTED, PeerState};
use super::pieces::PieceTracker;
use super::rate::RateMeter;
use super::readers::Readers;
use super::schedule::Scheduler;
use super::swarm::Swarm;
use crate::bitfield::Bitfield;
use crate::events::Event;
use crate::metainfo::Metainfo;
use crate::peer::DropReason;
use crate::plugin::{PeerKey, StorageError};
use crate::rt::Sender;
use crate::wire::{BlockRequest, Message};

/// Largest block we serve; BEP 3 clients ask for 16 KiB, a few for up to 128 KiB.
const MAX_SERVED_BLOCK: u32 = 128 * 1024;
/// A request unanswered this long is given to another peer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The same for a piece a reader is waiting on: a late piece must not stall a player.
const URGENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// An unfinished piece nobody has sent a block of for this long, with nothing in flight, is
/// released (its memory too).
const STALE_PIECE: Duration = Duration::from_secs(20);
/// Requests a peer may send while we choke it before it is dropped (a few cross our choke on
/// the wire; a peer that keeps asking only holds a slot).
const MAX_CHOKED_REQUESTS: u32 = 256;
/// After a storage write failed (disk full), fetching is retried this often.
pub(super) const STORAGE_RETRY: Duration = Duration::from_secs(10);

/// Where a torrent is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Checking what the storage holds.
    #[default]
    Checking,
    Live,
    Paused,
    /// Stopped for good (shutdown or removed).
    Stopped,
}

/// A storage failure that stopped fetching, and when to try again.
#[derive(Clone, Debug)]
pub(crate) struct StorageFault {
    pub error: Arc<StorageError>,
    pub retry_at: Instant,
}

pub(crate) struct TorrentState {
    pub meta: Arc<Metainfo>,
    pub pieces: PieceTracker,
    pub swarm: Swarm,
    pub choker: Choker,
    pub readers: Readers,
    pub phase: Phase,
    pub clock: Instant,
    pub downloaded: u64,
    pub uploaded: u64,
    pub down: RateMeter,
    pub up: RateMeter,
    pub complete_waiters: Vec<Sender<()>>,
    pub resume_dirty: bool,
    /// Set while storage writes fail: no new blocks are fetched, waiting reads fail at once.
    pub storage_fault: Option<StorageFault>,
}

impl TorrentState {
    pub fn new(meta: Arc<Metainfo>, pieces: PieceTracker, upload_slots: usize) -> Self {
        TorrentState {
            meta,
            pieces,
            swarm: Swarm::default(),
            choker: Choker::new(upload_slots),
            readers: Readers::default(),
            phase: Phase::Checking,
            clock: Instant::now(),
            downloaded: 0,
            uploaded: 0,
            down: RateMeter::default(),
            up: RateMeter::default(),
            complete_waiters: Vec::new(),
            resume_dirty: false,
            storage_fault: None,
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    pub fn complete(&self) -> bool {
        self.pieces.complete()
    }

    fn scheduler(&mut self) -> Scheduler<'_> {
        Scheduler {
            pieces: &mut self.pieces,
            swarm: &mut self.swarm,
            readers: &self.readers,
        }
    }

    /// Whether new blocks may be requested: live, and storage accepting writes.
    fn fetching(&self) -> bool {
        self.phase == Phase::Live && self.storage_fault.is_none()
    }

    pub fn fill(&mut self, key: PeerKey, force: bool, fx: &mut Effects) {
        if self.fetching() {
            self.scheduler().fill(key, force, fx);
        }
    }

    pub fn fill_all(&mut self, fx: &mut Effects) {
        if self.fetching() {
            self.scheduler().fill_all(fx);
        }
    }

    /// Whether a newcomer may connect now; evicts the peer that has gone longest without data
    /// when every slot is taken and one may be evicted.
    pub fn make_room(&mut self, max_peers: usize, fx: &mut Effects) -> bool {
        if self.phase != Phase::Live {
            return false;
        }
        if self.swarm.peers.len() < max_peers {
            return true;
        }
        match self.swarm.eviction_victim(Instant::now()) {
            Some(victim) => {
                self.remove_peer(victim, DropReason::Idle, fx);
                self.swarm.peers.len() < max_peers
            }
            None => false,
        }
    }

    /// Registers a handshaken connection and tells it what we have.
    pub fn add_peer(&mut self, peer: PeerState, fx: &mut Effects) -> PeerKey {
        if let Some(m) = fast::announcement(&self.pieces.have, peer.fast) {
            fx.send(&peer.tx, m);
        }
        fx.emit(Event::PeerConnected {
            addr: peer.addr.to_string(),
            client: crate::wire::handshake::client_name(&peer.peer_id),
        });
        self.swarm.insert(peer)
    }

    /// Removes connection `conn` if it is still the one registered under `key`.
    pub fn remove_conn(&mut self, key: PeerKey, conn: u64, reason: DropReason, fx: &mut Effects) {
        if self.swarm.get(key, conn).is_some() {
            self.remove_peer(key, reason, fx);
            // Its requests are free for others now.
            self.fill_all(fx);
        }
    }

    /// Forgets a peer: its requests go back to the pool, its pieces leave the availability,
    /// and pieces only it could finish are released. Pipelines are not refilled here (a ban
    /// or shutdown removes many peers at once): the caller refills once.
    pub fn remove_peer(&mut self, key: PeerKey, reason: DropReason, fx: &mut Effects) {
        let Some(peer) = self.swarm.remove(key) else {
            return;
        };
        for req in peer.requests.keys() {
            self.unrequest(req);
        }
        self.pieces.picker().peer_left(key);
        let orphans: Vec<u32> = self
            .pieces
            .assemblies
            .iter()
            .filter(|(i, a)| {
                a.owner == Some(key)
                    || (peer.has.get(**i) && !self.swarm.peers.values().any(|p| p.has.get(**i)))
            })
            .map(|(i, _)| *i)
            .collect();
        for i in orphans {
            self.pieces.release(i);
        }
        tracing::debug!("dropped {}: {reason}", peer.addr);
        fx.emit(Event::PeerDropped {
            addr: peer.addr.to_string(),
            reason: reason.to_string(),
        });
    }

    fn unrequest(&mut self, req: &BlockRequest) {
        if let Some(a) = self.pieces.assemblies.get_mut(&req.piece) {
            a.unrequest((req.offset / crate::wire::BLOCK_SIZE) as usize);
        }
    }

    /// Handles one message from connection `conn` of `key`.
    pub fn on_message(
        &mut self,
        key: PeerKey,
        conn: u64,
        msg: Message,
        fx: &mut Effects,
    ) -> Result<(), DropReason> {
        let pieces = self.pieces.have.len();
        let Some(peer) = self.swarm.get_mut(key, conn) else {
            return Err(DropReason::Gone);
        };
        let control = !matches!(msg, Message::Piece { .. } | Message::Request(_));
        if control && !peer.control.take(Instant::now()) {
            return Err(DropReason::MessageFlood(msg.kind()));
        }
        match msg {
            Message::KeepAlive
            | Message::Port(_)
            | Message::HashReject(_)
            | Message::Unknown(_) => {}
            Message::HashRequest(r) => {
                let hashes = match peer.hash_requests.take(Instant::now()) {
                    true => self.meta.serve_hashes(
                        &r.pieces_root,
                        r.base_layer,
                        r.index,
                        r.length,
                        r.proof_layers,
                    ),
                    // Past its budget a peer is told no, cheaply (a reject is not hashed).
                    false => None,
                };
                match hashes {
                    Some(hashes) => {
                        fx.emit(Event::HashesServed {
                            addr: peer.addr.to_string(),
                            root: crate::metainfo::hex(&r.pieces_root),
                            index: r.index,
                            length: r.length,
                            uncles: hashes.len() as u32 - r.length,
                        });
                        fx.send(&peer.tx, Message::Hashes { req: r, hashes });
                    }
                    None => fx.send(&peer.tx, Message::HashReject(r)),
                }
            }
            // We never ask for hashes (our torrents carry their piece layers).
            Message::Hashes { .. } => {}
            Message::Extended { id, payload } => self.on_extended(key, id, &payload, fx)?,
            Message::Choke => {
                peer.peer_choking = true;
                let reqs: Vec<_> = peer.requests.keys().copied().collect();
                for r in &reqs {
                    peer.withdraw(*r);
                }
                for r in &reqs {
                    self.unrequest(r);
                }
                self.fill_all(fx);
            }
            Message::Unchoke => {
                peer.peer_choking = false;
                self.fill(key, true, fx);
            }
            Message::Interested => {
                peer.peer_interested = true;
                self.choker.quick_unchoke(&mut self.swarm.peers, key, fx);
            }
            Message::NotInterested => peer.peer_interested = false,
            Message::Have(i) => {
                if i >= pieces {
                    return Err(DropReason::Protocol(format!(
                        "have for piece {i} of {pieces}"
                    )));
                }
                if peer.has.set(i) {
                    self.pieces.picker().peer_have(key, i);
                }
                self.update_interest(key, fx);
                self.fill(key, false, fx);
            }
            Message::Bitfield(bits) => {
                peer.has = Bitfield::from_wire(&bits, pieces)
                    .map_err(|e| DropReason::Protocol(e.to_string()))?;
                let has = peer.has.clone();
                self.pieces.picker().peer_bitfield(key, &has);
                self.update_interest(key, fx);
                self.fill(key, true, fx);
            }
            Message::Request(r) => self.on_request(key, r, fx)?,
            Message::Suggest(_)
            | Message::HaveAll
            | Message::HaveNone
            | Message::Reject(_)
            | Message::AllowedFast(_) => self.on_fast(key, msg, fx)?,
            Message::Cancel(r) => {
                if peer.cancelled.len() >= MAX_PENDING_UPLOADS {
                    peer.cancelled.remove(0);
                }
                peer.cancelled.push(r);
            }
            Message::Piece {
                piece,
                offset,
                data,
            } => self.on_block(key, piece, offset, data, fx)?,
        }
        Ok(())
    }

    fn on_request(
        &mut self,
        key: PeerKey,
        r: BlockRequest,
        fx: &mut Effects,
    ) -> Result<(), DropReason> {
        let valid = self.pieces.have.get(r.piece)
            && r.len > 0
            && r.len <= MAX_SERVED_BLOCK
            && r.offset as u64 + r.len as u64 <= self.meta.piece_len(r.piece);
        let Some(peer) = self.swarm.peers.get_mut(&key) else {
            return Ok(());
        };
        if !valid {
            return Err(DropReason::Protocol(format!("invalid request {r:?}")));
        }
        if peer.am_choking {
            peer.choked_requests += 1;
            if peer.choked_requests > MAX_CHOKED_REQUESTS {
                return Err(DropReason::RequestFlood);
            }
            if peer.fast {
                fx.send(&peer.tx, Message::Reject(r));
            }
            return Ok(());
        }
        if peer.pending_uploads >= MAX_PENDING_UPLOADS {
            return Err(DropReason::RequestFlood);
        }
        peer.pending_uploads += 1;
        fx.serve(&peer.tx, r);
        Ok(())
    }

    fn on_block(
        &mut self,
        key: PeerKey,
        piece: u32,
        offset: u32,
        data: Vec<u8>,
        fx: &mut Effects,
    ) -> Result<(), DropReason> {
        let pieces = self.pieces.have.len();
        if piece >= pieces {
            return Err(DropReason::Protocol(format!(
                "block for piece {piece} of {pieces}"
            )));
        }
        let req = BlockRequest {
            piece,
            offset,
            len: data.len() as u32,
        };
        let streaming = self.readers.has_deadlines();
        let Some(peer) = self.swarm.peers.get_mut(&key) else {
            return Ok(());
        };
        // Only what we asked this peer for is taken: an unasked block, however plausible,
        // could poison a piece someone else is sending. A late answer to a request we withdrew
        // (timed out, choked, cancelled in endgame) is ours all the same and used if still
        // wanted; a reader's 3 s timeout made honest slow seeders look hostile before.
        let sent = peer.requests.remove(&req);
        let requested = sent.is_some();
        if let Some(sent) = sent {
            peer.answered(sent, Instant::now(), streaming);
        }
        let late = !requested && peer.take_withdrawn(&req);
        if !requested && !late {
            peer.unrequested += 1;
            if peer.unrequested > MAX_UNREQUESTED {
                return Err(DropReason::UnrequestedBlocks);
            }
            return Ok(());
        }
        let n = data.len() as u64;
        peer.last_data = Some(Instant::now());
        peer.downloaded += n;
        peer.down.add(n);
        let addr = peer.addr;
        self.downloaded += n;
        self.down.add(n);
        let outcome = match self.pieces.assemblies.get_mut(&piece) {
            Some(a) if a.owner.is_none_or(|o| o == key) => a.accept(offset, &data, addr),
            _ => Accepted::Duplicate,
        };
        match outcome {
            Accepted::Invalid => {
                let peer = self.swarm.peers.get_mut(&key).expect("peer checked above");
                peer.unrequested += 1;
                if peer.unrequested > MAX_UNREQUESTED {
                    return Err(DropReason::UnrequestedBlocks);
                }
            }
            Accepted::Duplicate => {}
            Accepted::Partial | Accepted::Complete => {
                // Endgame: whoever else was asked for this block need not send it.
                for (k, p) in self.swarm.peers.iter_mut() {
                    if *k != key && p.requests.contains_key(&req) {
                        p.withdraw(req);
                        fx.send(&p.tx, Message::Cancel(req));
                    }
                }
            }
        }
        if matches!(outcome, Accepted::Partial | Accepted::Complete)
            && let Some(a) = self.pieces.assemblies.get(&piece)
            && a.spilled()
        {
            fx.spill.push(SpillBlock {
                piece,
                assembly: a.id,
                offset,
                data,
            });
        }
        if outcome == Accepted::Complete {
            self.finish_piece(piece, fx);
        }
        self.fill(key, false, fx);
        Ok(())
    }

    /// A block of a spilled piece is in storage (or could not be written).
    pub fn block_written(
        &mut self,
        block: &SpillBlock,
        written: Result<BlockDigest, StorageError>,
        fx: &mut Effects,
    ) {
        let digest = match written {
            Ok(d) => d,
            Err(e) => return self.piece_not_stored(block.piece, e, fx),
        };
        let outcome = match self.pieces.assemblies.get_mut(&block.piece) {
            Some(a) if a.id == block.assembly => a.written(block.offset, digest),
            // Dropped (or dropped and started again) while the block was written.
            _ => return,
        };
        if outcome == Accepted::Complete {
            self.finish_piece(block.piece, fx);
        }
    }

    /// Hands a whole piece to the verifier; requests still out for it (endgame) are cancelled.
    fn finish_piece(&mut self, piece: u32, fx: &mut Effects) {
        let Some(done) = self.pieces.take_complete(piece) else {
            return;
        };
        for p in self.swarm.peers.values_mut() {
            let stale: Vec<_> = p
                .requests
                .keys()
                .filter(|r| r.piece == piece)
                .copied()
                .collect();
            for r in stale {
                p.withdraw(r);
                fx.send(&p.tx, Message::Cancel(r));
            }
        }
        fx.verify.push(done);
    }

    /// Sends `interested`/`not interested` when that changed.
    fn update_interest(&mut self, key: PeerKey, fx: &mut Effects) {
        let complete = self.complete();
        let have = &self.pieces.have;
        let Some(peer) = self.swarm.peers.get_mut(&key) else {
            return;
        };
        // Checking the whole bitfield per message is too slow for big torrents; a peer that has
        // any piece we lack is interesting, and once complete nobody is, unless the storage may
        // evict pieces: a seeder we told "not interested" chokes us, and after an eviction it
        // unchokes only at its next choke round (aria2: 10 s, as long as a read's timeout).
        let keep = complete && self.pieces.evicting && peer.am_interested;
        let want =
            keep || (!complete && (peer.am_interested || peer.has.ones().any(|i| !have.get(i))));
        if want != peer.am_interested {
            peer.am_interested = want;
            fx.send(
                &peer.tx,
                if want {
                    Message::Interested
                } else {
                    Message::NotInterested
                },
            );
        }
    }

    /// Whether a queued upload may still be served, or is refused; called by the writer.
    pub fn take_upload(&mut self, key: PeerKey, conn: u64, r: &BlockRequest) -> Upload {
        let have = self.pieces.have.get(r.piece);
        let Some(peer) = self.swarm.get_mut(key, conn) else {
            return Upload::Skip;
        };
        peer.pending_uploads = peer.pending_uploads.saturating_sub(1);
        if let Some(i) = peer.cancelled.iter().position(|c| c == r) {
            peer.cancelled.swap_remove(i);
            return Upload::refuse(peer.fast);
        }
        if have && !peer.am_choking {
            Upload::Serve
        } else {
            Upload::refuse(peer.fast)
        }
    }

    pub fn uploaded_block(&mut self, key: PeerKey, conn: u64, n: u64) {
        if let Some(peer) = self.swarm.get_mut(key, conn) {
            peer.uploaded += n;
            peer.up.add(n);
            peer.last_data = Some(Instant::now());
        }
        self.uploaded += n;
        self.up.add(n);
    }

    pub fn rechoke(&mut self, fx: &mut Effects) {
        let seeding = self.complete();
        self.choker.rechoke(&mut self.swarm.peers, seeding, fx);
    }

    /// Periodic work: rates, pipeline sizes, timed-out requests, late urgent blocks, stale
    /// pieces, and a retry after a storage failure.
    pub fn tick(&mut self, now: Instant, fx: &mut Effects) {
        self.down.tick(now);
        self.up.tick(now);
        if self
            .storage_fault
            .as_ref()
            .is_some_and(|f| now >= f.retry_at)
        {
            tracing::info!("retrying after the storage failure");
            self.storage_fault = None;
        }
        let mut expired = Vec::new();
        let streaming = self.readers.has_deadlines();
        for p in self.swarm.peers.values_mut() {
            p.down.tick(now);
            p.up.tick(now);
            p.retarget_queue(streaming);
            let before = expired.len();
            for (r, sent) in &p.requests {
                let limit = if self.readers.deadline(r.piece).is_some() {
                    URGENT_REQUEST_TIMEOUT
                } else {
                    REQUEST_TIMEOUT
                };
                if now.duration_since(*sent) > limit {
                    expired.push(*r);
                }
            }
            if expired.len() > before {
                // A peer that lets requests expire is slow: shrink its pipeline to the minimum.
                p.queue_target = super::peers::MIN_QUEUE;
                for r in &expired[before..] {
                    p.withdraw(*r);
                }
            }
        }
        for r in &expired {
            self.unrequest(r);
        }
        let stale: Vec<u32> = self
            .pieces
            .assemblies
            .iter()
            .filter(|(_, a)| !a.in_flight() && now.duration_since(a.touched) > STALE_PIECE)
            .map(|(i, _)| *i)
            .collect();
        for i in stale {
            self.pieces.release(i);
        }
        if self.fetching() {
            self.scheduler().rescue_late(now, fx);
        }
        self.fill_all(fx);
    }

    /// Closes every connection (pause, shutdown).
    pub fn disconnect_all(&mut self, reason: DropReason, fx: &mut Effects) {
        let keys: Vec<PeerKey> = self.swarm.peers.keys().copied().collect();
        for k in keys {
            self.remove_peer(k, reason.clone(), fx);
        }
    }
}

#[cfg(test)]
mod fast_tests;
#[cfg(test)]
mod hashes_tests;
#[cfg(test)]
mod pex_tests;
#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;
