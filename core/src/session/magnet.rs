//! Adding a magnet link: its metadata from the cache when an earlier add fetched it, else
//! fetched from the swarm (the link's trackers and `x.pe` peers, the add's peers, and any
//! other source through [`Session::feed_pending`]) while the session lists it as pending;
//! then the verified metadata is cached as a `.torrent` and the torrent is added as any other.
//! A v2 `.torrent` written without its piece layers (BEP 52 lets a torrent leave them to
//! peers) takes the same path from the second step: only the layers are fetched and cached.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Inner, Session, SessionError, layers_on_disk};
use crate::events::Event;
use crate::metadata::Fetch;
use crate::metainfo::{InfoHash, Magnet, Metainfo, torrent_file_with_layers};
use crate::peer_sources::dht::find_for_metadata;
use crate::rt;
use crate::torrent::PeerSource;

/// A magnet link whose metadata is still being fetched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub info_hash: InfoHash,
    /// The link's `dn`, if it had one.
    pub name: Option<String>,
    /// Peers connected to the fetch now.
    pub peers: usize,
}

pub(super) struct PendingFetch {
    name: Option<String>,
    fetch: Arc<Fetch>,
}

/// Takes a fetch out of the pending list and stops it when dropped.
struct Unlist<'a> {
    inner: &'a Inner,
    fetch: Arc<Fetch>,
}

impl Drop for Unlist<'_> {
    fn drop(&mut self) {
        self.fetch.cancel();
        if let Ok(mut p) = self.inner.pending.lock()
            && p.get(&self.fetch.info_hash)
                .is_some_and(|f| Arc::ptr_eq(&f.fetch, &self.fetch))
        {
            p.remove(&self.fetch.info_hash);
        }
    }
}

impl Inner {
    /// The fetch of a pending magnet link, for a peer that dialed us for it.
    pub(super) fn pending_fetch(&self, hash: &InfoHash) -> Option<Arc<Fetch>> {
        self.pending.lock().ok()?.get(hash).map(|f| f.fetch.clone())
    }
}

/// Where the metadata of `hash` is cached: `<state_dir>/metadata/<hex>.torrent`.
pub fn cached_torrent_path(state_dir: &Path, hash: &InfoHash) -> PathBuf {
    state_dir
        .join("metadata")
        .join(format!("{}.torrent", hash.hex()))
}

/// The cached metadata of `hash`, if a readable copy with the right info-hash is there.
fn from_cache(path: &Path, hash: &InfoHash) -> Option<Metainfo> {
    if !path.exists() {
        return None;
    }
    match Metainfo::from_file(path) {
        Ok(m) if m.info_hash == *hash => Some(m),
        Ok(_) => {
            tracing::warn!(
                "{}: cached metadata of another torrent, ignored",
                path.display()
            );
            None
        }
        Err(e) => {
            tracing::warn!("{}: {e}; fetching the metadata again", path.display());
            None
        }
    }
}

