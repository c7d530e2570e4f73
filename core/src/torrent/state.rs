//! The torrent's shared state and every decision made under its lock: which blocks to request
//! from whom, what to do with an arriving message, timeouts, endgame and choking.
//!
//! Methods here never block and never await; sends to peers go through unbounded channels.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_std::channel::Sender;

use super::assembly::{Accepted, BlockState, PieceAssembly};
use super::peers::{MAX_PENDING_UPLOADS, MAX_UNREQUESTED, Outbound, PeerState};
use super::rate::RateMeter;
use super::readers::Readers;
use crate::bitfield::Bitfield;
use crate::events::{Event, EventSink};
use crate::metainfo::Metainfo;
use crate::plugin::{PeerKey, PiecePicker};
use crate::wire::{BlockRequest, Message};

/// Largest block we serve; BEP 3 clients ask for 16 KiB, a few for up to 128 KiB.
const MAX_SERVED_BLOCK: u32 = 128 * 1024;
/// A request unanswered this long is given to another peer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The same for a piece a reader is waiting on: a late piece must not stall a player.
const URGENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Hash failures (weighted: 2 when the peer sent the whole piece) before a peer is banned.
const BAN_STRIKES: u32 = 4;
/// When every slot is taken, a peer that has neither given nor asked for data this long makes
/// room for a newcomer.
const IDLE_EVICT: Duration = Duration::from_secs(60);
/// Endgame asks at most this many peers for one block.
const MAX_DUPLICATES: u8 = 2;
/// A peer with more than this much work queued leaves urgent blocks to a much quicker peer.
const SLOW_QUEUE_SECS: f64 = 1.0;
/// An urgent block unanswered this long is also asked of a quicker peer.
const URGENT_DUPLICATE_AFTER: Duration = Duration::from_secs(1);

/// Seconds of work already queued at `p`: its outstanding requests at its observed rate (a
/// modest rate is assumed until one is measured).
fn queue_secs(p: &PeerState) -> f64 {
    let rate = (p.down.rate() as f64).max(256.0 * 1024.0);
    p.requests.len() as f64 * crate::wire::BLOCK_SIZE as f64 / rate
}

/// Why a peer is dropped.
#[derive(Debug)]
pub(crate) struct Drop(pub String);

/// Where to dial next.
pub(crate) struct Candidate {
    pub next_try: Instant,
    pub fails: u32,
    pub connecting: bool,
}

pub(crate) struct State {
    pub meta: Arc<Metainfo>,
    pub events: EventSink,
    pub clock: Instant,
    pub lazy: bool,
    /// The storage may let verified pieces go (a bounded RAM cache): being complete is then a
    /// passing state, and seeds must stay connected.
    pub evicting: bool,
    pub upload_slots: usize,
    pub have: Bitfield,
    pub picker: Box<dyn PiecePicker>,
    pub picker_name: String,
    /// Replaces `picker` once if it reports a fault.
    pub fallback_picker: Option<(String, Box<dyn PiecePicker>)>,
    pub assemblies: BTreeMap<u32, PieceAssembly>,
    pub peers: HashMap<PeerKey, PeerState>,
    free_keys: Vec<PeerKey>,
    next_key: PeerKey,
    pub known: HashMap<SocketAddr, Candidate>,
    /// Incoming connections still in their handshake.
    pub handshaking: usize,
    /// Whole pieces handed to the verifiers and not yet reported back.
    pub verifying: HashSet<u32>,
    pub self_addrs: HashSet<SocketAddr>,
    pub banned: HashSet<IpAddr>,
    strikes: HashMap<SocketAddr, u32>,
    pub readers: Readers,
    pub downloaded: u64,
    pub uploaded: u64,
    pub down: RateMeter,
    pub up: RateMeter,
    pub complete_waiters: Vec<Sender<()>>,
    pub resume_dirty: bool,
    /// A storage failure that stops the download (disk full, permissions).
    pub fatal: Option<String>,
    pub stopped: bool,
    last_optimistic: Instant,
}

