//! A running torrent: owns the state lock, the storage and the torrent's tasks (ticker,
//! verifier, tracker tiers, connections), carries out the effects the state returns, and is
//! the peer handler its connections drive.
//!
//! Locking: one std mutex over [`TorrentState`], held only to change state; sends, events,
//! storage and hashing happen after it is released (STATE.md lists what runs where).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

use super::assembly::PieceAssembly;
use super::effects::{Effects, carry_out};
use super::env::{Env, PeerSlot, TorrentConfig};
use super::handle::{EngineError, ReadError};
use super::peers::PeerState;
use super::state::{Phase, TorrentState};
use super::swarm::PeerSource;
use super::{recheck, resume};
use crate::bitfield::Bitfield;
use crate::events::{Event, EventSink};
use crate::layout::Layout;
use crate::metainfo::Metainfo;
use crate::peer::{self, Attached, DropReason, PeerHandler, PeerLink, Transport};
use crate::plugin::{Storage, StorageError, Tracker};
use crate::rt::{self, Cancel, CancelSource, Receiver, Sender, Tasks};
use crate::wire::{BlockRequest, Handshake, Message};

/// How often the ticker runs (rates, timeouts, dialing).
const TICK: Duration = Duration::from_millis(500);
const RECHOKE_EVERY: Duration = Duration::from_secs(10);
const RESUME_EVERY: Duration = Duration::from_secs(5);
/// Pieces hashed and written at once. Results are taken oldest first, so with only as many as
/// there are cores a finished newer piece would hold its slot idle behind a slower older one
/// (measured: 0.77 s instead of 0.44 s for 256 MiB on two cores).
const VERIFY_PARALLEL: usize = 4;
/// Bytes of whole pieces that may wait for verification before connections stop reading.
const VERIFY_QUEUE_BYTES: u64 = 16 << 20;
/// Readahead deadlines come this long after reads made at the same moment.
const READAHEAD_AFTER_READS: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time the torrent's tasks get to end on their own at shutdown: a tracker's `stopped`
/// announce may take its 3 s timeout plus a second.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub(crate) struct Torrent {
    /// Itself, for the peer-handler methods that are called on `&self` but spawn work.
    me: std::sync::Weak<Torrent>,
    pub cfg: TorrentConfig,
    pub meta: Arc<Metainfo>,
    pub layout: Layout,
    pub storage: Arc<dyn Storage>,
    pub events: EventSink,
    pub env: Env,
    pub tiers: Mutex<Vec<Vec<Arc<dyn Tracker>>>>,
    pub announce_key: u32,
    state: Mutex<TorrentState>,
    /// Whole pieces waiting for the verifier.
    verify_tx: Sender<PieceAssembly>,
    pub tasks: Tasks,
    stop: CancelSource,
    pub stopped: Cancel,
    resume_path: Option<PathBuf>,
    /// One resume save at a time, so an older snapshot never overwrites a newer one.
    resume_lock: Arc<Mutex<()>>,
    /// Wakes peer sources (tracker tiers): completion, pause, resume, stop.
    source_wake: Mutex<Vec<Sender<()>>>,
    /// Pieces hashed during this run (from the network, or read back once): a piece the
    /// resume data vouches for is hashed the first time it is read before it is served.
    checked: Mutex<Bitfield>,
}

