//! A watch folder: every `.torrent` in it is a torrent of the session, added when it appears,
//! removed when it goes. Front-end agnostic: a mount shows what it adds, an HTTP API lists it.
//!
//! The folder is polled every [`POLL`] rather than watched through inotify (the `notify`
//! crate): listing and stat-ing a folder of 300 files takes about 2 ms (Python's scandir, 2
//! busy cores), ~1% of one core at this rate; polling needs no thread of its own nor a bridge
//! into the runtime seam, and it also sees changes on network filesystems, where inotify
//! reports nothing. A file is read once it looks the same (length and modification time) in
//! two polls in a row, so a `.torrent` still being copied is never parsed half-written; files
//! present when the watch starts are read at once. A dropped file is thus read within two
//! polls (0.4 s) and shows in a mount 0.35-0.87 s after the drop (tests/mount_many.rs, debug
//! build, 2 busy cores), the rest being the add itself. Each add runs as a task of its own, so
//! a slow one (a large torrent's check, metadata still to fetch) holds up no other file.
//!
//! A file holding a magnet link adds that link. A file that cannot be used (not a torrent, a
//! malformed link, a torrent the session cannot start) is reported once (log, a
//! `watch_skipped` event, [`Watcher::skipped`]) and tried again only when it changes. A torrent
//! that was already in the session (named on the command line as well) stays when its file
//! goes: the folder did not add it.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use super::{AddTorrent, Session, SessionError, TorrentSource};
use crate::events::Event;
use crate::metainfo::{InfoHash, MAX_MAGNET_LEN, Magnet, Metainfo};
use crate::rt::{self, Cancel, CancelSource, Tasks};
use crate::torrent::TorrentHandle;

/// How often the folder is listed.
pub const POLL: Duration = Duration::from_millis(200);

/// How the torrents of a watch folder are added and removed.
pub struct WatchConfig {
    pub dir: PathBuf,
    /// How a torrent found in the folder is added (data folder, mode, read timeout, peers).
    pub add: Box<dyn Fn(TorrentSource) -> AddTorrent + Send + Sync>,
    /// Delete a torrent's data when its file leaves the folder (otherwise it is kept).
    pub delete_data: bool,
}

/// What the watch folder changed in the session, for a front end to follow.
pub enum WatchChange {
    Added(TorrentHandle),
    Removed(InfoHash),
}

/// A running watch folder; dropping it stops the polling (its torrents stay in the session).
pub struct Watcher {
    skipped: Arc<Mutex<BTreeMap<PathBuf, String>>>,
    stop: CancelSource,
    tasks: Tasks,
}

/// Length and modification time: a file whose stamp changed is read again.
type Stamp = (u64, Option<SystemTime>);

enum State {
    /// Seen once with this stamp; read when the next poll sees the same.
    Settling,
    /// Being read and added, in a task of its own.
    Adding,
    Added(InfoHash),
    /// Its torrent was in the session already: not the folder's to remove.
    NotOwned,
    Bad,
}

struct Entry {
    stamp: Stamp,
    state: State,
}

impl Watcher {
    /// Adds every torrent the folder holds now (resumed like any other), then keeps the session
    /// in step with the folder until stopped. `on_change` hears of each torrent it adds or
    /// removes. A folder that cannot be listed is an error only here, at start.
    pub async fn start(
        session: &Session,
        cfg: WatchConfig,
        on_change: impl Fn(WatchChange) + Send + Sync + 'static,
    ) -> std::io::Result<Watcher> {
        let (done_tx, done) = rt::bounded(ADDS_QUEUED);
        let tasks = Tasks::default();
        let mut folder = Folder {
            session: session.clone(),
            cfg: Arc::new(cfg),
            on_change: Box::new(on_change),
            known: HashMap::new(),
            skipped: Arc::new(Mutex::new(BTreeMap::new())),
            tasks: tasks.clone(),
            done_tx,
            done,
        };
        let listed = list(folder.cfg.dir.clone()).await?;
        folder.reconcile(listed, true).await;
        // What the folder held at start is in the session (or reported) before this returns,
        // within a bound: a magnet link's metadata may never come, and what is still on its
        // way when the bound passes arrives through `on_change` like a later drop.
        let initial = async {
            while folder.adding() {
                match folder.done.recv().await {
                    Ok(done) => folder.settle(done).await,
                    Err(_) => break,
                }
            }
        };
        let _ = rt::timeout(START_WAIT, initial).await;
        let (stop, stopped) = rt::cancel_pair();
        let watcher = Watcher {
            skipped: folder.skipped.clone(),
            stop,
            tasks,
        };
        watcher.tasks.spawn(folder.run(stopped));
        Ok(watcher)
    }

