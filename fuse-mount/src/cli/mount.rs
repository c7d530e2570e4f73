//! `rivulet mount`: torrents (named on the command line, and those of a watch folder) in one
//! session, shown side by side at the root of one read-only mount.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use rivulet_core::metainfo::InfoHash;
use rivulet_core::rt::Tasks;
use rivulet_core::session::watch::{WatchChange, WatchConfig, Watcher};
use rivulet_core::session::{AddTorrent, Mode, TorrentSource};
use rivulet_core::torrent::TorrentHandle;
use serde_json::json;

use super::progress::Progress;
use super::setup::{futures_select, session, settings};
use super::{EngineArgs, signals};

#[derive(Args)]
pub struct MountArgs {
    /// The .torrent files or magnet links to mount (none is fine with --watch), then the
    /// mount point: an existing empty directory to show the torrents' files in.
    #[arg(value_name = "SOURCE", required = true, num_args = 1..)]
    pub paths: Vec<PathBuf>,
    /// Where pieces are kept, each torrent as a download into this folder would place it
    /// (default: a cache directory per torrent).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Mount every .torrent in this folder too: one dropped in appears in the mount, one
    /// deleted leaves it (its data kept unless --delete-removed).
    #[arg(long, value_name = "DIR")]
    pub watch: Option<PathBuf>,
    /// Delete a torrent's downloaded data when its file leaves the watch folder.
    #[arg(long, requires = "watch")]
    pub delete_removed: bool,
    /// Fetch only what is read, nothing in the background.
    #[arg(long)]
    pub lazy: bool,
    /// Let other users read the mount (needs user_allow_other in /etc/fuse.conf).
    #[arg(long)]
    pub allow_other: bool,
    /// Seconds a read may wait for its pieces before failing with EIO.
    #[arg(long)]
    pub read_timeout: Option<u64>,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Default home of a mount's pieces: `$XDG_CACHE_HOME/rivulet/<info-hash>`.
fn cache_dir(hash: &InfoHash) -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("rivulet").join(hash.hex())
}

/// How every torrent of the mount is added, wherever it was named.
#[derive(Clone)]
struct AddTemplate {
    data: Option<PathBuf>,
    mode: Mode,
    read_timeout: Option<Duration>,
    peers: Vec<std::net::SocketAddr>,
}

impl AddTemplate {
    fn add(&self, source: TorrentSource) -> AddTorrent {
        AddTorrent {
            data_dir: self
                .data
                .clone()
                .unwrap_or_else(|| cache_dir(&source.info_hash())),
            source,
            mode: self.mode,
            read_timeout: self.read_timeout,
            peers: self.peers.clone(),
        }
    }
}

fn check_watch_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::read_dir(dir)
        .map(drop)
        .with_context(|| format!("cannot watch {}", dir.display()))
}