impl State {
    pub fn new(
        meta: Arc<Metainfo>,
        events: EventSink,
        picker: Box<dyn PiecePicker>,
        have: Bitfield,
        lazy: bool,
        upload_slots: usize,
    ) -> Self {
        let now = Instant::now();
        State {
            meta,
            events,
            clock: now,
            lazy,
            evicting: false,
            upload_slots: upload_slots.max(1),
            have,
            picker,
            picker_name: String::new(),
            fallback_picker: None,
            assemblies: BTreeMap::new(),
            peers: HashMap::new(),
            free_keys: Vec::new(),
            next_key: 0,
            known: HashMap::new(),
            handshaking: 0,
            verifying: HashSet::new(),
            self_addrs: HashSet::new(),
            banned: HashSet::new(),
            strikes: HashMap::new(),
            readers: Readers::default(),
            downloaded: 0,
            uploaded: 0,
            down: RateMeter::default(),
            up: RateMeter::default(),
            complete_waiters: Vec::new(),
            resume_dirty: false,
            fatal: None,
            stopped: false,
            last_optimistic: now,
        }
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    pub fn complete(&self) -> bool {
        self.have.is_full()
    }

    pub fn is_connected(&self, addr: SocketAddr) -> bool {
        self.peers.values().any(|p| p.addr == addr)
    }

    pub fn is_connected_id(&self, id: &[u8; 20]) -> bool {
        self.peers.values().any(|p| &p.peer_id == id)
    }

    /// Registers a handshaken connection and sends it our bitfield.
    pub fn add_peer(&mut self, peer: PeerState) -> PeerKey {
        let key = self.free_keys.pop().unwrap_or_else(|| {
            self.next_key += 1;
            self.next_key - 1
        });
        if self.have.count() > 0 {
            peer.send(Message::Bitfield(self.have.as_bytes().to_vec()));
        }
        self.events.emit(Event::PeerConnected {
            addr: peer.addr.to_string(),
            client: crate::wire::handshake::client_name(&peer.peer_id),
        });
        if let Some(c) = self.known.get_mut(&peer.addr) {
            c.fails = 0;
        }
        self.peers.insert(key, peer);
        key
    }

    /// The key of connection `conn`, if it is still registered.
    pub fn key_of(&self, key: PeerKey, conn: u64) -> Option<PeerKey> {
        self.peers.get(&key).filter(|p| p.conn == conn).map(|_| key)
    }

    /// Whether a newcomer can get a slot: one is free, or the stalest peer has been of no use for
    /// [`IDLE_EVICT`] and is dropped to make room (silent peers must not hold every slot).
    pub fn make_room(&mut self, max_peers: usize) -> bool {
        if self.peers.len() < max_peers {
            return true;
        }
        let stalest = self
            .peers
            .iter()
            .min_by_key(|(_, p)| p.last_useful)
            .map(|(k, p)| (*k, p.last_useful));
        match stalest {
            Some((key, since)) if since.elapsed() >= IDLE_EVICT => {
                self.remove_peer(key, "idle while a newcomer needed its slot");
                self.peers.len() < max_peers
            }
            _ => false,
        }
    }

    /// Removes connection `conn` if it is still the one registered under `key`.
    pub fn remove_conn(&mut self, key: PeerKey, conn: u64, reason: &str) {
        if self.key_of(key, conn).is_some() {
            self.remove_peer(key, reason);
        }
    }

    /// Forgets a peer: its requests go back to the pool, its pieces leave the availability.
    pub fn remove_peer(&mut self, key: PeerKey, reason: &str) {
        let Some(peer) = self.peers.remove(&key) else {
            return;
        };
        let _ = peer.stream.shutdown(std::net::Shutdown::Both);
        for req in peer.requests.keys() {
            self.unrequest(req);
        }
        self.picker.peer_left(key);
        self.free_keys.push(key);
        if let Some(c) = self.known.get_mut(&peer.addr) {
            c.connecting = false;
            c.next_try = Instant::now() + Duration::from_secs(10);
        }
        self.events.emit(Event::PeerDropped {
            addr: peer.addr.to_string(),
            reason: reason.to_string(),
        });
        tracing::debug!("dropped {}: {reason}", peer.addr);
        self.fill_all();
    }

    fn unrequest(&mut self, req: &BlockRequest) {
        if let Some(a) = self.assemblies.get_mut(&req.piece) {
            a.unrequest((req.offset / crate::wire::BLOCK_SIZE) as usize);
        }
    }

    /// Handles one message from `key`. Returns a piece that became whole and must be verified.
    pub fn on_message(
        &mut self,
        key: PeerKey,
        conn: u64,
        msg: Message,
    ) -> Result<Option<PieceAssembly>, Drop> {
        let pieces = self.have.len();
        let Some(peer) = self.peers.get_mut(&key).filter(|p| p.conn == conn) else {
            return Err(Drop("gone".into()));
        };
        match msg {
            Message::KeepAlive | Message::Port(_) | Message::Unknown(_) => {}
            Message::Choke => {
                peer.peer_choking = true;
                let reqs: Vec<_> = peer.requests.drain().map(|(r, _)| r).collect();
                for r in &reqs {
                    self.unrequest(r);
                }
                self.fill_all();
            }
            Message::Unchoke => {
                peer.peer_choking = false;
                self.fill_requests(key);
            }
            Message::Interested => {
                peer.peer_interested = true;
                self.quick_unchoke(key);
            }
            Message::NotInterested => peer.peer_interested = false,
            Message::Have(i) => {
                if i >= pieces {
                    return Err(Drop(format!("have for piece {i} of {pieces}")));
                }
                if peer.has.set(i) {
                    self.picker.peer_have(key, i);
                }
                self.update_interest(key);
                self.fill_requests(key);
            }
            Message::Bitfield(bits) => {
                peer.has = Bitfield::from_wire(&bits, pieces).map_err(|e| Drop(e.to_string()))?;
                self.picker.peer_bitfield(key, &peer.has);
                self.update_interest(key);
                self.fill_requests(key);
            }
            Message::Request(r) => {
                peer.last_useful = Instant::now();
                self.on_request(key, r)?
            }
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
            } => return self.on_block(key, piece, offset, data),
        }
        Ok(None)
    }

