//! Which blocks to ask which peer for: readers' pieces first (in deadline order, to peers that
//! can meet them), then the peer's own started pieces, then new pieces from the picker, and in
//! endgame a block already asked of someone else.
//!
//! A peer's pipeline is topped up in one pass per batch, not by rescanning every piece and peer
//! for each block: a refill runs once at least [`REFILL_BATCH`] slots are free (or the queue is
//! empty), and late urgent blocks are re-asked of a quicker peer once per tick.

use std::time::{Duration, Instant};

use super::assembly::BlockState;
use super::effects::Effects;
use super::peers::PeerState;
use super::pieces::PieceTracker;
use super::readers::Readers;
use super::swarm::Swarm;
use crate::bitfield::Bitfield;
use crate::plugin::PeerKey;
use crate::wire::{BLOCK_SIZE, BlockRequest, Message};

/// Endgame asks at most this many peers for one block.
const MAX_DUPLICATES: u8 = 2;
/// A peer that would take longer than this over a reader's piece leaves it to a peer at least
/// twice as quick.
const SLOW_PIECE_SECS: f64 = 0.5;
/// An urgent block unanswered this long is also asked of a quicker peer.
const URGENT_DUPLICATE_AFTER: Duration = Duration::from_secs(1);
/// ... or this long, when the peer it was asked of is [`MUCH_SLOWER`] than the helper: a block
/// at a 0.1 MB/s seeder held a reader up to 1.5 s beside 2 MB/s ones (benches/RESULTS.md,
/// issue 13, scenario 3).
const URGENT_SLOW_PEER_AFTER: Duration = Duration::from_millis(250);
/// How many times quicker a helper must be for [`URGENT_SLOW_PEER_AFTER`].
const MUCH_SLOWER: u64 = 4;
/// Free pipeline slots that trigger a refill; below it the next block's arrival will.
const REFILL_BATCH: usize = 4;

/// The parts scheduling reads and changes.
pub(crate) struct Scheduler<'a> {
    pub pieces: &'a mut PieceTracker,
    pub swarm: &'a mut Swarm,
    pub readers: &'a Readers,
}

