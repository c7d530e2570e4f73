//! A running torrent: owns the state lock, the storage and the torrent's tasks (ticker,
//! verifier, tracker tiers, connections), carries out the effects the state returns, and is
//! the peer handler its connections drive.
//!
//! Locking: one std mutex over [`TorrentState`], held only to change state; sends, events,
//! storage and hashing happen after it is released (STATE.md lists what runs where).

mod lifecycle;
mod peer_link;
mod read_path;
mod spill;
mod verifier;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::assembly::PieceAssembly;
use super::effects::{Effects, carry_out};
use super::env::{Env, PeerSlot, TorrentConfig};
use super::error::EngineError;
use super::state::{Phase, TorrentState};
use super::swarm::PeerSource;
use super::{recheck, resume};
use crate::bitfield::Bitfield;
use crate::events::{Event, EventSink};
use crate::layout::Layout;
use crate::metainfo::Metainfo;
use crate::peer::{self, DropReason, Transport};
use crate::plugin::{Storage, Tracker};
use crate::rt::{self, Cancel, CancelSource, Receiver, Sender, Tasks};
use crate::wire::Handshake;

/// How often the ticker runs (rates, timeouts, dialing).
const TICK: Duration = Duration::from_millis(500);
const RECHOKE_EVERY: Duration = Duration::from_secs(10);
const RESUME_EVERY: Duration = Duration::from_secs(5);
/// Bytes of whole pieces that may wait for verification before connections stop reading.
const VERIFY_QUEUE_BYTES: u64 = 16 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time the torrent's tasks get to end on their own at shutdown: a tracker's `stopped`
/// announce may take its 3 s timeout plus a second.
pub(super) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub(crate) struct Torrent {
    /// Itself, for the peer-handler methods that are called on `&self` but spawn work.
    pub(super) me: std::sync::Weak<Torrent>,
    pub cfg: TorrentConfig,
    pub meta: Arc<Metainfo>,
    pub layout: Layout,
    pub storage: Arc<dyn Storage>,
    pub events: EventSink,
    pub env: Env,
    pub tiers: Mutex<Vec<Vec<Arc<dyn Tracker>>>>,
    pub announce_key: u32,
    pub(super) state: Mutex<TorrentState>,
    /// Whole pieces waiting for the verifier.
    pub(super) verify_tx: Sender<PieceAssembly>,
    pub tasks: Tasks,
    pub(super) stop: CancelSource,
    pub stopped: Cancel,
    pub(super) resume_path: Option<PathBuf>,
    /// One resume save at a time, so an older snapshot never overwrites a newer one.
    pub(super) resume_lock: Arc<Mutex<()>>,
    /// Wakes peer sources (tracker tiers): completion, pause, resume, stop.
    pub(super) source_wake: Mutex<Vec<Sender<()>>>,
    /// Taken by the verifier task when the torrent goes live.
    verify_rx: Mutex<Option<Receiver<PieceAssembly>>>,
    /// Held until shutdown: no other rivulet (nor a second add of it) uses the same data meanwhile.
    data_lock: Mutex<Option<crate::data_lock::DataLock>>,
    /// Pieces hashed during this run (from the network, or read back once): a piece the
    /// resume data vouches for is hashed the first time it is read before it is served.
    pub(super) checked: Mutex<Bitfield>,
}

impl Torrent {
    /// A torrent in its checking phase: nothing runs yet. Registering it first lets the
    /// session route its peers to it the moment it goes live ([`Torrent::start`]).
    pub fn new(
        cfg: TorrentConfig,
        plugins: super::env::Plugins,
        env: Env,
        data_lock: crate::data_lock::DataLock,
    ) -> Arc<Torrent> {
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
        Arc::new_cyclic(|me| Torrent {
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
            verify_rx: Mutex::new(Some(verify_rx)),
            data_lock: Mutex::new(Some(data_lock)),
        })
    }

    /// Checks what the storage holds, then goes live: peers, verifier, ticker. Fails (and
    /// nothing runs) when the torrent must be complete and is not.
    pub async fn start(self: &Arc<Self>) -> Result<(), EngineError> {
        let torrent = self;
        let checked = {
            let t = torrent.clone();
            rt::blocking(move || {
                let data_dir = t.cfg.data_dir.clone().unwrap_or_default();
                recheck::initial_have(
                    &t.meta,
                    &t.layout,
                    t.storage.as_ref(),
                    t.resume_path.as_deref(),
                    &data_dir,
                )
            })
            .await
        };
        if checked.hashed > 0 || !checked.changed_files.is_empty() {
            torrent.events.emit(Event::Rechecked {
                changed_files: checked.changed_files.len(),
                files: recheck::name_files(&torrent.meta, &checked.changed_files),
                pieces: checked.hashed,
                verified: checked.verified,
            });
        }
        let have = checked.have;
        torrent.events.emit(Event::Resumed {
            pieces: have.count(),
        });
        if torrent.cfg.require_complete && !have.is_full() {
            return Err(recheck::incomplete(&torrent.meta, &torrent.layout, &have).into());
        }
        // What the start-up check hashed is checked for this run.
        if let Ok(mut c) = torrent.checked.lock() {
            for p in checked.verified_pieces.ones() {
                c.set(p);
            }
        }
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
        torrent.events.emit(Event::Listening {
            addr: torrent.env.listen_addr.to_string(),
        });
        torrent.tasks.spawn(torrent.clone().ticker());
        let verify_rx = torrent.verify_rx.lock().ok().and_then(|mut r| r.take());
        if let Some(rx) = verify_rx {
            torrent.tasks.spawn(verifier::run(torrent.clone(), rx));
        }
        torrent.dial_more();
        Ok(())
    }

    /// This torrent as an `Arc`. Its connections hold one, so it is alive while they run.
    pub(super) fn arc(&self) -> Arc<Torrent> {
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
        let spill = std::mem::take(&mut fx.spill);
        if !spill.is_empty() {
            let t = self.clone();
            self.tasks
                .spawn(async move { t.write_spilled(spill).await });
        }
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
    pub(super) async fn apply_waiting(self: &Arc<Self>, mut fx: Effects) -> Result<(), DropReason> {
        let verify = std::mem::take(&mut fx.verify);
        let spill = std::mem::take(&mut fx.spill);
        self.carry(fx);
        self.write_spilled(spill).await;
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
            for (source, addrs) in out.found {
                self.add_peers(source, &addrs);
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
            let complete = s.complete();
            let due = s.swarm.due(room, Instant::now(), complete);
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
            // Stopped or paused between the session's routing and now: say nothing.
            if t.phase() != Phase::Live {
                return;
            }
            // Answered with the hash asked for: a hybrid torrent's v2 peers ask by its v2 hash.
            let ours = Handshake::new(remote.info_hash, t.env.peer_id);
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
                s.pex_round(now, fx);
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
            // Read after the flush: these are the files the pieces in `have` are durable in.
            let data_dir = t.cfg.data_dir.clone().unwrap_or_default();
            let stamps = super::file_stamp::stamp_files(&data_dir, &t.meta);
            if let Err(e) = resume::save(&path, &t.meta, &have, &stamps) {
                tracing::error!("writing resume file {}: {e}", path.display());
            }
        })
        .await;
    }
}
