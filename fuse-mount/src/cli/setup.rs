//! From settings and arguments to a running torrent: config, plugin registry, storage, engine;
//! and the commands that run one (download, seed, mount, plugins).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rivulet_core::config::Settings;
use rivulet_core::data_lock::{self, DataLock};
use rivulet_core::events::EventSink;
use rivulet_core::metainfo::Metainfo;
use rivulet_core::plugin::registry::{
    BuiltinPicker, BuiltinStorage, BuiltinTracker, PluginStatus, Registry,
};
use rivulet_core::plugin::{StorageSpec, Tracker};
use rivulet_core::torrent::{
    DataError, EngineError, Plugins, TorrentConfig, TorrentHandle, check_files_present,
};

use super::progress::{Progress, summary};
use super::{EngineArgs, load_torrent, signals};

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Takes over from a picker that breaks; linked in, so it is never a plugin's override.
const FALLBACK_PICKER: &str = "rarest-first";

/// Every built-in plugin, then whatever the plugin directories hold.
pub fn registry(settings: &Settings) -> Registry {
    let mut r = Registry::new();
    r.add_picker(
        BuiltinPicker::<rivulet_picker_rarest_first::RarestFirst>::new("rarest-first", VERSION),
    );
    r.add_picker(BuiltinPicker::<rivulet_picker_sequential::Sequential>::new(
        "sequential",
        VERSION,
    ));
    r.add_picker(BuiltinPicker::<rivulet_picker_streaming::Streaming>::new(
        "streaming",
        VERSION,
    ));
    r.add_storage(BuiltinStorage::<rivulet_storage_mmap::MmapStorage>::new(
        "mmap", VERSION,
    ));
    r.add_storage(BuiltinStorage::<rivulet_storage_memory::MemoryStorage>::new("memory", VERSION));
    r.add_tracker(BuiltinTracker::<rivulet_tracker_http::HttpTracker>::new(
        "http",
        VERSION,
        &["http", "https"],
    ));
    r.add_tracker(BuiltinTracker::<rivulet_tracker_udp::UdpTracker>::new(
        "udp",
        VERSION,
        &["udp"],
    ));
    r.load_dirs(&settings.plugin_dirs);
    r
}

/// Settings from the config file and environment, with this command line's flags on top.
fn settings(args: &EngineArgs) -> anyhow::Result<Settings> {
    let mut o: Vec<(&str, String)> = Vec::new();
    if let Some(p) = &args.picker {
        o.push(("picker", p.clone()));
    }
    if let Some(s) = &args.storage {
        o.push(("storage", s.clone()));
    }
    if let Some(l) = &args.listen {
        o.push(("listen", l.to_string()));
    }
    if let Some(m) = args.max_peers {
        o.push(("max_peers", m.to_string()));
    }
    if let Some(d) = &args.state_dir {
        o.push(("state_dir", d.display().to_string()));
    }
    Ok(Settings::load(args.config.as_deref(), &o)?)
}

/// What differs between the commands that run the engine.
struct Run<'a> {
    meta: Arc<Metainfo>,
    data_dir: PathBuf,
    args: &'a EngineArgs,
    settings: Settings,
    default_picker: &'static str,
    /// `download` and `seed` leave data behind: a storage that keeps nothing cannot serve them.
    needs_persistent_storage: bool,
    seed: bool,
    /// Refuse to start unless every piece is on disk and verifies (`seed`).
    require_complete: bool,
    lazy: bool,
    read_timeout: Option<u64>,
}