impl Torrent {
    pub async fn start(
        cfg: TorrentConfig,
        plugins: super::Plugins,
        env: Env,
    ) -> Result<Arc<Torrent>, EngineError> {
        let meta = cfg.meta.clone();
        let layout = Layout::new(&meta);
        let storage = plugins.storage;
        let persistent = storage.persistent();
        let resume_path = persistent.then(|| resume::path_for(&cfg.state_dir, &meta));
        let events = env.events.sink().for_torrent(&meta.info_hash.hex());
        events.emit(Event::Started {
            info_hash: meta.info_hash.hex(),
            name: meta.name.clone(),
            pieces: meta.piece_count(),
            picker: plugins.picker_name.clone(),
            storage: plugins.storage_name.clone(),
        });
        let mut pieces = super::pieces::PieceTracker::new(
            meta.clone(),
            (plugins.picker_name, plugins.picker),
            (plugins.fallback_picker_name, plugins.fallback_picker),
        );
        // A RAM cache that lets pieces go cannot hold the whole torrent: fetch only what is read.
        pieces.lazy = cfg.lazy || !persistent;
        pieces.evicting = !persistent;
        let state = TorrentState::new(meta.clone(), pieces, cfg.upload_slots);

        let (stop, stopped) = rt::cancel_pair();
        // Room for about 16 MiB of pieces waiting for the verifier before readers wait.
        let queued = (VERIFY_QUEUE_BYTES / meta.piece_length).max(2) as usize;
        let (verify_tx, verify_rx) = rt::bounded(queued);
        let torrent = Arc::new_cyclic(|me| Torrent {
            me: me.clone(),
            checked: Mutex::new(Bitfield::new(meta.piece_count())),
            cfg,
            meta,
            layout,
            storage,
            events,
            env,
            tiers: Mutex::new(plugins.trackers),
            announce_key: rand::random(),
            state: Mutex::new(state),
            verify_tx,
            tasks: Tasks::default(),
            stop,
            stopped,
            resume_path,
            resume_lock: Arc::new(Mutex::new(())),
            source_wake: Mutex::new(Vec::new()),
        });

        let have = {
            let t = torrent.clone();
            rt::blocking(move || {
                recheck::initial_have(
                    &t.meta,
                    &t.layout,
                    t.storage.as_ref(),
                    t.resume_path.as_deref(),
                )
            })
            .await
        };
        torrent.events.emit(Event::Resumed {
            pieces: have.count(),
        });
        if have.is_full() {
            torrent.events.emit(Event::Complete {
                downloaded: 0,
                uploaded: 0,
            });
        }
        {
            let mut s = torrent.state();
            s.pieces.init(have);
            s.phase = Phase::Live;
            let peers = torrent.cfg.extra_peers.clone();
            s.swarm
                .add_candidates(PeerSource::Manual, &peers, torrent.env.listen_addr);
        }
        torrent.tasks.spawn(torrent.clone().ticker());
        torrent.tasks.spawn(torrent.clone().verifier(verify_rx));
        torrent.dial_more();
        Ok(torrent)
    }

    /// This torrent as an `Arc`. Its connections hold one, so it is alive while they run.
    fn arc(&self) -> Arc<Torrent> {
        self.me
            .upgrade()
            .expect("a torrent outlives the connections that call into it")
    }

