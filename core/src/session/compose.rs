//! From "add this torrent, like so" to a torrent's configuration and plugin instances: the
//! storage spec, the picker (and its fallback), tracker tiers through the registry, where the
//! resume data lives and how far readers may read ahead.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{Inner, SessionError};
use crate::data_lock::DataLock;
use crate::metainfo::{InfoHash, Magnet, Metainfo};
use crate::plugin::{StorageSpec, Tracker};
use crate::torrent::{Plugins, TorrentConfig};

/// What a torrent is added from.
#[derive(Clone, Debug)]
pub enum TorrentSource {
    Metainfo(Arc<Metainfo>),
    /// A magnet link: the metadata is fetched from the swarm (or the session's cache) first.
    Magnet(Magnet),
}

impl TorrentSource {
    pub fn info_hash(&self) -> InfoHash {
        match self {
            TorrentSource::Metainfo(m) => m.info_hash,
            TorrentSource::Magnet(m) => m.info_hash,
        }
    }
}

/// What the torrent is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Fetch everything; with `seed`, keep serving once complete.
    Download { seed: bool },
    /// Serve a complete copy; with `download_missing`, fetch what is absent or wrong first
    /// (otherwise such data is an error and nothing is written).
    Seed { download_missing: bool },
    /// Serve reads first (a mount or a stream), fetching the rest in the background unless
    /// `lazy`; seeds what it has.
    Stream { lazy: bool },
}

/// A torrent to add.
#[derive(Clone, Debug)]
pub struct AddTorrent {
    pub source: TorrentSource,
    /// Directory the torrent's files are placed under.
    pub data_dir: PathBuf,
    pub mode: Mode,
    /// Overrides the session's `read_timeout_secs`.
    pub read_timeout: Option<Duration>,
    /// Peers to dial besides those the trackers return.
    pub peers: Vec<SocketAddr>,
}

/// The configuration, plugin instances and data lock of a torrent to add.
pub(super) fn compose(
    inner: &Inner,
    meta: &Arc<Metainfo>,
    add: &AddTorrent,
) -> Result<(TorrentConfig, Plugins, DataLock), SessionError> {
    let settings = &inner.settings;
    let registry = &inner.registry;
    std::fs::create_dir_all(&add.data_dir).map_err(|source| SessionError::DataDir {
        dir: add.data_dir.clone(),
        source,
    })?;
    let default_picker = match add.mode {
        Mode::Stream { .. } => "streaming",
        Mode::Download { .. } | Mode::Seed { .. } => "rarest-first",
    };
    let picker_name = settings
        .picker
        .clone()
        .unwrap_or_else(|| default_picker.to_string());
    // One rivulet per torrent's data: before the storage opens anything.
    let lock = crate::data_lock::lock(meta, &add.data_dir)?;
    let picker = registry.picker(&picker_name)?.create()?;
    let storage_name = settings.storage.clone();
    let state_dir = state_dir_for(&settings.state_dir, &add.data_dir);
    let spec = StorageSpec {
        root: add.data_dir.clone(),
        files: meta
            .files
            .iter()
            .map(|f| (f.relative_path(), f.length))
            .collect(),
        piece_length: meta.piece_length,
        memory_limit: settings.memory_cache_mib.saturating_mul(1 << 20),
    };
    let storage = registry
        .storage(&storage_name)?
        .open(&spec)
        .map_err(|source| SessionError::Storage {
            storage: storage_name.clone(),
            dir: add.data_dir.clone(),
            source,
        })?;
    if !matches!(add.mode, Mode::Stream { .. }) && !storage.persistent() {
        return Err(SessionError::NotPersistent(storage_name));
    }
    if matches!(add.mode, Mode::Download { .. }) {
        crate::torrent::attributes::create_links(meta, &add.data_dir);
    }
    let mut trackers: Vec<Vec<Arc<dyn Tracker>>> = Vec::new();
    for tier in &meta.trackers {
        let t: Vec<_> = tier
            .iter()
            .filter_map(|url| {
                registry
                    .tracker_for_url(url)
                    .map_err(|e| tracing::warn!("skipping tracker {url}: {e}"))
                    .ok()
            })
            .collect();
        if !t.is_empty() {
            trackers.push(t);
        }
    }
    let dht = settings.dht && !meta.private;
    if trackers.is_empty() && add.peers.is_empty() && !dht {
        tracing::warn!("no usable tracker, no --peer and no DHT: only incoming peers can connect");
    }
    let persistent = storage.persistent();
    let cfg = TorrentConfig {
        meta: meta.clone(),
        data_dir: persistent.then(|| add.data_dir.clone()),
        require_complete: add.mode
            == Mode::Seed {
                download_missing: false,
            },
        state_dir,
        extra_peers: add.peers.clone(),
        max_peers: settings.max_peers as usize,
        seed: !matches!(add.mode, Mode::Download { seed: false }),
        lazy: matches!(add.mode, Mode::Stream { lazy: true }),
        read_timeout: add
            .read_timeout
            .unwrap_or(Duration::from_secs(settings.read_timeout_secs)),
        upload_slots: settings.upload_slots as usize,
        // Half the cache: the other half holds what the reader is on and what it just read.
        max_readahead: if persistent {
            u64::MAX
        } else {
            spec.memory_limit / 2
        },
    };
    let (fallback_name, fallback) = &inner.fallback_picker;
    let plugins = Plugins {
        picker,
        picker_name,
        fallback_picker: fallback(),
        fallback_picker_name: fallback_name.clone(),
        storage,
        storage_name,
        trackers,
    };
    Ok((cfg, plugins, lock))
}

/// Resume data is per torrent *and* per data directory: the same torrent downloaded to two
/// places must not share what one of them holds.
fn state_dir_for(base: &Path, data_dir: &Path) -> PathBuf {
    use sha1::Digest;
    let dir = data_dir
        .canonicalize()
        .unwrap_or_else(|_| data_dir.to_owned());
    let digest = sha1::Sha1::digest(dir.as_os_str().as_encoded_bytes());
    let key: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    base.join(key)
}

/// Deletes a removed torrent's data: its single file, or its folder.
pub(super) fn delete_data(root: &Path) {
    let result = if root.is_dir() {
        std::fs::remove_dir_all(root)
    } else {
        std::fs::remove_file(root)
    };
    if let Err(e) = result
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("cannot delete {}: {e}", root.display());
    }
}
