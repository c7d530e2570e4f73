//! The torrents the server offers: the session, one [`Readers`] per torrent (shared by every
//! stream of it, so they split one readahead budget), and the `.torrent` files kept under the
//! data folder so that a restart of `rivulet serve` on the same `--data` offers the same
//! torrents, resumed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rivulet_core::metainfo::{InfoHash, Magnet, Metainfo, MetainfoError, torrent_file};
use rivulet_core::reader::Readers;
use rivulet_core::rt::{self, Tasks};
use rivulet_core::session::{AddTorrent, Mode, Pending, Session, SessionError, TorrentSource};
use rivulet_core::torrent::{Phase, Stats, TorrentHandle};
use serde::Serialize;

/// Where the added `.torrent` files are kept, inside the data folder.
const SAVED_DIR: &str = ".rivulet/torrents";

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error(transparent)]
    BadTorrent(#[from] MetainfoError),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("cannot keep the .torrent in {path}: {source}")]
    Save {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub struct Library {
    session: Session,
    data_dir: PathBuf,
    /// Dialled for every torrent besides what trackers return (`--peer`).
    peers: Vec<SocketAddr>,
    readers: Mutex<HashMap<InfoHash, Readers<TorrentHandle>>>,
    /// Magnet links being added in the background.
    fetches: Tasks,
}

/// How long adding a magnet link through the API waits for its metadata before answering
/// that the fetch goes on (202); a seeder on the same network answers in about a second.
pub const MAGNET_WAIT: Duration = Duration::from_secs(20);

/// A torrent as the API lists it.
#[derive(Serialize)]
pub struct TorrentView {
    pub info_hash: String,
    pub name: String,
    /// checking, downloading, seeding, paused or stopped.
    pub state: &'static str,
    /// Verified bytes over total, 0.0 to 1.0.
    pub progress: f64,
    pub bytes_have: u64,
    pub bytes_total: u64,
    pub download_rate: u64,
    pub upload_rate: u64,
    pub peers: usize,
    pub files: Vec<FileView>,
    /// Everything the engine reports, in the one-torrent view only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<Stats>,
}

#[derive(Serialize)]
pub struct FileView {
    pub index: usize,
    /// Relative path, `/`-separated, as in a download folder.
    pub path: String,
    pub length: u64,
    pub stream_url: String,
}

/// A 40-digit hex info-hash.
pub fn parse_hash(hex: &str) -> Option<InfoHash> {
    if hex.len() != 40 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 20];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(InfoHash(out))
}

/// The stable URL of file `index` of torrent `hash`; the name is for players and people only.
pub fn stream_url(hash: &InfoHash, index: usize, name: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'.')
        .remove(b'-')
        .remove(b'_')
        .remove(b'~');
    let name = percent_encoding::utf8_percent_encode(name, KEEP);
    format!("/stream/{}/{index}/{name}", hash.hex())
}

fn state(s: &Stats) -> &'static str {
    match s.phase {
        Phase::Checking => "checking",
        Phase::Paused => "paused",
        Phase::Stopped => "stopped",
        Phase::Live if s.complete => "seeding",
        Phase::Live => "downloading",
    }
}

pub fn view(handle: &TorrentHandle, with_stats: bool) -> TorrentView {
    let meta = handle.meta();
    let s = handle.stats();
    let files = meta
        .files
        .iter()
        .enumerate()
        .map(|(index, f)| FileView {
            index,
            path: f.path.join("/"),
            length: f.length,
            stream_url: stream_url(
                &meta.info_hash,
                index,
                f.path.last().map_or("file", String::as_str),
            ),
        })
        .collect();
    TorrentView {
        info_hash: meta.info_hash.hex(),
        name: meta.name.clone(),
        state: state(&s),
        progress: if s.bytes_total == 0 {
            1.0
        } else {
            s.bytes_have as f64 / s.bytes_total as f64
        },
        bytes_have: s.bytes_have,
        bytes_total: s.bytes_total,
        download_rate: s.download_rate,
        upload_rate: s.upload_rate,
        peers: s.peers,
        files,
        stats: with_stats.then_some(s),
    }
}