impl Scheduler<'_> {
    /// Tops up every peer's pipeline.
    pub fn fill_all(&mut self, fx: &mut Effects) {
        let keys: Vec<PeerKey> = self.swarm.peers.keys().copied().collect();
        for k in keys {
            self.fill(k, true, fx);
        }
    }

    /// Tops up the pipeline of `key`; unless `force`, only once a batch of slots is free.
    pub fn fill(&mut self, key: PeerKey, force: bool, fx: &mut Effects) {
        let Some(peer) = self.swarm.peers.get(&key) else {
            return;
        };
        // A choking peer may still be asked for its allowed-fast pieces (BEP 6).
        let choked = peer.peer_choking;
        if (choked && peer.allowed_fast.is_empty()) || !peer.am_interested {
            return;
        }
        let room = peer.queue_target.saturating_sub(peer.requests.len());
        if room == 0 || (!force && room < REFILL_BATCH && !peer.requests.is_empty()) {
            return;
        }
        let blocks = if choked {
            self.choose_allowed_fast(key, room, fx)
        } else {
            self.choose(key, room, fx)
        };
        let now = Instant::now();
        let Some(peer) = self.swarm.peers.get_mut(&key) else {
            return;
        };
        for (piece, block) in blocks {
            let Some(a) = self.pieces.assemblies.get_mut(&piece) else {
                continue;
            };
            a.mark_requested(block);
            let (offset, len) = a.block(block);
            let req = BlockRequest { piece, offset, len };
            peer.requests.insert(req, now);
            fx.send(&peer.tx, Message::Request(req));
        }
    }

    /// Up to `room` (piece, block) pairs for `key`, in the order to ask for them.
    fn choose(&mut self, key: PeerKey, mut room: usize, fx: &mut Effects) -> Vec<(u32, usize)> {
        let mut out = Vec::new();
        if self.readers.has_deadlines() {
            self.urgent(key, &mut room, &mut out, fx);
        }
        // The peer's own pieces, finished first.
        let assigned = match self.swarm.peers.get_mut(&key) {
            Some(p) => {
                p.assigned
                    .retain(|i| self.pieces.assemblies.contains_key(i));
                p.assigned.clone()
            }
            None => return out,
        };
        for &i in &assigned {
            take_missing(self.pieces, key, i, &mut room, &mut out);
        }
        // Other started pieces it has.
        if room > 0 {
            let peer = &self.swarm.peers[&key];
            let others: Vec<u32> = self
                .pieces
                .assemblies
                .iter()
                .filter(|(i, a)| {
                    peer.has.get(**i)
                        && !assigned.contains(i)
                        && a.owner.is_none_or(|o| o == key)
                        && a.missing().next().is_some()
                })
                .map(|(i, _)| *i)
                .take(room)
                .collect();
            for i in others {
                take_missing(self.pieces, key, i, &mut room, &mut out);
                self.assign(key, i);
            }
        }
        // New pieces from the picker, within the peer's and the torrent's share of memory.
        while room > 0 {
            let Some(i) = self.start_new(key, false, fx) else {
                break;
            };
            take_missing(self.pieces, key, i, &mut room, &mut out);
        }
        if room > 0 && out.is_empty() && !self.held_back(key) {
            self.endgame(key, room, &mut out);
        }
        out
    }

    /// Up to `room` blocks of the pieces a choking peer allows us (allowed-fast): started ones
    /// first, then new ones from the picker limited to those pieces. While a reader waits, only
    /// pieces a reader wants: a peer answers in order, and aria2 names its allowed-fast pieces
    /// and unchokes in the same moment, so an unrelated 256 KiB piece went ahead of a stream's
    /// first one from it in every run (events of benches/http_vs_rqbit.rs, 2026-12-06).
    fn choose_allowed_fast(
        &mut self,
        key: PeerKey,
        mut room: usize,
        fx: &mut Effects,
    ) -> Vec<(u32, usize)> {
        let mut out = Vec::new();
        let Some(peer) = self.swarm.peers.get(&key) else {
            return out;
        };
        let reading = self.readers.has_deadlines();
        let mut allowed = Bitfield::new(peer.has.len());
        for &i in &peer.allowed_fast {
            if peer.has.get(i) && (!reading || self.readers.deadline(i).is_some()) {
                allowed.set(i);
            }
        }
        let started: Vec<u32> = allowed
            .ones()
            .filter(|i| {
                self.pieces
                    .assemblies
                    .get(i)
                    .is_some_and(|a| a.owner.is_none_or(|o| o == key))
            })
            .collect();
        for i in started {
            take_missing(self.pieces, key, i, &mut room, &mut out);
        }
        if room == 0 || !allowed.ones().any(|i| self.pieces.can_start(i, &allowed)) {
            return out;
        }
        // The picker picks among what it believes the peer has: for these picks, only the
        // allowed pieces; its full set is restored right after.
        let has = peer.has.clone();
        self.pieces.picker().peer_bitfield(key, &allowed);
        while room > 0 {
            let Some(i) = self.start_new(key, false, fx) else {
                break;
            };
            take_missing(self.pieces, key, i, &mut room, &mut out);
        }
        self.pieces.picker().peer_bitfield(key, &has);
        out
    }

    /// Whether `key` found nothing to ask only because it holds its share of started pieces
    /// while pieces nobody started remain. Endgame then would only duplicate other peers'
    /// blocks: before this check, every peer at its share did so for the whole download and
    /// fetched 256 MiB twice (benches/RESULTS.md, swarm scenarios 1 and 5: 16.1 s and 44.3 s,
    /// 22.1 s and 9.2 s without, level with libtorrent).
    fn held_back(&self, key: PeerKey) -> bool {
        let Some(peer) = self.swarm.peers.get(&key) else {
            return false;
        };
        let started = peer
            .assigned
            .iter()
            .filter(|i| self.pieces.assemblies.contains_key(i))
            .count();
        if self.pieces.may_start(started, peer.queue_target) {
            return false;
        }
        (0..self.pieces.meta.piece_count()).any(|i| {
            peer.has.get(i)
                && !self.pieces.have.get(i)
                && !self.pieces.assemblies.contains_key(&i)
                && !self.pieces.verifying.contains(&i)
        })
    }

    /// Blocks of pieces readers wait for, most urgent first, unless a much quicker peer can
    /// take them; a new urgent piece from the picker when none is started.
    fn urgent(
        &mut self,
        key: PeerKey,
        room: &mut usize,
        out: &mut Vec<(u32, usize)>,
        fx: &mut Effects,
    ) {
        let peer = &self.swarm.peers[&key];
        let mut urgent = self.readers.deadlines();
        urgent.sort_by_key(|&(p, d)| (d, p));
        for (i, _) in urgent {
            if *room == 0 {
                return;
            }
            let Some(a) = self.pieces.assemblies.get(&i) else {
                continue;
            };
            if !peer.has.get(i) || a.owner.is_some_and(|o| o != key) {
                continue;
            }
            let blocks = a.missing().count();
            let mine = peer.eta_secs(blocks);
            if mine > SLOW_PIECE_SECS && someone_faster(self.swarm, key, i, blocks, mine) {
                continue;
            }
            for b in a.missing() {
                if *room == 0 {
                    break;
                }
                out.push((i, b));
                *room -= 1;
            }
        }
        // A reader waits for a piece nobody started: ask the picker, which knows the deadlines.
        while *room > 0 {
            let Some(i) = self.start_new(key, true, fx) else {
                return;
            };
            if let Some(a) = self.pieces.assemblies.get(&i) {
                for b in a.missing() {
                    if *room == 0 {
                        break;
                    }
                    out.push((i, b));
                    *room -= 1;
                }
            }
        }
    }

    /// Starts a new piece for `key`. With `urgent`, only a piece a reader waits for (any other
    /// goes back to the picker, so background work does not jump ahead of readers); otherwise
    /// any piece within the memory bounds, or none in lazy mode unless a reader waits for it.
    fn start_new(&mut self, key: PeerKey, urgent: bool, fx: &mut Effects) -> Option<u32> {
        let peer = self.swarm.peers.get(&key)?;
        if !urgent {
            let started = peer
                .assigned
                .iter()
                .filter(|i| self.pieces.assemblies.contains_key(i))
                .count();
            if !self.pieces.may_start(started, peer.queue_target) {
                return None;
            }
        }
        let has = peer.has.clone();
        let (swarm, readers) = (&*self.swarm, self.readers);
        let i = self.pieces.pick_new(key, &has, fx, |picker| {
            for (&k, p) in &swarm.peers {
                picker.peer_bitfield(k, &p.has);
            }
            for (piece, deadline) in readers.deadlines() {
                picker.set_deadline(piece, Some(deadline));
            }
        })?;
        let wanted = self.readers.deadline(i).is_some();
        if (urgent || self.pieces.lazy) && !wanted {
            self.pieces.picker().piece_lost(i);
            return None;
        }
        self.pieces.start(i, key);
        self.assign(key, i);
        Some(i)
    }

    fn assign(&mut self, key: PeerKey, piece: u32) {
        if let Some(p) = self.swarm.peers.get_mut(&key)
            && !p.assigned.contains(&piece)
        {
            p.assigned.push(piece);
        }
    }

    /// Endgame: blocks in flight elsewhere, asked of this peer too, but only those it would
    /// deliver sooner than the peer they wait at, longest-waiting first. A peer answers in
    /// order, so a block near the head of another peer's queue is moments away there, and asked
    /// again it only comes twice: asking for anything in flight (up to the pipeline's room)
    /// delivered 1.0-2.8 MiB twice per 256 MiB in swarm scenario 5, where rqbit delivered
    /// 0.24-0.36 MiB beyond the payload (benches/RESULTS.md, 2026-12-06).
    fn endgame(&self, key: PeerKey, room: usize, out: &mut Vec<(u32, usize)>) {
        let peer = &self.swarm.peers[&key];
        let mut waiting: Vec<(f64, u32, usize)> = Vec::new();
        for (&k, other) in &self.swarm.peers {
            if k == key || other.requests.is_empty() {
                continue;
            }
            let mut queue: Vec<(&BlockRequest, &Instant)> = other.requests.iter().collect();
            queue.sort_by_key(|&(r, sent)| (*sent, r.piece, r.offset));
            for (ahead, (r, _)) in queue.into_iter().enumerate() {
                if !peer.has.get(r.piece) || peer.requests.contains_key(r) {
                    continue;
                }
                let Some(a) = self.pieces.assemblies.get(&r.piece) else {
                    continue;
                };
                let b = (r.offset / BLOCK_SIZE) as usize;
                if a.owner.is_some()
                    || !matches!(a.state(b), BlockState::Requested(n) if n < MAX_DUPLICATES)
                {
                    continue;
                }
                waiting.push((other.secs_for(ahead + 1), r.piece, b));
            }
        }
        waiting.sort_by(|x, y| y.0.total_cmp(&x.0).then((x.1, x.2).cmp(&(y.1, y.2))));
        let latency = peer.min_latency.map_or(0.0, |l| l.as_secs_f64());
        for (wait, piece, b) in waiting {
            if out.len() >= room || wait <= latency + peer.eta_secs(out.len() + 1) {
                return;
            }
            if !out.contains(&(piece, b)) {
                out.push((piece, b));
            }
        }
    }

    /// Once per tick: an urgent block asked of a peer that is late with it is also asked of
    /// the quickest other peer that has room, most urgent piece first (first answer wins).
    pub fn rescue_late(&mut self, now: Instant, fx: &mut Effects) {
        let mut urgent = self.readers.deadlines();
        urgent.sort_by_key(|&(p, d)| (d, p));
        let mut asks: Vec<(PeerKey, u32, usize, BlockRequest)> = Vec::new();
        for (i, _) in urgent {
            let Some(a) = self.pieces.assemblies.get(&i) else {
                continue;
            };
            if a.owner.is_some() {
                continue;
            }
            for b in 0..a.block_count() {
                if a.state(b) != BlockState::Requested(1) {
                    continue;
                }
                let (offset, len) = a.block(b);
                let req = BlockRequest {
                    piece: i,
                    offset,
                    len,
                };
                let asked = self
                    .swarm
                    .peers
                    .iter()
                    .find_map(|(k, p)| Some((*k, p, *p.requests.get(&req)?)));
                let Some((slow_key, slow, sent)) = asked else {
                    continue;
                };
                let waited = now.duration_since(sent);
                if waited <= URGENT_SLOW_PEER_AFTER {
                    continue;
                }
                let slow_queue = slow.queue_secs();
                let slow_rate = slow.down.rate();
                let helper = self
                    .swarm
                    .peers
                    .iter()
                    .filter(|(k, p)| {
                        **k != slow_key
                            && can_ask_urgently(p, i)
                            && p.queue_secs() < slow_queue
                            && !p.requests.contains_key(&req)
                    })
                    .min_by(|a, b| a.1.queue_secs().total_cmp(&b.1.queue_secs()));
                let Some((&h, hp)) = helper else {
                    continue;
                };
                let much_slower = slow_rate.saturating_mul(MUCH_SLOWER) < hp.down.rate();
                if waited > URGENT_DUPLICATE_AFTER || much_slower {
                    asks.push((h, i, b, req));
                }
            }
        }
        for (h, i, b, req) in asks {
            if let Some(p) = self.swarm.peers.get_mut(&h)
                && let Some(a) = self.pieces.assemblies.get_mut(&i)
            {
                a.mark_requested(b);
                p.requests.insert(req, now);
                fx.send(&p.tx, Message::Request(req));
            }
        }
    }
}