    fn on_request(&mut self, key: PeerKey, r: BlockRequest) -> Result<(), Drop> {
        let valid = self.have.get(r.piece)
            && r.len > 0
            && r.len <= MAX_SERVED_BLOCK
            && r.offset as u64 + r.len as u64 <= self.meta.piece_len(r.piece);
        let Some(peer) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        if !valid {
            return Err(Drop(format!("invalid request {r:?}")));
        }
        if peer.am_choking {
            return Ok(());
        }
        if peer.pending_uploads >= MAX_PENDING_UPLOADS {
            return Err(Drop("request flood".into()));
        }
        peer.pending_uploads += 1;
        let _ = peer.tx.try_send(Outbound::Serve(r));
        Ok(())
    }

    fn on_block(
        &mut self,
        key: PeerKey,
        piece: u32,
        offset: u32,
        data: Vec<u8>,
    ) -> Result<Option<PieceAssembly>, Drop> {
        let pieces = self.have.len();
        if piece >= pieces {
            return Err(Drop(format!("block for piece {piece} of {pieces}")));
        }
        let req = BlockRequest {
            piece,
            offset,
            len: data.len() as u32,
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            return Ok(None);
        };
        let requested = peer.requests.remove(&req).is_some();
        if requested {
            peer.last_useful = Instant::now();
        }
        let n = data.len() as u64;
        peer.downloaded += n;
        peer.down.add(n);
        let addr = peer.addr;
        self.downloaded += n;
        self.down.add(n);
        // Only what we asked this peer for is taken: an unasked block, however plausible, could
        // poison a piece someone else is sending. A late answer to a request we withdrew is
        // just asked for again. Blocks of pieces we already have are endgame stragglers.
        let outcome = match self.assemblies.get_mut(&piece) {
            Some(a) if requested => a.accept(offset, &data, addr),
            _ if requested || self.have.get(piece) => Accepted::Duplicate,
            _ => Accepted::Invalid,
        };
        let mut done = None;
        match outcome {
            Accepted::Invalid => {
                let peer = self.peers.get_mut(&key).expect("peer checked above");
                peer.unrequested += 1;
                if peer.unrequested > MAX_UNREQUESTED {
                    return Err(Drop("too many unrequested or malformed blocks".into()));
                }
            }
            Accepted::Duplicate | Accepted::Partial => {}
            Accepted::Complete => {
                done = self.assemblies.remove(&piece);
                self.verifying.insert(piece);
            }
        }
        // Endgame: whoever else was asked for this block need not send it.
        if matches!(outcome, Accepted::Partial | Accepted::Complete) {
            for (k, p) in self.peers.iter_mut() {
                if *k != key && p.requests.remove(&req).is_some() {
                    p.send(Message::Cancel(req));
                }
            }
        }
        if let Some(done) = &done {
            // Requests still out for a finished piece (endgame) are cancelled too.
            for p in self.peers.values_mut() {
                let stale: Vec<_> = p
                    .requests
                    .keys()
                    .filter(|r| r.piece == done.index)
                    .copied()
                    .collect();
                for r in stale {
                    p.requests.remove(&r);
                    p.send(Message::Cancel(r));
                }
            }
        }
        self.fill_requests(key);
        Ok(done)
    }