impl Library {
    pub fn new(session: Session, data_dir: PathBuf, peers: Vec<SocketAddr>) -> Arc<Library> {
        Arc::new(Library {
            session,
            data_dir,
            peers,
            readers: Mutex::new(HashMap::new()),
            fetches: Tasks::default(),
        })
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    fn saved_path(&self, hash: &InfoHash) -> PathBuf {
        self.data_dir
            .join(SAVED_DIR)
            .join(format!("{}.torrent", hash.hex()))
    }

    /// Adds a torrent from the bytes of a `.torrent` file, validated as one read from disk, and
    /// keeps the file for the next start.
    pub async fn add_bytes(&self, bytes: Vec<u8>) -> Result<TorrentHandle, LibraryError> {
        let meta = Arc::new(Metainfo::from_bytes(&bytes)?);
        let handle = self.add(meta.clone()).await?;
        keep(self.saved_path(&meta.info_hash), bytes).await;
        Ok(handle)
    }

    /// Adds a magnet link: its metadata is fetched in the background (kept as a `.torrent` for
    /// the next start once verified). Gives the torrent if that took at most [`MAGNET_WAIT`],
    /// `None` if the fetch is still going (the torrent is then listed as pending).
    pub async fn add_magnet(&self, link: Magnet) -> Result<Option<TorrentHandle>, LibraryError> {
        let hash = link.info_hash;
        if self.session.get(&hash).is_some()
            || self.session.pending().iter().any(|p| p.info_hash == hash)
        {
            return Err(SessionError::Duplicate(hash.hex()).into());
        }
        let (tx, rx) = rt::bounded(1);
        let (session, saved) = (self.session.clone(), self.saved_path(&hash));
        let add = self.add_request(TorrentSource::Magnet(link));
        self.fetches.spawn(async move {
            let added = session.add(add).await;
            if let Ok(h) = &added {
                let meta = h.meta();
                let trackers: Vec<String> = meta.trackers.iter().flatten().cloned().collect();
                keep(saved, torrent_file(&meta.info_bytes, &trackers)).await;
            }
            let _ = tx.try_send(added);
        });
        match rt::timeout(MAGNET_WAIT, rx.recv()).await {
            Ok(Ok(added)) => Ok(Some(added?)),
            Ok(Err(_)) | Err(_) => Ok(None),
        }
    }

    /// Magnet links whose metadata is still being fetched.
    pub fn pending(&self) -> Vec<Pending> {
        self.session.pending()
    }

    /// How every torrent of the server is added, through the API, a restart or a watch folder.
    pub fn add_request(&self, source: TorrentSource) -> AddTorrent {
        AddTorrent {
            source,
            data_dir: self.data_dir.clone(),
            // Reads first (a player seeking), the rest in the background, then seed.
            mode: Mode::Stream { lazy: false },
            read_timeout: None,
            peers: self.peers.clone(),
        }
    }

    async fn add(&self, meta: Arc<Metainfo>) -> Result<TorrentHandle, LibraryError> {
        Ok(self
            .session
            .add(self.add_request(TorrentSource::Metainfo(meta)))
            .await?)
    }

    /// Adds every `.torrent` kept by an earlier run; one that fails is reported and skipped.
    pub async fn restore(&self) {
        let dir = self.data_dir.join(SAVED_DIR);
        let files = rt::blocking(move || saved_files(&dir)).await;
        for path in files {
            let loaded = Metainfo::from_file(&path).map_err(LibraryError::from);
            let added = match loaded {
                Ok(meta) => self.add(Arc::new(meta)).await.map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = added {
                tracing::warn!("not restoring {}: {e}", path.display());
            }
        }
    }

    pub fn get(&self, hash: &InfoHash) -> Option<TorrentHandle> {
        self.session.get(hash)
    }

    /// The readers of torrent `hash`, shared by every stream of it; made at its first stream,
    /// however the torrent was added (API, restart, watch folder).
    pub fn readers(&self, hash: &InfoHash) -> Option<Readers<TorrentHandle>> {
        let handle = self.session.get(hash)?;
        let mut readers = self.lock();
        let r = readers
            .entry(*hash)
            .or_insert_with(|| Readers::new(handle.clone(), handle.meta().clone()));
        Some(r.clone())
    }

    /// Forgets the readers of a torrent the session no longer has (removed by a watch folder).
    pub fn forget(&self, hash: &InfoHash) {
        self.lock().remove(hash);
    }

    pub fn torrents(&self) -> Vec<TorrentHandle> {
        let mut all = self.session.torrents();
        all.sort_by(|a, b| a.meta().name.cmp(&b.meta().name));
        all
    }

    /// Removes a torrent (and its data if asked); it is not offered again at the next start.
    pub async fn remove(&self, hash: &InfoHash, delete_data: bool) -> Result<(), LibraryError> {
        self.session.remove(hash, delete_data).await?;
        self.forget(hash);
        let path = self.saved_path(hash);
        rt::blocking(move || {
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("cannot delete {}: {e}", path.display());
            }
        })
        .await;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<InfoHash, Readers<TorrentHandle>>> {
        self.readers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Keeps a `.torrent` for the next start; a failure is said, not fatal (offered now, but
/// forgotten at the next start).
async fn keep(path: PathBuf, bytes: Vec<u8>) {
    let target = path.clone();
    let saved = rt::blocking(move || {
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&target, bytes)
    })
    .await;
    if let Err(source) = saved {
        tracing::warn!("{}", LibraryError::Save { path, source });
    }
}

fn saved_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "torrent"))
        .collect();
    files.sort();
    files
}