    /// The state lock. A poisoned lock means a bug panicked while holding it; the state is
    /// still the best we have, so keep going rather than take the whole process down.
    pub fn state(&self) -> MutexGuard<'_, TorrentState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes state under the lock, then carries out what the change asked for.
    pub fn with_state<R>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut TorrentState, &mut Effects) -> R,
    ) -> R {
        let mut fx = Effects::default();
        let r = f(&mut self.state(), &mut fx);
        self.apply(fx);
        r
    }

    /// Carries out effects; verification work is queued without waiting (callers that must
    /// wait for room use [`Torrent::apply_waiting`]).
    fn apply(self: &Arc<Self>, mut fx: Effects) {
        for asm in std::mem::take(&mut fx.verify) {
            let tx = self.verify_tx.clone();
            self.tasks.spawn(async move {
                let _ = tx.send(asm).await;
            });
        }
        self.carry(fx);
    }

    /// Carries out effects, waiting while the verifier is that far behind (back-pressure on
    /// the connection that delivered the piece).
    async fn apply_waiting(self: &Arc<Self>, mut fx: Effects) -> Result<(), DropReason> {
        let verify = std::mem::take(&mut fx.verify);
        self.carry(fx);
        for asm in verify {
            if self.verify_tx.send(asm).await.is_err() {
                return Err(DropReason::ShuttingDown);
            }
        }
        Ok(())
    }

    fn carry(self: &Arc<Self>, mut fx: Effects) {
        loop {
            let out = carry_out(std::mem::take(&mut fx.list), &self.events);
            if out.completed {
                self.wake_tiers();
                let t = self.clone();
                self.tasks.spawn(async move { t.save_resume().await });
            }
            if out.overflowed.is_empty() {
                return;
            }
            let mut s = self.state();
            for tx in out.overflowed {
                let key = s
                    .swarm
                    .peers
                    .iter()
                    .find(|(_, p)| p.tx.same(&tx))
                    .map(|(k, _)| *k);
                if let Some(k) = key {
                    s.remove_peer(k, DropReason::OutboxFull, &mut fx);
                }
            }
        }
    }

    /// A channel that wakes a peer source when the torrent completes, pauses or resumes.
    pub fn source_wake(&self) -> Receiver<()> {
        let (tx, rx) = rt::bounded(1);
        if let Ok(mut w) = self.source_wake.lock() {
            w.push(tx);
        }
        rx
    }

    fn wake_tiers(&self) {
        if let Ok(w) = self.source_wake.lock() {
            for tx in w.iter() {
                let _ = tx.try_send(());
            }
        }
    }

    /// The torrent's file or folder in the data directory (what removing it with its data
    /// deletes); `None` when the storage keeps nothing on disk.
    pub fn data_root(&self) -> Option<PathBuf> {
        let dir = self.cfg.data_dir.as_ref()?;
        let first = self.meta.files.first()?.relative_path();
        let top = first.components().next()?;
        Some(dir.join(top))
    }

    pub fn phase(&self) -> Phase {
        self.state().phase
    }

    /// Adds peer addresses from `source` and dials.
    pub fn add_peers(self: &Arc<Self>, source: PeerSource, peers: &[SocketAddr]) {
        let listen = self.env.listen_addr;
        self.state().swarm.add_candidates(source, peers, listen);
        self.dial_more();
    }

    /// Starts connections to known peers while below `max_peers` and the session's budget.
    pub fn dial_more(self: &Arc<Self>) {
        let to_dial: Vec<(SocketAddr, PeerSlot)> = {
            let mut s = self.state();
            if s.phase != Phase::Live || (s.complete() && !self.cfg.seed) {
                return;
            }
            let room = self
                .cfg
                .max_peers
                .saturating_sub(s.swarm.peers.len() + s.swarm.connecting());
            let due = s.swarm.due(room, Instant::now());
            let mut slots = Vec::new();
            for addr in due {
                match self.env.budget.take() {
                    Some(slot) => slots.push((addr, slot)),
                    None => {
                        if let Some(c) = s.swarm.known.get_mut(&addr) {
                            c.connecting = false;
                        }
                    }
                }
            }
            slots
        };
        for (addr, slot) in to_dial {
            let t = self.clone();
            self.tasks.spawn(async move { t.dial(addr, slot).await });
        }
    }

    async fn dial(self: Arc<Self>, addr: SocketAddr, _slot: PeerSlot) {
        let stream = match rt::timeout(CONNECT_TIMEOUT, self.env.connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return self.dial_failed(addr, false, &e.to_string()),
            Err(_) => return self.dial_failed(addr, false, "timed out"),
        };
        let mut stream = stream;
        let ours = Handshake::new(self.meta.info_hash.0, self.env.peer_id);
        match peer::handshake_out(&mut stream, &ours).await {
            Ok(remote) => {
                let stopped = self.stopped.clone();
                let run = peer::run(self.clone(), stream, addr, remote, false);
                rt::race(run, stopped.cancelled()).await;
            }
            Err(e) => self.dial_failed(
                addr,
                matches!(e, crate::wire::HandshakeError::SelfConnection),
                &e.to_string(),
            ),
        }
    }

    fn dial_failed(&self, addr: SocketAddr, self_connection: bool, why: &str) {
        tracing::debug!("dial {addr}: {why}");
        self.state().swarm.dial_failed(addr, self_connection);
    }

    /// A peer dialed us for this torrent (the session read its handshake): answer and run it.
    pub fn accept<S: Transport>(
        self: &Arc<Self>,
        mut stream: S,
        addr: SocketAddr,
        remote: Handshake,
        slot: PeerSlot,
    ) {
        let t = self.clone();
        self.tasks.spawn(async move {
            let _slot = slot;
            if remote.peer_id == t.env.peer_id {
                t.state().swarm.self_addrs.insert(addr);
                return;
            }
            let ours = Handshake::new(t.meta.info_hash.0, t.env.peer_id);
            if ours.write(&mut stream).await.is_err() {
                return;
            }
            let stopped = t.stopped.clone();
            let run = peer::run(t.clone(), stream, addr, remote, true);
            rt::race(run, stopped.cancelled()).await;
        });
    }

    /// Whether an incoming peer from `addr` could get a slot now (checked before its
    /// handshake is answered).
    pub fn welcomes(self: &Arc<Self>, addr: SocketAddr) -> bool {
        let max = self.cfg.max_peers;
        self.with_state(|s, fx| !s.swarm.banned.contains(&addr.ip()) && s.make_room(max, fx))
    }

    async fn ticker(self: Arc<Self>) {
        let mut last_choke = Instant::now();
        let mut last_resume = Instant::now();
        loop {
            if let rt::Either::Right(()) = rt::race(rt::sleep(TICK), self.stopped.cancelled()).await
            {
                return;
            }
            let now = Instant::now();
            self.with_state(|s, fx| {
                if s.phase != Phase::Live {
                    return;
                }
                s.tick(now, fx);
                if now.duration_since(last_choke) >= RECHOKE_EVERY {
                    s.rechoke(fx);
                    last_choke = now;
                }
            });
            if now.duration_since(last_resume) >= RESUME_EVERY {
                last_resume = now;
                self.save_resume().await;
            }
            self.dial_more();
        }
    }

    /// Flushes storage, then records what it holds. In that order: the resume file must never
    /// name a piece that is not durable.
    pub async fn save_resume(self: &Arc<Self>) {
        let Some(path) = self.resume_path.clone() else {
            return;
        };
        let t = self.clone();
        rt::blocking(move || {
            let _one_at_a_time = t.resume_lock.lock().unwrap_or_else(|e| e.into_inner());
            let have = {
                let mut s = t.state();
                if !s.resume_dirty {
                    return;
                }
                s.resume_dirty = false;
                s.pieces.have.clone()
            };
            if let Err(e) = t.storage.flush() {
                tracing::error!("flushing storage: {e}");
                return;
            }
            if let Err(e) = resume::save(&path, &t.meta, &have) {
                tracing::error!("writing resume file {}: {e}", path.display());
            }
        })
        .await;
    }

    /// The verifier task. Hashing and writing run on blocking threads, several pieces at once,
    /// so a connection's reader goes on receiving while pieces are checked; results are taken in
    /// the order the pieces were completed, so a reader's pieces are reported before the
    /// readahead behind them.
    async fn verifier(self: Arc<Self>, queue: Receiver<PieceAssembly>) {
        use futures::StreamExt;
        let mut checking = futures::stream::FuturesOrdered::new();
        loop {
            let next = if checking.len() >= VERIFY_PARALLEL {
                rt::Either::Right(checking.next().await)
            } else if checking.is_empty() {
                rt::Either::Left(rt::race(queue.recv(), self.stopped.cancelled()).await)
            } else {
                let work = rt::race(queue.recv(), self.stopped.cancelled());
                match rt::race(work, checking.next()).await {
                    rt::Either::Left(taken) => rt::Either::Left(taken),
                    rt::Either::Right(checked) => rt::Either::Right(checked),
                }
            };
            match next {
                rt::Either::Left(rt::Either::Left(Ok(asm))) => {
                    let t = self.clone();
                    checking.push_back(rt::blocking(move || {
                        let result = t.check_and_write(&asm);
                        (asm, result)
                    }));
                }
                // The queue closed or the torrent stops: what is under check is dropped
                // unreported.
                rt::Either::Left(_) => return,
                rt::Either::Right(Some((asm, result))) => self.piece_checked(asm, result),
                rt::Either::Right(None) => {}
            }
        }
    }

    /// Verifies a whole piece against its hash and stores it.
    fn check_and_write(&self, asm: &PieceAssembly) -> Checked {
        let want = &self.meta.piece_hashes[asm.index as usize];
        if Sha1::digest(&asm.data).as_slice() != want {
            return Checked::HashMismatch;
        }
        match self.write_piece(asm.index, &asm.data) {
            Ok(()) => Checked::Stored,
            Err(e) => Checked::NotStored(e),
        }
    }

    fn piece_checked(self: &Arc<Self>, asm: PieceAssembly, result: Checked) {
        if let Checked::Stored = result
            && let Ok(mut c) = self.checked.lock()
        {
            c.set(asm.index);
        }
        self.with_state(|s, fx| match result {
            Checked::Stored => s.piece_verified(&asm, fx),
            Checked::HashMismatch => s.piece_failed(asm, fx),
            Checked::NotStored(e) => s.piece_not_stored(asm.index, e, fx),
        });
    }

    fn write_piece(&self, piece: u32, data: &[u8]) -> Result<(), StorageError> {
        for span in self.layout.spans(self.layout.piece_range(piece)) {
            let at = span.range_offset as usize;
            self.storage
                .write(span.file, span.offset, &data[at..at + span.len as usize])?;
        }
        Ok(())
    }

    /// Reads `range` (inside one piece's worth of pieces we have) from storage, off the async
    /// threads. A piece not yet hashed during this run (vouched for by the resume data only)
    /// is read whole and hashed first: one that changed on disk is dropped and fetched again,
    /// never served.
    async fn read_verified(
        self: &Arc<Self>,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<u8>, StorageError> {
        let t = self.clone();
        let result = rt::blocking(move || t.read_verified_blocking(range)).await;
        if let Err(ReadBack::Corrupt(pieces)) = &result {
            self.with_state(|s, fx| {
                for &p in pieces {
                    s.piece_corrupt_on_disk(p, fx);
                }
            });
        }
        result.map_err(|e| match e {
            ReadBack::Corrupt(_) => StorageError::Missing,
            ReadBack::Storage(e) => e,
        })
    }

    fn read_verified_blocking(&self, range: std::ops::Range<u64>) -> Result<Vec<u8>, ReadBack> {
        let pieces = self.layout.pieces_for(range.clone());
        let unchecked: Vec<u32> = {
            let c = self.checked.lock().unwrap_or_else(|e| e.into_inner());
            pieces.filter(|&p| !c.get(p)).collect()
        };
        let mut corrupt = Vec::new();
        for p in unchecked {
            let data = recheck::read_range(
                &self.layout,
                self.storage.as_ref(),
                self.layout.piece_range(p),
            )
            .map_err(ReadBack::Storage)?;
            if Sha1::digest(&data).as_slice() == self.meta.piece_hashes[p as usize] {
                if let Ok(mut c) = self.checked.lock() {
                    c.set(p);
                }
            } else {
                corrupt.push(p);
            }
        }
        if !corrupt.is_empty() {
            return Err(ReadBack::Corrupt(corrupt));
        }
        recheck::read_range(&self.layout, self.storage.as_ref(), range).map_err(ReadBack::Storage)
    }

    pub async fn read(self: &Arc<Self>, offset: u64, len: u64) -> Result<Vec<u8>, ReadError> {
        let total = self.meta.total_length;
        if offset > total {
            return Err(ReadError::OutOfRange { offset });
        }
        let end = offset.saturating_add(len).min(total);
        let pieces = self.layout.pieces_for(offset..end);
        let give_up = Instant::now() + self.cfg.read_timeout;
        let mut first_wait = true;
        loop {
            let (tx, rx) = rt::bounded(1);
            let wait = self.with_state(|s, fx| {
                if s.phase == Phase::Stopped {
                    return Err(ReadError::Stopped);
                }
                if let Some(f) = &s.storage_fault {
                    return Err(ReadError::Storage(f.error.clone()));
                }
                if pieces.clone().all(|p| s.pieces.have.get(p)) {
                    return Ok(None);
                }
                let now_ms = s.now_ms();
                let TorrentState {
                    readers,
                    pieces: tracker,
                    ..
                } = s;
                let id = readers.register(
                    pieces.clone(),
                    now_ms,
                    tx,
                    &tracker.have.clone(),
                    tracker.picker(),
                );
                if first_wait {
                    first_wait = false;
                    fx.emit(Event::ReadWaiting {
                        offset,
                        len: end - offset,
                    });
                }
                s.fill_all(fx);
                Ok(Some(id))
            })?;
            let Some(id) = wait else {
                match self.read_verified(offset..end).await {
                    Ok(v) => return Ok(v),
                    Err(StorageError::Evicted | StorageError::Missing) => {
                        self.with_state(|s, fx| {
                            for p in pieces.clone() {
                                s.piece_evicted(p, fx);
                            }
                        });
                        if Instant::now() >= give_up {
                            return Err(self.read_timed_out(offset, end));
                        }
                        continue;
                    }
                    Err(e) => return Err(ReadError::Storage(Arc::new(e))),
                }
            };
            let guard = WaitGuard { torrent: self, id };
            let left = give_up.saturating_duration_since(Instant::now());
            match rt::timeout(left, rx.recv()).await {
                Err(_) => return Err(self.read_timed_out(offset, end)),
                Ok(Err(_)) => return Err(ReadError::Stopped),
                Ok(Ok(())) => drop(guard),
            }
        }
    }

    fn read_timed_out(&self, offset: u64, end: u64) -> ReadError {
        self.events.emit(Event::ReadTimeout {
            offset,
            len: end - offset,
        });
        tracing::warn!("read of {} bytes at {offset} timed out", end - offset);
        ReadError::Timeout {
            offset,
            len: end - offset,
        }
    }

    pub fn prefetch(self: &Arc<Self>, reader: u64, range: std::ops::Range<u64>, urgency: Duration) {
        let end = range
            .end
            .min(range.start.saturating_add(self.cfg.max_readahead));
        let pieces = self.layout.pieces_for(range.start..end);
        self.with_state(|s, fx| {
            // A window is never due before a read registered now: readers are served first.
            let deadline =
                s.now_ms() + READAHEAD_AFTER_READS.as_millis() as u64 + urgency.as_millis() as u64;
            let TorrentState {
                readers,
                pieces: tracker,
                ..
            } = s;
            let have = tracker.have.clone();
            readers.set_window(reader, Some((pieces, deadline)), &have, tracker.picker());
            s.fill_all(fx);
        });
    }

    pub fn forget_reader(&self, reader: u64) {
        let mut s = self.state();
        let TorrentState {
            readers, pieces, ..
        } = &mut *s;
        let have = pieces.have.clone();
        readers.set_window(reader, None, &have, pieces.picker());
    }

    pub async fn wait_complete(self: &Arc<Self>) -> Result<(), EngineError> {
        loop {
            let (tx, rx) = rt::bounded(1);
            {
                let mut s = self.state();
                if let Some(f) = &s.storage_fault {
                    return Err(EngineError::Storage(f.error.clone()));
                }
                if s.complete() {
                    return Ok(());
                }
                if s.phase == Phase::Stopped {
                    return Err(EngineError::Stopped);
                }
                s.complete_waiters.push(tx);
            }
            if rx.recv().await.is_err() {
                return Err(EngineError::Stopped);
            }
        }
    }

    /// Stops fetching and serving and closes every connection; the torrent can resume.
    pub async fn pause(self: &Arc<Self>) {
        let paused = self.with_state(|s, fx| {
            if s.phase != Phase::Live {
                return false;
            }
            s.phase = Phase::Paused;
            s.disconnect_all(DropReason::Paused, fx);
            fx.emit(Event::Paused);
            true
        });
        if paused {
            self.wake_tiers();
            self.save_resume().await;
        }
    }

    pub fn resume(self: &Arc<Self>) {
        let resumed = self.with_state(|s, fx| {
            if s.phase != Phase::Paused {
                return false;
            }
            s.phase = Phase::Live;
            fx.emit(Event::Resumed {
                pieces: s.pieces.have.count(),
            });
            true
        });
        if resumed {
            self.wake_tiers();
            self.dial_more();
        }
    }

    pub async fn shutdown(self: &Arc<Self>) {
        self.with_state(|s, fx| {
            s.phase = Phase::Stopped;
            s.readers.close_all();
            s.complete_waiters.clear();
            s.disconnect_all(DropReason::ShuttingDown, fx);
        });
        if self.stop.is_cancelled() {
            return;
        }
        // Peer sources see this and say goodbye (a tracker's `stopped`) as they end.
        self.stop.cancel();
        self.state().resume_dirty = true;
        self.save_resume().await;
        let t = self.clone();
        rt::blocking(move || {
            if let Err(e) = t.storage.flush() {
                tracing::error!("flushing storage: {e}");
            }
        })
        .await;
        self.tasks.join(SHUTDOWN_GRACE).await;
        self.events.emit(Event::Stopped);
    }
}