    /// The storage let go of a verified piece: it is wanted again, and the peers holding it are
    /// interesting again (once complete, nobody was).
    pub fn piece_evicted(&mut self, piece: u32) {
        if !self.have.clear(piece) {
            return;
        }
        self.picker.piece_lost(piece);
        for peer in self.peers.values_mut() {
            if peer.has.get(piece) && !peer.am_interested {
                peer.am_interested = true;
                peer.send(Message::Interested);
            }
        }
    }

    /// Sends `interested`/`not interested` when that changed.
    fn update_interest(&mut self, key: PeerKey) {
        let complete = self.complete();
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        // Checking the whole bitfield per message is too slow for big torrents; a peer that has
        // any piece we lack is interesting, and once complete nobody is.
        let want = !complete && (peer.am_interested || peer.has.ones().any(|i| !self.have.get(i)));
        if want != peer.am_interested {
            peer.am_interested = want;
            peer.send(if want {
                Message::Interested
            } else {
                Message::NotInterested
            });
        }
    }

    pub fn fill_all(&mut self) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            self.fill_requests(k);
        }
    }

    /// Tops up the request pipeline of `key`.
    pub fn fill_requests(&mut self, key: PeerKey) {
        let now = Instant::now();
        // Asking the picker for an urgent piece costs a pick; once it had none, do not ask again
        // for every further block of this round.
        let mut try_urgent = self.readers.has_deadlines();
        loop {
            let Some(peer) = self.peers.get(&key) else {
                return;
            };
            if peer.peer_choking || !peer.am_interested || peer.requests.len() >= peer.queue_target
            {
                return;
            }
            let Some((piece, block)) = self.next_block(key, &mut try_urgent) else {
                return;
            };
            let a = self
                .assemblies
                .get_mut(&piece)
                .expect("next_block returns live pieces");
            a.mark_requested(block);
            let (offset, len) = a.block(block);
            let req = BlockRequest { piece, offset, len };
            let peer = self.peers.get_mut(&key).expect("checked above");
            peer.requests.insert(req, now);
            peer.send(Message::Request(req));
        }
    }

    /// Chooses the next block to ask `key` for: blocks of started pieces a reader waits for,
    /// then a new piece a reader waits for, then the peer's own unfinished pieces, then any
    /// started piece, then a new piece from the picker, then (endgame) a block already asked of
    /// someone else.
    fn next_block(&mut self, key: PeerKey, try_urgent: &mut bool) -> Option<(u32, usize)> {
        if let Some(urgent) = self.urgent_block(key) {
            return Some(urgent);
        }
        if *try_urgent {
            match self.start_urgent_piece(key) {
                Some(i) => return Some((i, 0)),
                None => *try_urgent = false,
            }
        }
        let peer = self.peers.get_mut(&key)?;
        let missing_in = |a: &PieceAssembly| a.next_missing();
        while let Some(&i) = peer.assigned.first() {
            match self.assemblies.get(&i).and_then(missing_in) {
                Some(b) => return Some((i, b)),
                None => {
                    peer.assigned.remove(0);
                }
            }
        }
        for (&i, a) in &self.assemblies {
            if peer.has.get(i)
                && let Some(b) = missing_in(a)
            {
                peer.assigned.push(i);
                return Some((i, b));
            }
        }
        let picked = self.pick_new(key);
        let peer = self.peers.get_mut(&key)?;
        if let Some(i) = picked {
            if self.lazy && self.readers.deadline(i).is_none() {
                self.picker.piece_lost(i);
            } else {
                self.assemblies
                    .insert(i, PieceAssembly::new(i, self.meta.piece_len(i)));
                peer.assigned.push(i);
                return Some((i, 0));
            }
        }
        // Endgame: duplicate a block in flight elsewhere.
        for (&i, a) in &self.assemblies {
            if !peer.has.get(i) {
                continue;
            }
            for b in 0..a.block_count() {
                if let BlockState::Requested(n) = a.state(b) {
                    let (offset, len) = a.block(b);
                    let req = BlockRequest {
                        piece: i,
                        offset,
                        len,
                    };
                    if n < MAX_DUPLICATES && !peer.requests.contains_key(&req) {
                        return Some((i, b));
                    }
                }
            }
        }
        None
    }

    /// A block of a started piece that a reader waits for, if `key` is the right peer to ask:
    /// a missing block, unless a peer with a much shorter queue can take it; or a block already
    /// asked of a peer that is late with it and slower than `key` (asked twice, first answer wins).
    fn urgent_block(&self, key: PeerKey) -> Option<(u32, usize)> {
        let me = self.peers.get(&key)?;
        let my_queue = queue_secs(me);
        let now = Instant::now();
        for (&i, a) in &self.assemblies {
            if !me.has.get(i) || self.readers.deadline(i).is_none() {
                continue;
            }
            let someone_faster = || {
                self.peers.iter().any(|(k, p)| {
                    *k != key && !p.peer_choking && p.has.get(i) && queue_secs(p) * 2.0 < my_queue
                })
            };
            for b in 0..a.block_count() {
                match a.state(b) {
                    BlockState::Missing => {
                        if my_queue > SLOW_QUEUE_SECS && someone_faster() {
                            break;
                        }
                        return Some((i, b));
                    }
                    BlockState::Requested(1) => {
                        let (offset, len) = a.block(b);
                        let req = BlockRequest {
                            piece: i,
                            offset,
                            len,
                        };
                        if me.requests.contains_key(&req) {
                            continue;
                        }
                        let late = self.peers.values().any(|p| {
                            p.requests.get(&req).is_some_and(|sent| {
                                now.duration_since(*sent) > URGENT_DUPLICATE_AFTER
                                    && queue_secs(p) > my_queue
                            })
                        });
                        if late {
                            return Some((i, b));
                        }
                    }
                    _ => {}
                }
            }
        }
        None
    }

    /// Asks the picker for a piece a reader waits for and starts it; a piece nobody waits for
    /// goes back, so background work does not jump ahead of readers.
    fn start_urgent_piece(&mut self, key: PeerKey) -> Option<u32> {
        let i = self.pick_new(key)?;
        let peer = self.peers.get_mut(&key)?;
        if self.readers.deadline(i).is_none() {
            self.picker.piece_lost(i);
            return None;
        }
        self.assemblies
            .insert(i, PieceAssembly::new(i, self.meta.piece_len(i)));
        peer.assigned.push(i);
        Some(i)
    }

    /// A new piece for `key` from the picker, one that `key` has and nobody has started. A
    /// picker that has nothing and reports a fault, or that names a piece it must not (out of
    /// range, already had or started, not held by the peer), is replaced by the fallback, which
    /// is asked in its place; a fallback that errs likewise gets nothing.
    fn pick_new(&mut self, key: PeerKey) -> Option<u32> {
        self.peers.get(&key)?;
        let reason = match self.picker.pick(key) {
            Some(i) if self.can_start(key, i) => return Some(i),
            Some(i) => format!(
                "picker '{}' returned piece {i}, which is not a piece to start (torrent has {})",
                self.picker_name,
                self.have.len()
            ),
            None => self.picker.fault()?,
        };
        if !self.replace_faulty_picker(reason) {
            return None;
        }
        let i = self.picker.pick(key)?;
        self.can_start(key, i).then_some(i)
    }

    /// Whether piece `i` may be started from `key`: in range, not had, not started, held by it.
    fn can_start(&self, key: PeerKey, i: u32) -> bool {
        i < self.have.len()
            && !self.have.get(i)
            && !self.assemblies.contains_key(&i)
            && !self.verifying.contains(&i)
            && self.peers.get(&key).is_some_and(|p| p.has.get(i))
    }

    /// Swaps in the fallback picker, told what the engine knows: pieces we have, pieces in
    /// progress or being verified (as had: the engine reports them verified or lost later, like
    /// picked ones), every peer's pieces and the readers' deadlines. False if the fallback was used
    /// already.
    fn replace_faulty_picker(&mut self, reason: String) -> bool {
        let Some((name, mut picker)) = self.fallback_picker.take() else {
            return false;
        };
        tracing::error!("{reason}; continuing with the {name} picker");
        self.events.emit(Event::PickerFault {
            picker: self.picker_name.clone(),
            error: reason,
            fallback: name.clone(),
        });
        let mut taken = self.have.clone();
        for &piece in self.assemblies.keys().chain(&self.verifying) {
            taken.set(piece);
        }
        picker.init(self.have.len(), &taken);
        for (&key, peer) in &self.peers {
            picker.peer_bitfield(key, &peer.has);
        }
        for (piece, deadline) in self.readers.deadlines() {
            if !self.have.get(piece) {
                picker.set_deadline(piece, Some(deadline));
            }
        }
        self.picker = picker;
        self.picker_name = name;
        true
    }

    /// A piece was verified and stored (`Ok`), failed its hash (`Err(None)`) or could not be
    /// stored (`Err(Some(error))`).
    pub fn piece_finished(&mut self, asm: &PieceAssembly, result: Result<(), Option<String>>) {
        let piece = asm.index;
        self.verifying.remove(&piece);
        match result {
            Ok(()) => {
                self.have.set(piece);
                self.picker.piece_verified(piece);
                self.readers.piece_ready(piece);
                self.resume_dirty = true;
                self.events.emit(Event::PieceVerified { piece });
                for p in self.peers.values() {
                    if !p.has.get(piece) {
                        p.send(Message::Have(piece));
                    }
                }
                if self.complete() {
                    self.on_complete();
                }
            }
            Err(None) => {
                self.picker.piece_lost(piece);
                let peers: Vec<String> = asm.contributors.iter().map(|a| a.to_string()).collect();
                tracing::warn!(
                    "piece {piece} failed its hash check (from {})",
                    peers.join(", ")
                );
                self.events.emit(Event::HashFailed { piece, peers });
                let weight = if asm.contributors.len() == 1 { 2 } else { 1 };
                for addr in &asm.contributors {
                    let s = self.strikes.entry(*addr).or_default();
                    *s += weight;
                    if *s >= BAN_STRIKES {
                        self.ban(*addr, "sent corrupt data repeatedly");
                    }
                }
            }
            Err(Some(e)) => {
                self.picker.piece_lost(piece);
                tracing::error!("cannot store piece {piece}: {e}");
                self.events.emit(Event::StorageError { error: e.clone() });
                self.fatal.get_or_insert(e);
                for w in self.complete_waiters.drain(..) {
                    let _ = w.try_send(());
                }
            }
        }
        self.fill_all();
    }

    fn on_complete(&mut self) {
        self.events.emit(Event::Complete {
            downloaded: self.downloaded,
            uploaded: self.uploaded,
        });
        tracing::info!("download complete");
        for w in self.complete_waiters.drain(..) {
            let _ = w.try_send(());
        }
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            self.update_interest(k);
            // Two seeds have nothing to say to each other, unless our pieces may be evicted.
            if !self.evicting && self.peers.get(&k).is_some_and(|p| p.has.is_full()) {
                self.remove_peer(k, "both complete");
            }
        }
    }

    pub fn ban(&mut self, addr: SocketAddr, reason: &str) {
        if !self.banned.insert(addr.ip()) {
            return;
        }
        tracing::warn!("banning {}: {reason}", addr.ip());
        self.events.emit(Event::PeerBanned {
            addr: addr.to_string(),
            reason: reason.to_string(),
        });
        let keys: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.addr.ip() == addr.ip())
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.remove_peer(k, reason);
        }
    }

    /// Checks whether a queued upload may still be served; called by the writer.
    pub fn take_upload(&mut self, key: PeerKey, conn: u64, r: &BlockRequest) -> bool {
        let have = self.have.get(r.piece);
        let Some(peer) = self.peers.get_mut(&key).filter(|p| p.conn == conn) else {
            return false;
        };
        peer.pending_uploads = peer.pending_uploads.saturating_sub(1);
        if let Some(i) = peer.cancelled.iter().position(|c| c == r) {
            peer.cancelled.swap_remove(i);
            return false;
        }
        have && !peer.am_choking
    }

    pub fn uploaded_block(&mut self, key: PeerKey, conn: u64, n: u64) {
        if let Some(peer) = self.peers.get_mut(&key).filter(|p| p.conn == conn) {
            peer.uploaded += n;
            peer.up.add(n);
        }
        self.uploaded += n;
        self.up.add(n);
    }

    /// Unchokes a newly interested peer at once if a slot is free, rather than at the next
    /// choker round ten seconds later.
    fn quick_unchoke(&mut self, key: PeerKey) {
        let unchoked = self.peers.values().filter(|p| !p.am_choking).count();
        if unchoked < self.upload_slots + 1 {
            self.set_choke(key, false);
        }
    }

    fn set_choke(&mut self, key: PeerKey, choke: bool) {
        if let Some(p) = self.peers.get_mut(&key)
            && p.am_choking != choke
        {
            p.am_choking = choke;
            p.send(if choke {
                Message::Choke
            } else {
                Message::Unchoke
            });
        }
    }

    /// One choker round: the best `upload_slots` interested peers (by what they give us while
    /// we download, by what they take while we seed) stay unchoked, plus one optimistic
    /// unchoke that rotates every 30 s so newcomers get a chance.
    pub fn rechoke(&mut self) {
        let seeding = self.complete();
        let mut ranked: Vec<(PeerKey, u64)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.peer_interested)
            .map(|(k, p)| (*k, if seeding { p.up.rate() } else { p.down.rate() }))
            .collect();
        ranked.sort_by_key(|r| std::cmp::Reverse(r.1));
        let regular: HashSet<PeerKey> =
            ranked.iter().take(self.upload_slots).map(|r| r.0).collect();
        let rotate = self.last_optimistic.elapsed() >= Duration::from_secs(30);
        let mut optimistic = self
            .peers
            .iter()
            .find(|(_, p)| p.optimistic)
            .map(|(k, _)| *k);
        if rotate || optimistic.is_none() {
            let choked: Vec<PeerKey> = ranked
                .iter()
                .map(|r| r.0)
                .filter(|k| !regular.contains(k))
                .collect();
            optimistic = (!choked.is_empty()).then(|| choked[rand::random_range(0..choked.len())]);
            self.last_optimistic = Instant::now();
        }
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            let keep = regular.contains(&k) || Some(k) == optimistic;
            if let Some(p) = self.peers.get_mut(&k) {
                p.optimistic = Some(k) == optimistic;
            }
            self.set_choke(k, !keep);
        }
    }

    /// Periodic work: rates, pipeline sizes, timed-out requests.
    pub fn tick(&mut self, now: Instant) {
        self.down.tick(now);
        self.up.tick(now);
        let mut expired = Vec::new();
        for p in self.peers.values_mut() {
            p.down.tick(now);
            p.up.tick(now);
            p.retarget_queue();
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
                    p.requests.remove(r);
                }
            }
        }
        for r in &expired {
            self.unrequest(r);
        }
        self.fill_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A picker with nothing to pick: these tests are about connections.
    struct NoPicker;

    impl PiecePicker for NoPicker {
        fn init(&mut self, _: u32, _: &Bitfield) {}
        fn peer_bitfield(&mut self, _: PeerKey, _: &Bitfield) {}
        fn peer_have(&mut self, _: PeerKey, _: u32) {}
        fn peer_left(&mut self, _: PeerKey) {}
        fn piece_verified(&mut self, _: u32) {}
        fn piece_lost(&mut self, _: u32) {}
        fn set_deadline(&mut self, _: u32, _: Option<u64>) {}
        fn pick(&mut self, _: PeerKey) -> Option<u32> {
            None
        }
    }

    fn state() -> State {
        let info = format!(
            "d6:lengthi16384e4:name1:f12:piece lengthi16384e6:pieces20:{}e",
            "x".repeat(20)
        );
        let meta = Metainfo::from_bytes(format!("d4:info{info}e").as_bytes()).unwrap();
        State::new(
            Arc::new(meta),
            EventSink::disabled(),
            Box::new(NoPicker),
            Bitfield::new(1),
            false,
            4,
        )
    }

    /// Registers a peer on a real loopback connection that last gave or asked for data `idle` ago.
    fn peer(state: &mut State, idle: Duration) -> PeerKey {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let addr = stream.local_addr().unwrap();
        let (tx, _rx) = async_std::channel::unbounded();
        let mut p = PeerState::new(0, addr, [7; 20], tx, stream.into(), 1);
        p.last_useful = Instant::now().checked_sub(idle).unwrap();
        state.add_peer(p)
    }

    #[test]
    fn a_newcomer_takes_the_slot_of_a_peer_idle_too_long_and_only_that() {
        let mut s = state();
        let busy = peer(&mut s, Duration::ZERO);
        assert!(s.make_room(2), "a free slot is room");
        assert!(!s.make_room(1), "a busy peer keeps its slot");
        let idle = peer(&mut s, IDLE_EVICT + Duration::from_secs(1));
        assert!(s.make_room(2), "the idle peer makes room");
        assert!(!s.peers.contains_key(&idle), "the idle peer is gone");
        assert!(s.peers.contains_key(&busy), "the busy peer stays");
        let recent = peer(&mut s, IDLE_EVICT - Duration::from_secs(5));
        assert!(
            !s.make_room(2),
            "a peer useful within the limit keeps its slot"
        );
        assert!(s.peers.contains_key(&recent));
    }
}
