//! Fetching a magnet link's metadata (BEP 9 over BEP 10): dial the peers the sources give,
//! ask each for 16 KiB pieces of the info dictionary, check the whole against the info-hash
//! off the async threads, ban peers that sent wrong bytes and fetch from others.
//!
//! A [`Fetch`] is the [`PeerHandler`] of its connections, like a torrent is of its own; its
//! candidate list is the torrent's [`Swarm`] (bounded, with the same dial backoff and bans).
//! For a v2 magnet link the info dictionary is checked against its SHA-256, and the piece
//! layers it lacks are then fetched from the same peers ([`layers`]); a v2 `.torrent` written
//! without its layers starts at that second step.

mod assembly;
mod handler;
mod layers;
mod trackers;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use assembly::MetadataAssembly;
use layers::LayerFetch;

use crate::events::EventSink;
use crate::metainfo::merkle::Hash;
use crate::metainfo::{InfoHash, Magnet};
use crate::peer::{self, PeerTx};
use crate::plugin::Tracker;
use crate::rt::{self, Cancel, CancelSource, Receiver, Sender, Tasks, TcpStream};
use crate::torrent::{Env, MessageBudget, PeerSlot, PeerSource, Swarm};
use crate::wire::Handshake;

/// Connections one fetch keeps open: enough to find the few peers that have the metadata.
const MAX_PEERS: usize = 30;
/// Requests in flight per peer.
const PIPELINE: usize = 4;
const TICK: Duration = Duration::from_secs(1);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Requests a peer may let lapse before it is dropped.
const MAX_TIMEOUTS: u32 = 2;

/// One connected peer of the fetch.
struct FetchPeer {
    addr: SocketAddr,
    tx: PeerTx,
    _close: CancelSource,
    /// The id it wants ut_metadata messages under, once its extension handshake came.
    ut_metadata: Option<u8>,
    /// The metadata size it claims.
    size: Option<u64>,
    control: MessageBudget,
    timeouts: u32,
    /// It dialled us: its address is not where it listens.
    incoming: bool,
}

#[derive(Default)]
struct FetchState {
    swarm: Swarm,
    peers: HashMap<u64, FetchPeer>,
    asm: MetadataAssembly,
    /// A v2 torrent's verified info dictionary and its layers being fetched.
    layers: Option<(Vec<u8>, LayerFetch)>,
    /// Where peers that dialled us say they listen (their extension handshake's `p`): the
    /// torrent dials them once the fetch is over and their connections with it.
    listening: Vec<SocketAddr>,
}

/// What a fetch ends with: the verified info dictionary and, for a v2 magnet link, the piece
/// layers it lacked (each checked against its file's root), by root.
pub(crate) struct Fetched {
    pub info: Vec<u8>,
    pub layers: Vec<(Hash, Vec<Hash>)>,
}

/// The metadata of one magnet link being fetched.
pub(crate) struct Fetch {
    pub info_hash: InfoHash,
    /// The SHA-256 of the info dictionary, for a v2 magnet link.
    info_hash_v2: Option<Hash>,
    env: Env,
    events: EventSink,
    state: Mutex<FetchState>,
    done: Sender<Fetched>,
    done_rx: Receiver<Fetched>,
    tasks: Tasks,
    stop: CancelSource,
    stopped: Cancel,
}

impl Fetch {
    pub fn new(magnet: &Magnet, env: Env) -> Arc<Fetch> {
        let (stop, stopped) = rt::cancel_pair();
        let (done, done_rx) = rt::bounded(1);
        let events = env.events.sink().for_torrent(&magnet.info_hash.hex());
        Arc::new(Fetch {
            info_hash: magnet.info_hash,
            info_hash_v2: magnet.info_hash_v2,
            env,
            events,
            state: Mutex::new(FetchState::default()),
            done,
            done_rx,
            tasks: Tasks::default(),
            stop,
            stopped,
        })
    }

    fn state(&self) -> MutexGuard<'_, FetchState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Peer addresses from `source`; dialed as room allows.
    pub fn add_peers(self: &Arc<Self>, source: PeerSource, addrs: &[SocketAddr]) {
        let listen = self.env.listen_addr;
        self.state().swarm.add_candidates(source, addrs, listen);
        self.dial_more();
    }

    /// Every address the fetch learned: the torrent starts from them.
    pub fn known_peers(&self) -> Vec<SocketAddr> {
        let s = self.state();
        s.swarm
            .known
            .keys()
            .chain(&s.listening)
            .filter(|a| !s.swarm.banned.contains(&a.ip()))
            .copied()
            .collect()
    }