/// How a piece's check went.
enum Checked {
    Stored,
    HashMismatch,
    NotStored(StorageError),
}

enum ReadBack {
    Corrupt(Vec<u32>),
    Storage(StorageError),
}

/// Withdraws a read's deadlines when it finishes, times out or is dropped.
struct WaitGuard<'a> {
    torrent: &'a Torrent,
    id: u64,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        let mut s = self.torrent.state();
        let TorrentState {
            readers, pieces, ..
        } = &mut *s;
        let have = pieces.have.clone();
        readers.unregister(self.id, &have, pieces.picker());
    }
}

impl PeerHandler for Torrent {
    fn max_message_len(&self) -> u32 {
        // The largest legal message is a bitfield or a served block.
        (Bitfield::byte_len(self.meta.piece_count()) as u32 + 1).max(128 * 1024 + 9)
    }

    fn attach(&self, link: PeerLink) -> Result<Attached, DropReason> {
        let mut fx = Effects::default();
        let result = {
            let mut s = self.state();
            let pieces = s.pieces.have.len();
            // Many incoming handshakes finish at once: the room checked at accept may be gone.
            if s.phase != Phase::Live {
                Err(DropReason::ShuttingDown)
            } else if s.swarm.banned.contains(&link.addr.ip()) {
                Err(DropReason::Banned("banned earlier".into()))
            } else if s.swarm.is_connected_id(&link.peer_id) {
                Err(DropReason::Duplicate)
            } else if link.incoming && !s.make_room(self.cfg.max_peers, &mut fx) {
                Err(DropReason::NoRoom)
            } else {
                let conn = link.conn;
                let peer =
                    PeerState::new(conn, link.addr, link.peer_id, link.tx, link.close, pieces);
                Ok(Attached {
                    key: s.add_peer(peer, &mut fx),
                    conn,
                })
            }
        };
        carry_out(fx.list, &self.events);
        result
    }