fn write_cache(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Written aside and renamed: a crash leaves the old copy or none, never half of one.
    let tmp = path.with_extension("torrent.part");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

impl Session {
    /// Magnet links whose metadata is being fetched.
    pub fn pending(&self) -> Vec<Pending> {
        self.inner
            .pending
            .lock()
            .map(|p| {
                p.iter()
                    .map(|(hash, f)| Pending {
                        info_hash: *hash,
                        name: f.name.clone(),
                        peers: f.fetch.connected(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Gives peers for a pending magnet link's metadata fetch (the DHT, say); false if `hash`
    /// is not pending.
    pub fn feed_pending(&self, hash: &InfoHash, source: PeerSource, peers: &[SocketAddr]) -> bool {
        match self.inner.pending_fetch(hash) {
            Some(f) => {
                f.add_peers(source, peers);
                true
            }
            None => false,
        }
    }

    /// The verified metadata of `magnet` without adding the torrent (`rivulet info`): from
    /// the cache, or fetched (pending meanwhile) and cached. `peers` are dialed besides the
    /// link's own.
    pub async fn fetch_metadata(
        &self,
        magnet: &Magnet,
        peers: &[SocketAddr],
    ) -> Result<Metainfo, SessionError> {
        resolve(&self.inner, magnet, peers, None)
            .await
            .map(|(m, _)| m)
    }

    /// Cancels a pending fetch; false if `hash` is not pending.
    pub(super) fn cancel_pending(&self, hash: &InfoHash) -> bool {
        let fetch = self
            .inner
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.remove(hash));
        match fetch {
            Some(f) => {
                f.fetch.cancel();
                true
            }
            None => false,
        }
    }
}

/// Adds the link's trackers the cached torrent does not have (an earlier link may have named
/// others), each as a tier of its own after the torrent's.
fn add_trackers(meta: &mut Metainfo, trackers: &[String]) {
    for t in trackers {
        if !meta.trackers.iter().flatten().any(|known| known == t) {
            meta.trackers.push(vec![t.clone()]);
        }
    }
}

/// A v2-only `.torrent` that lacks piece layers, completed with them: from the cache when an
/// earlier add got them, else computed from a complete copy in `data_dir`, else fetched from
/// the swarm; its own trackers, web seeds and notes are kept. The peers found on the way come
/// with it.
pub(super) async fn complete_layers(
    inner: &Arc<Inner>,
    meta: &Arc<Metainfo>,
    data_dir: &Path,
    extra_peers: &[SocketAddr],
) -> Result<(Metainfo, Vec<SocketAddr>), SessionError> {
    let path = cached_torrent_path(&inner.settings.state_dir, &meta.info_hash);
    let (m, dir, p) = (meta.clone(), data_dir.to_owned(), path.clone());
    let (cached, on_disk) = rt::blocking(move || match from_cache(&p, &m.info_hash) {
        Some(c) if !c.lacks_piece_layers() => (Some(c), Vec::new()),
        _ => (None, layers_on_disk::hash(&m, &dir)),
    })
    .await;
    if let Some(mut full) = cached {
        keep_notes(&mut full, meta);
        return Ok((full, Vec::new()));
    }
    let bytes = torrent_file_with_layers(&meta.info_bytes, &[], &on_disk);
    if let Ok(mut full) = Metainfo::from_bytes(&bytes)
        && !full.lacks_piece_layers()
    {
        rt::blocking(move || {
            if let Err(e) = write_cache(&path, &bytes) {
                tracing::warn!("cannot cache piece layers in {}: {e}", path.display());
            }
        })
        .await;
        inner
            .env
            .events
            .sink()
            .for_torrent(&meta.info_hash.hex())
            .emit(Event::PieceLayersHashed {
                files: on_disk.len(),
                hashes: on_disk.iter().map(|(_, l)| l.len()).sum(),
            });
        keep_notes(&mut full, meta);
        return Ok((full, Vec::new()));
    }
    let link = Magnet {
        info_hash: meta.info_hash,
        info_hash_v2: meta.info_hash_v2,
        name: Some(meta.name.clone()),
        trackers: meta.trackers.iter().flatten().cloned().collect(),
        peers: Vec::new(),
    };
    let known = Some(meta.info_bytes.to_vec());
    let (mut full, found) = resolve(inner, &link, extra_peers, known).await?;
    keep_notes(&mut full, meta);
    Ok((full, found))
}

/// What `from` says beside its info dictionary, onto its completed copy.
fn keep_notes(full: &mut Metainfo, from: &Metainfo) {
    full.trackers = from.trackers.clone();
    full.url_list = from.url_list.clone();
    full.comment = from.comment.clone();
    full.created_by = from.created_by.clone();
    full.creation_date = from.creation_date;
}

/// The verified metadata of `magnet` (cached or fetched) and the peers found on the way;
/// with `known_info` the info dictionary is in hand and only its piece layers are fetched.
pub(super) async fn resolve(
    inner: &Arc<Inner>,
    magnet: &Magnet,
    extra_peers: &[SocketAddr],
    known_info: Option<Vec<u8>>,
) -> Result<(Metainfo, Vec<SocketAddr>), SessionError> {
    let hash = magnet.info_hash;
    let events = inner.env.events.sink().for_torrent(&hash.hex());
    let path = cached_torrent_path(&inner.settings.state_dir, &hash);
    let p = path.clone();
    if let Some(mut meta) = rt::blocking(move || from_cache(&p, &hash)).await {
        add_trackers(&mut meta, &magnet.trackers);
        return Ok((meta, Vec::new()));
    }
    let fetch = Fetch::new(magnet, inner.env.clone());
    {
        let mut pending = inner.pending.lock().unwrap_or_else(|e| e.into_inner());
        if pending.contains_key(&hash) {
            return Err(SessionError::Duplicate(hash.hex()));
        }
        pending.insert(
            hash,
            PendingFetch {
                name: magnet.name.clone(),
                fetch: fetch.clone(),
            },
        );
    }
    // However this ends (done, cancelled, or the caller dropping the `add`), the fetch stops
    // and is no longer listed.
    let _unlist = Unlist {
        inner,
        fetch: fetch.clone(),
    };
    events.emit(Event::MetadataFetching {
        name: magnet.name.clone(),
    });
    let trackers = magnet
        .trackers
        .iter()
        .filter_map(|url| {
            inner
                .registry
                .tracker_for_url(url)
                .map_err(|e| tracing::warn!("skipping tracker {url}: {e}"))
                .ok()
        })
        .collect();
    fetch.add_peers(PeerSource::Magnet, &magnet.peers);
    fetch.add_peers(PeerSource::Manual, extra_peers);
    // The DHT looks for the swarm too; the lookups end with the fetch.
    let dht = async {
        match &inner.dht {
            Some(node) => {
                let feed = |peers: &[SocketAddr]| {
                    events.emit(Event::DhtPeers { peers: peers.len() });
                    fetch.add_peers(PeerSource::Dht, peers);
                };
                find_for_metadata(node, hash, &inner.stopped, feed).await
            }
            None => std::future::pending().await,
        }
    };
    let stopped_or_found = rt::race(inner.stopped.cancelled(), dht);
    let fetched = rt::race(fetch.run(trackers, known_info), stopped_or_found).await;
    // Still listed: not removed by `Session::remove` meanwhile.
    let still_pending = inner.pending_fetch(&hash).is_some();
    let fetched = match fetched {
        rt::Either::Left(Some(f)) if still_pending => f,
        _ => {
            events.emit(Event::MetadataFailed {
                error: "cancelled".into(),
            });
            return Err(SessionError::Cancelled(hash.hex()));
        }
    };
    // A v2 link's layers are cached with the metadata: a restart does not fetch them again.
    let info = fetched.info;
    let bytes = torrent_file_with_layers(&info, &magnet.trackers, &fetched.layers);
    let meta = match Metainfo::from_bytes(&bytes) {
        Ok(m) => m,
        Err(e) => {
            events.emit(Event::MetadataFailed {
                error: e.to_string(),
            });
            return Err(SessionError::Metadata(e));
        }
    };
    events.emit(Event::MetadataFetched {
        name: meta.name.clone(),
        size: info.len() as u64,
    });
    rt::blocking(move || {
        if let Err(e) = write_cache(&path, &bytes) {
            tracing::warn!("cannot cache metadata in {}: {e}", path.display());
        }
    })
    .await;
    Ok((meta, fetch.known_peers()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::torrent_file;

    #[test]
    fn a_cached_torrent_gains_the_trackers_of_a_later_link_once() {
        let info = format!(
            "d6:lengthi4e4:name1:f12:piece lengthi4e6:pieces20:{}e",
            "x".repeat(20)
        );
        let bytes = torrent_file(info.as_bytes(), &["http://a/announce".to_string()]);
        let mut meta = Metainfo::from_bytes(&bytes).unwrap();
        add_trackers(
            &mut meta,
            &["http://a/announce".to_string(), "udp://b:1".to_string()],
        );
        assert_eq!(
            meta.trackers,
            vec![
                vec!["http://a/announce".to_string()],
                vec!["udp://b:1".to_string()]
            ]
        );
    }
}