pub async fn run(mut m: MountArgs, quiet: bool) -> anyhow::Result<()> {
    // clap takes no optional positionals before a required one: the last path is the mount
    // point (the usage line says so).
    let Some(mountpoint) = m.paths.pop() else {
        bail!("name the mount point");
    };
    if m.paths.is_empty() && m.watch.is_none() {
        bail!(
            "nothing to mount: name a .torrent file or magnet link, or a folder to watch with \
             --watch"
        );
    }
    let sources = m
        .paths
        .iter()
        .map(|t| super::magnet::source(t))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Torrents known now are in the tree before the kernel shows the mount; magnet links (and
    // v2 torrents whose piece layers come from peers) join it once their metadata is complete
    // (root listings wait for them, bounded).
    let (metas, magnets): (Vec<_>, Vec<_>) = sources
        .into_iter()
        .partition(|s| matches!(s, TorrentSource::Metainfo(m) if !m.lacks_piece_layers()));
    // Before the engine starts: a mount point that cannot be used must not cost a tracker
    // announce and a cache directory first.
    rivulet_fuse::check_mount_point(&mountpoint)?;
    if let Some(dir) = &m.watch {
        check_watch_dir(dir)?;
    }
    let settings = settings(&m.engine)?;
    let read_timeout = m.read_timeout.unwrap_or(settings.read_timeout_secs);
    let stop = signals::termination()?;
    let session = session(&m.engine, settings).await?;
    let template = AddTemplate {
        data: m.data.clone(),
        mode: Mode::Stream { lazy: m.lazy },
        read_timeout: m.read_timeout.map(Duration::from_secs),
        peers: m.engine.peers.clone(),
    };
    let added =
        futures::future::join_all(metas.into_iter().map(|s| session.add(template.add(s)))).await;
    let handles = match added.into_iter().collect::<Result<Vec<TorrentHandle>, _>>() {
        Ok(handles) => handles,
        Err(e) => {
            session.shutdown().await;
            return Err(e.into());
        }
    };
    let torrents = rivulet_fuse::Torrents::new(Duration::from_secs(read_timeout));
    for handle in &handles {
        torrents.add(handle.clone(), handle.meta().clone());
    }
    let fetching = Tasks::default();
    for source in magnets {
        let (pending, session, torrents) = (torrents.pending(), session.clone(), torrents.clone());
        let add = template.add(source);
        fetching.spawn(async move {
            let what = match &add.source {
                TorrentSource::Magnet(link) => link.to_string(),
                TorrentSource::Metainfo(meta) => meta.name.clone(),
            };
            match session.add(add).await {
                Ok(h) => {
                    torrents.add(h.clone(), h.meta().clone());
                }
                Err(e) => eprintln!("rivulet: not mounting {what}: {e}"),
            }
            drop(pending);
        });
    }
    // Listings of the root wait until the watch folder's torrents are in.
    let pending = m.watch.is_some().then(|| torrents.pending());
    let opts = rivulet_fuse::MountOptions {
        allow_other: m.allow_other,
    };
    let mounted = match rivulet_fuse::mount_torrents(&torrents, &mountpoint, opts) {
        Ok(mounted) => mounted,
        Err(e) => {
            session.shutdown().await;
            return Err(e.into());
        }
    };
    let watcher = match &m.watch {
        Some(dir) => {
            let follow = torrents.clone();
            let cfg = WatchConfig {
                dir: dir.clone(),
                add: Box::new(move |source| template.add(source)),
                delete_data: m.delete_removed,
            };
            let started = Watcher::start(&session, cfg, move |change| match change {
                WatchChange::Added(h) => {
                    follow.add(h.clone(), h.meta().clone());
                }
                WatchChange::Removed(hash) => {
                    follow.remove(&hash);
                }
            })
            .await;
            drop(pending);
            let watcher = match started {
                Ok(w) => Arc::new(w),
                Err(e) => {
                    drop(mounted);
                    session.shutdown().await;
                    return Err(
                        anyhow::Error::new(e).context(format!("cannot watch {}", dir.display()))
                    );
                }
            };
            let (w, dir) = (watcher.clone(), dir.display().to_string());
            torrents.add_status_section("watch", move || {
                let skipped: Vec<_> = w
                    .skipped()
                    .into_iter()
                    .map(
                        |(file, error)| json!({"file": file.display().to_string(), "error": error}),
                    )
                    .collect();
                json!({"dir": dir, "skipped": skipped})
            });
            Some(watcher)
        }
        None => None,
    };
    // One torrent and nothing else: its progress line, as before there could be more.
    let progress = match handles.as_slice() {
        [only] if watcher.is_none() => Some(Progress::start(only.clone(), quiet)),
        _ => None,
    };
    futures_select(stop.recv(), mounted.wait_unmounted()).await;
    drop(progress);
    if let Some(w) = &watcher {
        w.stop().await;
    }
    // Unmount first: waiting readers get EIO at once instead of after the engine's goodbye.
    let unmounted = if mounted.is_mounted() {
        mounted.unmount()
    } else {
        Ok(())
    };
    session.shutdown().await;
    unmounted?;
    Ok(())
}