    async fn on_message(&self, id: Attached, msg: Message) -> Result<(), DropReason> {
        if let Message::Piece { data, .. } = &msg {
            self.env.down_limit.acquire(data.len() as u64).await;
        }
        let mut fx = Effects::default();
        let r = self.state().on_message(id.key, id.conn, msg, &mut fx);
        let this = self.arc();
        this.apply_waiting(fx).await?;
        r
    }

    async fn serve(&self, id: Attached, r: BlockRequest) -> Option<Message> {
        if !self.state().take_upload(id.key, id.conn, &r) {
            return None;
        }
        let start = self.layout.piece_range(r.piece).start + r.offset as u64;
        let this = self.arc();
        match this.read_verified(start..start + r.len as u64).await {
            Ok(data) => {
                self.env.up_limit.acquire(data.len() as u64).await;
                self.state().uploaded_block(id.key, id.conn, r.len as u64);
                Some(Message::Piece {
                    piece: r.piece,
                    offset: r.offset,
                    data,
                })
            }
            Err(e) => {
                tracing::warn!("cannot serve piece {}: {e}", r.piece);
                None
            }
        }
    }

    fn detach(&self, id: Attached, reason: DropReason) {
        let this = self.arc();
        this.with_state(|s, fx| s.remove_conn(id.key, id.conn, reason, fx));
    }
}