/// Starts the torrent; the lock on its data must be held as long as the handle is used.
async fn start(run: Run<'_>) -> anyhow::Result<(TorrentHandle, DataLock)> {
    let Run {
        meta,
        data_dir,
        args,
        settings,
        default_picker,
        needs_persistent_storage,
        seed,
        require_complete,
        lazy,
        read_timeout,
    } = run;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let lock = data_lock::lock(&meta, &data_dir)?;
    let registry = registry(&settings);
    let picker_name = settings
        .picker
        .clone()
        .unwrap_or_else(|| default_picker.to_string());
    let storage_name = settings.storage.clone();
    let picker = registry.picker(&picker_name)?.create()?;
    let state_dir = state_dir_for(&settings.state_dir, &data_dir);
    let spec = StorageSpec {
        root: data_dir.clone(),
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
        .with_context(|| {
            format!(
                "cannot open {storage_name} storage in {}",
                data_dir.display()
            )
        })?;
    if needs_persistent_storage && !storage.persistent() {
        bail!(
            "storage '{storage_name}' keeps nothing once rivulet exits, so it cannot download \
             or seed: use a persistent storage such as mmap, or stream with `rivulet mount \
             --storage {storage_name}`"
        );
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
    if trackers.is_empty() && args.peers.is_empty() {
        tracing::warn!("no usable tracker and no --peer: only incoming peers can connect");
    }
    let cfg = TorrentConfig {
        meta: meta.clone(),
        state_dir,
        data_dir,
        require_complete,
        listen: settings.listen,
        extra_peers: args.peers.clone(),
        max_peers: settings.max_peers as usize,
        seed,
        lazy,
        read_timeout: Duration::from_secs(read_timeout.unwrap_or(settings.read_timeout_secs)),
        download_limit: settings.download_limit_kib * 1024,
        upload_limit: settings.upload_limit_kib * 1024,
        upload_slots: settings.upload_slots as usize,
        // Half the cache: the other half holds what the reader is on and what it just read.
        max_readahead: if storage.persistent() {
            u64::MAX
        } else {
            spec.memory_limit / 2
        },
    };
    let events = match &args.events {
        Some(p) => EventSink::to_file(p)
            .with_context(|| format!("cannot write events to {}", p.display()))?,
        None => EventSink::disabled(),
    };
    let plugins = Plugins {
        picker,
        picker_name,
        fallback_picker: Box::new(rivulet_picker_rarest_first::RarestFirst::default()),
        fallback_picker_name: FALLBACK_PICKER.to_string(),
        storage,
        storage_name,
        trackers,
    };
    Ok((TorrentHandle::start(cfg, plugins, events).await?, lock))
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

pub async fn download(
    torrent: PathBuf,
    output: Option<PathBuf>,
    seed: bool,
    args: EngineArgs,
    quiet: bool,
) -> anyhow::Result<()> {
    let meta = Arc::new(load_torrent(&torrent)?);
    let settings = settings(&args)?;
    let data_dir = output.unwrap_or_else(|| settings.download_dir.clone());
    let stop = signals::termination()?;
    let run = Run {
        meta,
        data_dir,
        args: &args,
        settings,
        default_picker: "rarest-first",
        needs_persistent_storage: true,
        seed,
        require_complete: false,
        lazy: false,
        read_timeout: None,
    };
    let (handle, _lock) = start(run).await?;
    let progress = Progress::start(handle.clone(), quiet);
    let done = futures_select(handle.wait_complete(), stop.recv()).await;
    let result = match done {
        Some(Ok(())) => {
            if seed {
                drop(progress);
                let _p = Progress::start(handle.clone(), quiet);
                eprintln!("complete; seeding until interrupted");
                let _ = stop.recv().await;
            }
            Ok(())
        }
        Some(Err(e)) => Err(anyhow::Error::new(e).context("download failed")),
        None => {
            let s = handle.stats();
            Err(anyhow::anyhow!(
                "interrupted with {} of {} pieces verified; run the same command to resume",
                s.pieces_have,
                s.pieces_total
            ))
        }
    };
    handle.shutdown().await;
    if !quiet {
        eprintln!("{}", summary(&handle.stats()));
    }
    result
}

pub async fn seed(
    torrent: PathBuf,
    data: PathBuf,
    download_missing: bool,
    args: EngineArgs,
    quiet: bool,
) -> anyhow::Result<()> {
    let meta = Arc::new(load_torrent(&torrent)?);
    if !data.is_dir() {
        bail!("data directory {} does not exist", data.display());
    }
    // Before anything opens the data: a seed never creates, resizes or writes its files.
    if !download_missing {
        check_files_present(&meta, &data).map_err(refuse_to_seed)?;
    }
    let settings = settings(&args)?;
    let stop = signals::termination()?;
    let run = Run {
        meta,
        data_dir: data,
        args: &args,
        settings,
        default_picker: "rarest-first",
        needs_persistent_storage: true,
        seed: true,
        require_complete: !download_missing,
        lazy: false,
        read_timeout: None,
    };
    let (handle, _lock) = match start(run).await {
        Err(e) => match e.downcast::<EngineError>() {
            Ok(EngineError::Data(bad)) => return Err(refuse_to_seed(bad)),
            Ok(other) => return Err(other.into()),
            Err(e) => return Err(e),
        },
        Ok(started) => started,
    };
    let s = handle.stats();
    if !s.complete {
        tracing::warn!(
            "only {} of {} pieces are present and correct: seeding those, downloading the rest",
            s.pieces_have,
            s.pieces_total
        );
    }
    let _progress = Progress::start(handle.clone(), quiet);
    let _ = stop.recv().await;
    handle.shutdown().await;
    Ok(())
}

fn refuse_to_seed(bad: DataError) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot seed: {bad}; check --data, or add --download-missing to download what is missing"
    )
}

pub struct MountArgs {
    pub torrent: PathBuf,
    pub mountpoint: PathBuf,
    pub data: Option<PathBuf>,
    pub lazy: bool,
    pub allow_other: bool,
    pub read_timeout: Option<u64>,
    pub engine: EngineArgs,
    pub quiet: bool,
}

/// Default home of a mount's pieces: `$XDG_CACHE_HOME/rivulet/<info-hash>`.
fn cache_dir(meta: &Metainfo) -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("rivulet").join(meta.info_hash.hex())
}