    /// Files of the folder that were skipped, with why.
    pub fn skipped(&self) -> Vec<(PathBuf, String)> {
        self.skipped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(p, e)| (p.clone(), e.clone()))
            .collect()
    }

    /// Stops watching; waits for a change in progress to finish.
    pub async fn stop(&self) {
        self.stop.cancel();
        self.tasks.join(Duration::from_secs(5)).await;
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// How long [`Watcher::start`] waits for the torrents the folder holds at start.
const START_WAIT: Duration = Duration::from_secs(30);

/// Adds finished and not yet looked at; each add task waits for room.
const ADDS_QUEUED: usize = 64;

/// A finished add: the file, the stamp it was read at, and the outcome.
type Done = (PathBuf, Stamp, Result<TorrentHandle, Skip>);

struct Folder {
    session: Session,
    cfg: Arc<WatchConfig>,
    on_change: Box<dyn Fn(WatchChange) + Send + Sync>,
    known: HashMap<PathBuf, Entry>,
    skipped: Arc<Mutex<BTreeMap<PathBuf, String>>>,
    /// The folder loop and the adds it started.
    tasks: Tasks,
    done_tx: rt::Sender<Done>,
    done: rt::Receiver<Done>,
}

impl Folder {
    async fn run(mut self, stopped: Cancel) {
        while let rt::Either::Left(()) = rt::race(rt::sleep(POLL), stopped.cancelled()).await {
            while let Ok(done) = self.done.try_recv() {
                self.settle(done).await;
            }
            match list(self.cfg.dir.clone()).await {
                Ok(listed) => self.reconcile(listed, false).await,
                // Gone or unreadable for a moment (being replaced, a network hiccup): the
                // torrents stay until the folder says otherwise.
                Err(e) => tracing::debug!("cannot list {}: {e}", self.cfg.dir.display()),
            }
        }
    }

    /// Brings the session in step with one listing of the folder.
    async fn reconcile(&mut self, listed: Vec<(PathBuf, Stamp)>, at_start: bool) {
        let present: HashMap<&Path, Stamp> =
            listed.iter().map(|(p, s)| (p.as_path(), *s)).collect();
        let gone: Vec<PathBuf> = self
            .known
            .iter()
            .filter(|(p, e)| present.get(p.as_path()) != Some(&e.stamp))
            .map(|(p, _)| p.clone())
            .collect();
        for path in gone {
            self.forget(&path).await;
        }
        let mut ready = Vec::new();
        for (path, stamp) in listed {
            match self.known.get(&path).map(|e| &e.state) {
                // Looked the same a poll ago (a change would have forgotten it above).
                Some(State::Settling) => ready.push(path),
                Some(_) => {}
                None => {
                    let state = State::Settling;
                    self.known.insert(path.clone(), Entry { stamp, state });
                    if at_start {
                        ready.push(path);
                    }
                }
            }
        }
        for path in ready {
            let Some(entry) = self.known.get_mut(&path) else {
                continue;
            };
            entry.state = State::Adding;
            let (stamp, session, cfg) = (entry.stamp, self.session.clone(), self.cfg.clone());
            let done = self.done_tx.clone();
            // Its own task: a slow add (a big torrent's check) holds up no other file.
            self.tasks.spawn(async move {
                let outcome = match read(path.clone()).await {
                    Ok(source) => session.add((cfg.add)(source)).await.map_err(Skip::Session),
                    Err(skip) => Err(skip),
                };
                let _ = done.send((path, stamp, outcome)).await;
            });
        }
    }

    fn adding(&self) -> bool {
        self.known
            .values()
            .any(|e| matches!(e.state, State::Adding))
    }

    /// Takes in a finished add.
    async fn settle(&mut self, (path, stamp, outcome): Done) {
        let current = self
            .known
            .get(&path)
            .is_some_and(|e| e.stamp == stamp && matches!(e.state, State::Adding));
        if !current {
            // The file went (or changed) while it was being added: so does its torrent.
            if let Ok(handle) = outcome {
                let hash = handle.meta().info_hash;
                if let Err(e) = self.session.remove(&hash, self.cfg.delete_data).await {
                    tracing::warn!("{}: {e}", path.display());
                }
            }
            return;
        }
        let state = match outcome {
            Ok(handle) => {
                tracing::info!("added {} from {}", handle.meta().name, path.display());
                let hash = handle.meta().info_hash;
                (self.on_change)(WatchChange::Added(handle));
                State::Added(hash)
            }
            Err(Skip::Session(SessionError::Duplicate(hash))) => {
                tracing::info!(
                    "{}: torrent {hash} is already in the session",
                    path.display()
                );
                State::NotOwned
            }
            Err(skip) => {
                self.report(&path, skip.to_string());
                State::Bad
            }
        };
        if let Some(e) = self.known.get_mut(&path) {
            e.state = state;
        }
    }

    /// The file left the folder (or changed): its torrent leaves the session.
    async fn forget(&mut self, path: &Path) {
        let Some(entry) = self.known.remove(path) else {
            return;
        };
        self.skipped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(path);
        let State::Added(hash) = entry.state else {
            return;
        };
        match self.session.remove(&hash, self.cfg.delete_data).await {
            Ok(()) => tracing::info!(
                "removed {} ({} left the folder)",
                hash.hex(),
                path.display()
            ),
            Err(e) => tracing::warn!("{}: {e}", path.display()),
        }
        (self.on_change)(WatchChange::Removed(hash));
        // Another file of the same torrent was refused as a duplicate: it may add it now.
        self.known
            .retain(|_, e| !matches!(e.state, State::NotOwned));
    }

    fn report(&self, path: &Path, error: String) {
        tracing::warn!("skipping {}: {error}", path.display());
        self.session.events().emit(Event::WatchSkipped {
            file: path.display().to_string(),
            error: error.clone(),
        });
        self.skipped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(path.to_owned(), error);
    }
}

/// Why a file of the folder was skipped.
#[derive(Debug, thiserror::Error)]
enum Skip {
    #[error(transparent)]
    Magnet(#[from] crate::metainfo::MagnetError),
    #[error(transparent)]
    Metainfo(#[from] crate::metainfo::MetainfoError),
    #[error(transparent)]
    Session(SessionError),
}

/// The folder's visible regular files (dot-files are editors' and copiers' temporaries).
async fn list(dir: PathBuf) -> std::io::Result<Vec<(PathBuf, Stamp)>> {
    rt::blocking(move || {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_name().as_encoded_bytes().starts_with(b".") {
                continue;
            }
            // Follows symlinks: a link to a .torrent elsewhere counts.
            let Ok(meta) = std::fs::metadata(entry.path()) else {
                continue;
            };
            if meta.is_file() {
                out.push((entry.path(), (meta.len(), meta.modified().ok())));
            }
        }
        out.sort();
        Ok(out)
    })
    .await
}

/// Reads one file of the folder as a torrent to add.
async fn read(path: PathBuf) -> Result<TorrentSource, Skip> {
    rt::blocking(move || {
        let mut head = Vec::new();
        // One byte past the longest link: a longer file is no magnet link.
        let _ = std::fs::File::open(&path)
            .and_then(|f| f.take(MAX_MAGNET_LEN as u64 + 1).read_to_end(&mut head));
        if head.len() >= 7 && head[..7].eq_ignore_ascii_case(b"magnet:") {
            let text = String::from_utf8_lossy(&head);
            return Ok(TorrentSource::Magnet(Magnet::parse(text.trim())?));
        }
        Ok(TorrentSource::Metainfo(Arc::new(Metainfo::from_file(
            &path,
        )?)))
    })
    .await
}