    /// Connections open now.
    pub fn connected(&self) -> usize {
        self.state().peers.len()
    }

    /// Fetches until the metadata is verified (with the layers a v2 link lacks) or the fetch is
    /// cancelled (`None`). With `known_info` (a v2 `.torrent` without its piece layers, its
    /// info dictionary already checked against the hash) only the layers are fetched.
    pub async fn run(
        self: &Arc<Self>,
        trackers: Vec<Arc<dyn Tracker>>,
        known_info: Option<Vec<u8>>,
    ) -> Option<Fetched> {
        if let Some(info) = known_info {
            self.start_layers(info).await;
        }
        for t in trackers {
            self.tasks.spawn(trackers::announce(self.clone(), t));
        }
        self.tasks.spawn(self.clone().ticker());
        self.dial_more();
        let got = match rt::race(self.done_rx.recv(), self.stopped.cancelled()).await {
            rt::Either::Left(Ok(info)) => Some(info),
            _ => None,
        };
        self.stop.cancel();
        self.state().peers.clear();
        self.tasks.join(Duration::from_secs(1)).await;
        got
    }

    /// Ends the fetch; [`Fetch::run`] returns `None`.
    pub fn cancel(&self) {
        self.stop.cancel();
    }

    async fn ticker(self: Arc<Self>) {
        loop {
            if let rt::Either::Right(()) = rt::race(rt::sleep(TICK), self.stopped.cancelled()).await
            {
                return;
            }
            self.on_tick(Instant::now());
            self.dial_more();
        }
    }

    fn dial_more(self: &Arc<Self>) {
        let to_dial: Vec<(SocketAddr, PeerSlot)> = {
            let mut s = self.state();
            if self.stopped.is_cancelled() {
                return;
            }
            let room = MAX_PEERS.saturating_sub(s.peers.len() + s.swarm.connecting());
            let due = s.swarm.due(room, Instant::now(), false);
            let mut out = Vec::new();
            for addr in due {
                match self.env.budget.take() {
                    Some(slot) => out.push((addr, slot)),
                    None => s.swarm.dial_failed(addr, false),
                }
            }
            out
        };
        for (addr, slot) in to_dial {
            let f = self.clone();
            self.tasks.spawn(async move { f.dial(addr, slot).await });
        }
    }

    async fn dial(self: Arc<Self>, addr: SocketAddr, _slot: PeerSlot) {
        let mut stream = match rt::timeout(CONNECT_TIMEOUT, self.env.connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return self.dial_failed(addr, false, &e.to_string()),
            Err(_) => return self.dial_failed(addr, false, "timed out"),
        };
        let ours = Handshake::new(self.info_hash.0, self.env.peer_id);
        match peer::handshake_out(&mut stream, &ours).await {
            Ok(remote) => {
                let stopped = self.stopped.clone();
                let run = peer::run(self.clone(), stream, addr, remote, false);
                rt::race(run, stopped.cancelled()).await;
                let mut s = self.state();
                if let Some(c) = s.swarm.known.get_mut(&addr) {
                    c.connecting = false;
                    c.next_try = Instant::now() + Duration::from_secs(10);
                }
            }
            Err(e) => self.dial_failed(
                addr,
                matches!(e, crate::wire::HandshakeError::SelfConnection),
                &e.to_string(),
            ),
        }
    }

    /// A peer dialed us for this magnet link (the session read its handshake): answer and
    /// ask it for the metadata too.
    pub fn accept(
        self: &Arc<Self>,
        mut stream: TcpStream,
        addr: SocketAddr,
        remote: Handshake,
        slot: PeerSlot,
    ) {
        let f = self.clone();
        self.tasks.spawn(async move {
            let _slot = slot;
            if remote.peer_id == f.env.peer_id || f.stopped.is_cancelled() {
                return;
            }
            let ours = Handshake::new(f.info_hash.0, f.env.peer_id);
            if ours.write(&mut stream).await.is_err() {
                return;
            }
            let stopped = f.stopped.clone();
            rt::race(
                peer::run(f.clone(), stream, addr, remote, true),
                stopped.cancelled(),
            )
            .await;
        });
    }

    fn dial_failed(&self, addr: SocketAddr, self_connection: bool, why: &str) {
        tracing::debug!("metadata: dial {addr}: {why}");
        self.state().swarm.dial_failed(addr, self_connection);
    }
}