pub async fn mount(m: MountArgs) -> anyhow::Result<()> {
    let meta = Arc::new(load_torrent(&m.torrent)?);
    // Before the engine starts: a mount point that cannot be used must not cost a tracker
    // announce and a cache directory first.
    rivulet_fuse::check_mount_point(&m.mountpoint)?;
    let settings = settings(&m.engine)?;
    let data_dir = m.data.clone().unwrap_or_else(|| cache_dir(&meta));
    let stop = signals::termination()?;
    let run = Run {
        meta: meta.clone(),
        data_dir,
        args: &m.engine,
        settings,
        default_picker: "streaming",
        needs_persistent_storage: false,
        seed: true,
        require_complete: false,
        lazy: m.lazy,
        read_timeout: m.read_timeout,
    };
    let (handle, _lock) = start(run).await?;
    let opts = rivulet_fuse::MountOptions {
        allow_other: m.allow_other,
    };
    let mounted = match rivulet_fuse::mount(handle.clone(), meta, &m.mountpoint, opts) {
        Ok(mounted) => mounted,
        Err(e) => {
            handle.shutdown().await;
            return Err(e.into());
        }
    };
    let progress = Progress::start(handle.clone(), m.quiet);
    futures_select(stop.recv(), mounted.wait_unmounted()).await;
    drop(progress);
    // Unmount first: waiting readers get EIO at once instead of after the engine's goodbye.
    let unmounted = if mounted.is_mounted() {
        mounted.unmount()
    } else {
        Ok(())
    };
    handle.shutdown().await;
    unmounted?;
    Ok(())
}

pub fn plugins(config: Option<PathBuf>) -> anyhow::Result<()> {
    let args = EngineArgs {
        config,
        ..Default::default()
    };
    let settings = settings(&args)?;
    let registry = registry(&settings);
    let mut broken = 0;
    let mut table = String::new();
    for p in registry.list() {
        let kind = p.kind.map(|k| k.to_string()).unwrap_or_else(|| "?".into());
        let status = match &p.status {
            PluginStatus::Ok => "ok".to_string(),
            PluginStatus::Overridden { by } => format!("overridden by {by}"),
            PluginStatus::Broken(why) => {
                broken += 1;
                format!("REFUSED: {why}")
            }
        };
        table.push_str(&format!(
            "{kind:8} {:16} {:8} {:40} {status}\n",
            p.name,
            p.version,
            p.source.to_string()
        ));
    }
    super::print(&table)?;
    if broken > 0 {
        eprintln!("{broken} plugin file(s) refused");
    }
    Ok(())
}

/// Waits for whichever comes first: `a` (Some) or `b` (None).
async fn futures_select<A, B>(
    a: impl std::future::Future<Output = A>,
    b: impl std::future::Future<Output = B>,
) -> Option<A> {
    match futures::future::select(Box::pin(a), Box::pin(b)).await {
        futures::future::Either::Left((v, _)) => Some(v),
        futures::future::Either::Right(_) => None,
    }
}