/// Adds the missing blocks of piece `i` (if `key` may fill it) to `out`, up to `room`.
fn take_missing(
    pieces: &PieceTracker,
    key: PeerKey,
    i: u32,
    room: &mut usize,
    out: &mut Vec<(u32, usize)>,
) {
    let Some(a) = pieces.assemblies.get(&i) else {
        return;
    };
    if a.owner.is_some_and(|o| o != key) {
        return;
    }
    for b in a.missing() {
        if *room == 0 {
            return;
        }
        if !out.contains(&(i, b)) {
            out.push((i, b));
            *room -= 1;
        }
    }
}

/// Whether `p` can be asked for a block of piece `i` a reader waits for: a full pipeline
/// takes a batch more (it is refilled a batch at a time, so it is rarely below its target).
fn can_ask_urgently(p: &PeerState, i: u32) -> bool {
    !p.peer_choking
        && p.am_interested
        && p.has.get(i)
        && p.requests.len() < p.queue_target + REFILL_BATCH
}

/// Whether a peer other than `key` that has `piece` would deliver its `blocks` in less than
/// half of `mine` seconds.
fn someone_faster(swarm: &Swarm, key: PeerKey, piece: u32, blocks: usize, mine: f64) -> bool {
    swarm.peers.iter().any(|(k, p)| {
        *k != key && !p.peer_choking && p.has.get(piece) && p.eta_secs(blocks) * 2.0 < mine
    })
}
