//! A session: many torrents in one process sharing one listener (incoming handshakes routed
//! by info-hash), one peer id, global rate limits and peer budget, the plugin registry (loaded
//! once) and an event bus. The `rivulet` commands, and later the HTTP API, are thin clients of
//! it: add, pause, resume, remove, shut down.

mod compose;
mod layers_on_disk;
mod listener;
mod magnet;
pub mod watch;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::Settings;
use crate::events::{Event, EventBus, EventFile, EventSink};
use crate::metainfo::{InfoHash, Unsupported};
use crate::peer_sources::dht_node::{self, DhtNode};
use crate::plugin::registry::Registry;
use crate::plugin::{PiecePicker, PluginError, StorageError};
use crate::rt::{self, Cancel, CancelSource, Tasks};
use crate::torrent::{EngineError, Env, PeerBudget, RateLimiter, TorrentHandle};

pub use compose::{AddTorrent, Mode, TorrentSource};
pub use magnet::{Pending, cached_torrent_path};

/// Connections across all torrents at most: each torrent has its own `max_peers` within it.
const MIN_PEER_BUDGET: usize = 500;

/// How to build a session.
pub struct SessionOptions {
    pub settings: Settings,
    /// Every plugin the session may use (built-ins and those loaded from `plugin_dirs`).
    pub registry: Registry,
    /// Takes over from a picker that breaks; a built-in, so it cannot break the same way.
    pub fallback_picker: (String, fn() -> Box<dyn PiecePicker>),
    /// Also write every event as a JSON line to this file.
    pub events_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot write events to {path}: {source}")]
    EventFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("cannot create {dir}: {source}")]
    DataDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open {storage} storage in {dir}: {source}")]
    Storage {
        storage: String,
        dir: PathBuf,
        source: StorageError,
    },
    #[error(
        "storage '{0}' keeps nothing once rivulet exits, so it cannot download or seed: use a \
         persistent storage such as mmap, or stream with `rivulet mount --storage {0}`"
    )]
    NotPersistent(String),
    #[error("torrent {0} is already in this session")]
    Duplicate(String),
    #[error("no torrent {0} in this session")]
    NoSuchTorrent(String),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Lock(#[from] crate::data_lock::LockError),
    #[error("fetching the metadata of {0} was cancelled")]
    Cancelled(String),
    #[error(transparent)]
    Unsupported(#[from] Unsupported),
    #[error("the metadata peers sent is verified but unusable: {0}")]
    Metadata(crate::metainfo::MetainfoError),
}

pub(crate) struct Inner {
    settings: Settings,
    registry: Registry,
    fallback_picker: (String, fn() -> Box<dyn PiecePicker>),
    env: Env,
    torrents: Mutex<HashMap<InfoHash, TorrentHandle>>,
    tasks: Tasks,
    stop: CancelSource,
    stopped: Cancel,
    /// Magnet links whose metadata is being fetched.
    pending: Mutex<HashMap<InfoHash, magnet::PendingFetch>>,
    events_file: Mutex<Option<EventFile>>,
    /// The DHT node, unless the settings turn it off.
    dht: Option<Arc<DhtNode>>,
}

/// A running session; cloning gives another handle to it.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

fn new_peer_id() -> [u8; 20] {
    const ALNUM: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut id = *b"-RV0010-000000000000";
    for b in &mut id[8..] {
        *b = ALNUM[rand::random_range(0..ALNUM.len())];
    }
    id
}

impl Session {
    /// Binds the listener and starts accepting peers.
    pub async fn new(opts: SessionOptions) -> Result<Session, SessionError> {
        let bus = EventBus::new();
        let events_file =
            match &opts.events_file {
                Some(path) => Some(EventFile::start(path, &bus).map_err(|source| {
                    SessionError::EventFile {
                        path: path.clone(),
                        source,
                    }
                })?),
                None => None,
            };
        let addr = opts.settings.listen;
        let listener = rt::TcpListener::bind(addr)
            .await
            .map_err(|source| SessionError::Listen { addr, source })?;
        let listen_addr = listener
            .local_addr()
            .map_err(|source| SessionError::Listen { addr, source })?;
        let s = &opts.settings;
        let env = Env {
            peer_id: new_peer_id(),
            listen_addr,
            down_limit: Arc::new(RateLimiter::new(s.download_limit_kib * 1024)),
            up_limit: Arc::new(RateLimiter::new(s.upload_limit_kib * 1024)),
            budget: PeerBudget::new((s.max_peers as usize).max(MIN_PEER_BUDGET)),
            events: bus,
        };
        let (stop, stopped) = rt::cancel_pair();
        let dht = opts.settings.dht.then(|| {
            let node = DhtNode::new();
            let start = dht_node::NodeOptions {
                listen: listen_addr,
                bootstrap: opts.settings.dht_bootstrap.clone(),
                state_dir: opts.settings.state_dir.clone(),
                events: env.events.sink(),
            };
            (node.clone(), dht_node::run(node, start, stopped.clone()))
        });
        let inner = Arc::new(Inner {
            settings: opts.settings,
            registry: opts.registry,
            fallback_picker: opts.fallback_picker,
            env,
            torrents: Mutex::new(HashMap::new()),
            tasks: Tasks::default(),
            stop,
            stopped: stopped.clone(),
            pending: Mutex::new(HashMap::new()),
            events_file: Mutex::new(events_file),
            dht: dht.as_ref().map(|(node, _)| node.clone()),
        });
        if let Some((_, run)) = dht {
            inner.tasks.spawn(run);
        }
        inner.tasks.spawn(listener::accept_loop(
            Arc::downgrade(&inner),
            listener,
            stopped,
        ));
        Ok(Session { inner })
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The address peers reach this session on.
    pub fn listen_addr(&self) -> SocketAddr {
        self.inner.env.listen_addr
    }

    /// Session-wide events (every torrent's, tagged with its info-hash).
    pub fn events(&self) -> EventSink {
        self.inner.env.events.sink()
    }

    /// A new subscriber to every event of the session.
    pub fn subscribe(&self, cap: usize) -> rt::Receiver<crate::events::Stamped> {
        self.inner.env.events.subscribe(cap)
    }

    /// Adds a torrent and starts it: opens its storage, checks what it holds, then downloads,
    /// seeds or serves reads as `add.mode` says. A magnet link's metadata is fetched first
    /// (listed by [`Session::pending`] meanwhile) unless an earlier add cached it.
    pub async fn add(&self, add: AddTorrent) -> Result<TorrentHandle, SessionError> {
        let hash = add.source.info_hash();
        if self.get(&hash).is_some() {
            return Err(SessionError::Duplicate(hash.hex()));
        }
        let (meta, found, link_peers) = match &add.source {
            TorrentSource::Metainfo(meta) if meta.lacks_piece_layers() => {
                let (full, found) =
                    magnet::complete_layers(&self.inner, meta, &add.data_dir, &add.peers).await?;
                (Arc::new(full), found, &[][..])
            }
            TorrentSource::Metainfo(meta) => (meta.clone(), Vec::new(), &[][..]),
            TorrentSource::Magnet(link) => {
                let (meta, found) = magnet::resolve(&self.inner, link, &add.peers, None).await?;
                (Arc::new(meta), found, &link.peers[..])
            }
        };
        if meta.lacks_piece_layers() {
            return Err(Unsupported::V2MissingLayers(meta.missing_piece_layers).into());
        }
        // The torrent dials whom the link named and the fetch met, besides the add's peers.
        let mut peers = add.peers.clone();
        for p in link_peers.iter().chain(&found) {
            if !peers.contains(p) {
                peers.push(*p);
            }
        }
        let add = AddTorrent {
            source: TorrentSource::Metainfo(meta.clone()),
            peers,
            ..add
        };
        let (cfg, plugins, lock) = compose::compose(&self.inner, &meta, &add)?;
        let name = cfg.meta.name.clone();
        let torrent = crate::torrent::Torrent::new(cfg, plugins, self.inner.env.clone(), lock);
        let handle = TorrentHandle { torrent };
        {
            let mut torrents = self
                .inner
                .torrents
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if torrents.contains_key(&hash) {
                return Err(SessionError::Duplicate(hash.hex()));
            }
            torrents.insert(hash, handle.clone());
        }
        if let Err(e) = handle.torrent.start().await {
            if let Ok(mut t) = self.inner.torrents.lock() {
                t.remove(&hash);
            }
            handle.shutdown().await;
            return Err(e.into());
        }
        crate::peer_sources::tracker::start(&handle.torrent);
        if let Some(dht) = &self.inner.dht {
            crate::peer_sources::dht::start(&handle.torrent, dht.clone());
        }
        self.inner
            .env
            .events
            .sink()
            .for_torrent(&hash.hex())
            .emit(Event::Added { name });
        Ok(handle)
    }

    pub fn get(&self, hash: &InfoHash) -> Option<TorrentHandle> {
        self.inner.torrents.lock().ok()?.get(hash).cloned()
    }

    /// Every torrent of the session.
    pub fn torrents(&self) -> Vec<TorrentHandle> {
        self.inner
            .torrents
            .lock()
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default()
    }

    fn handle(&self, hash: &InfoHash) -> Result<TorrentHandle, SessionError> {
        self.get(hash)
            .ok_or_else(|| SessionError::NoSuchTorrent(hash.hex()))
    }

    pub async fn pause(&self, hash: &InfoHash) -> Result<(), SessionError> {
        self.handle(hash)?.pause().await;
        Ok(())
    }

    pub fn resume(&self, hash: &InfoHash) -> Result<(), SessionError> {
        self.handle(hash)?.resume();
        Ok(())
    }

    /// Stops a torrent and takes it out of the session; its data stays unless `delete_data`.
    /// For a magnet link still fetching its metadata, cancels the fetch (its `add` fails with
    /// [`SessionError::Cancelled`]).
    pub async fn remove(&self, hash: &InfoHash, delete_data: bool) -> Result<(), SessionError> {
        if !self.cancel_pending(hash) {
            let handle = self
                .inner
                .torrents
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(hash)
                .ok_or_else(|| SessionError::NoSuchTorrent(hash.hex()))?;
            handle.shutdown().await;
            if delete_data && let Some(root) = handle.torrent.data_root() {
                rt::blocking(move || compose::delete_data(&root)).await;
            }
        }
        self.inner
            .env
            .events
            .sink()
            .for_torrent(&hash.hex())
            .emit(Event::Removed);
        Ok(())
    }

    /// Connections open across all torrents.
    pub fn connections(&self) -> usize {
        self.inner.env.budget.used()
    }

    /// Tasks the session itself still runs (its listener and handshakes), not its torrents'.
    pub fn live_tasks(&self) -> usize {
        self.inner.tasks.live()
    }

    /// Shuts every torrent down (announce `stopped`, flush, resume file), stops listening and
    /// writes out the last events.
    pub async fn shutdown(&self) {
        let torrents: Vec<TorrentHandle> = self
            .inner
            .torrents
            .lock()
            .map(|mut t| t.drain().map(|(_, h)| h).collect())
            .unwrap_or_default();
        futures::future::join_all(torrents.iter().map(|t| t.shutdown())).await;
        // Ends every pending magnet fetch too: each `add` waiting on one fails as cancelled.
        self.inner.stop.cancel();
        self.inner.tasks.join(Duration::from_secs(2)).await;
        self.inner.env.events.close();
        let file = self
            .inner
            .events_file
            .lock()
            .ok()
            .and_then(|mut f| f.take());
        if let Some(f) = file {
            rt::blocking(move || f.finish()).await;
        }
    }
}
