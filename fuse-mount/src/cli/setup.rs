//! The commands that run the engine (download, seed, plugins) as thin clients of a core
//! session: settings from file, environment and flags, the built-in plugins, one torrent. The
//! mount command (several torrents) has its own module on the same helpers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use rivulet_core::config::{DEFAULT_LISTEN_PORT, Settings};
use rivulet_core::plugin::registry::PluginStatus;
use rivulet_core::session::{AddTorrent, Mode, Session, SessionError, TorrentSource};
use rivulet_core::torrent::{DataError, EngineError, TorrentHandle, check_files_present};

use super::port_choice::bind_with_fallback;
use super::progress::{Progress, summary};
use super::{EngineArgs, load_torrent, signals};

/// Settings from the config file and environment, with this command line's flags on top.
pub(super) fn settings(args: &EngineArgs) -> anyhow::Result<Settings> {
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
    if !args.dht_bootstrap.is_empty() {
        o.push(("dht_bootstrap", args.dht_bootstrap.join(",")));
    }
    if args.no_dht {
        o.push(("dht", "false".to_string()));
    }
    Ok(Settings::load(args.config.as_deref(), &o)?)
}

/// A session over the built-in and configured plugins, with `--events` subscribed.
///
/// When the default peer port is taken (another rivulet runs), the next few ports are tried,
/// then any free one, and stderr says which; a port the user named is never replaced, and the
/// error says where it was named.
pub(super) async fn session(args: &EngineArgs, settings: Settings) -> anyhow::Result<Session> {
    let named = args.listen.is_some() || settings.listen.port() != DEFAULT_LISTEN_PORT;
    let wanted = settings.listen;
    let start = |port| {
        let mut s = settings.clone();
        s.listen.set_port(port);
        Session::new(rivulet_plugins::session_options(s, args.events.clone()))
    };
    let in_use = |e: &SessionError| matches!(e, SessionError::Listen { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse);
    match bind_with_fallback(wanted.port(), !named, start, in_use).await {
        Ok((session, port)) => {
            if port != wanted.port() {
                eprintln!(
                    "port {} is in use; accepting peers on port {} instead",
                    wanted.port(),
                    session.listen_addr().port()
                );
            }
            Ok(session)
        }
        Err(SessionError::Listen { addr, source }) if named => {
            let option = if args.listen.is_some() {
                "--listen"
            } else {
                "the `listen` setting"
            };
            bail!("cannot accept peers on {addr} (given by {option}): {source}");
        }
        Err(e) => Err(e.into()),
    }
}

/// Starts a session with one torrent in it.
async fn start(
    args: &EngineArgs,
    settings: Settings,
    source: TorrentSource,
    data_dir: PathBuf,
    mode: Mode,
    read_timeout: Option<u64>,
) -> anyhow::Result<(Session, TorrentHandle)> {
    let session = session(args, settings).await?;
    let add = AddTorrent {
        source,
        data_dir,
        mode,
        read_timeout: read_timeout.map(Duration::from_secs),
        peers: args.peers.clone(),
    };
    match session.add(add).await {
        Ok(handle) => Ok((session, handle)),
        Err(e) => {
            session.shutdown().await;
            Err(e.into())
        }
    }
}

pub async fn download(
    torrent: PathBuf,
    output: Option<PathBuf>,
    seed: bool,
    args: EngineArgs,
    quiet: bool,
) -> anyhow::Result<()> {
    let source = super::magnet::source(&torrent)?;
    let settings = settings(&args)?;
    let data_dir = output.unwrap_or_else(|| settings.download_dir.clone());
    let stop = signals::termination()?;
    let mode = Mode::Download { seed };
    let started = futures_select(
        start(&args, settings, source, data_dir.clone(), mode, None),
        stop.recv(),
    );
    let (session, handle) = match started.await {
        Some(started) => started?,
        None => anyhow::bail!("interrupted before the download started"),
    };
    let meta = handle.meta().clone();
    let progress = Progress::start(handle.clone(), quiet);
    let done = futures_select(handle.wait_complete(), stop.recv()).await;
    let result = match done {
        Some(Ok(())) => {
            rivulet_core::rt::blocking(move || {
                rivulet_core::torrent::attributes::mark_executables(&meta, &data_dir)
            })
            .await;
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
    session.shutdown().await;
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
    let mode = Mode::Seed { download_missing };
    let source = TorrentSource::Metainfo(meta);
    let (session, handle) = match start(&args, settings, source, data, mode, None).await {
        Err(e) => match e.downcast::<SessionError>() {
            Ok(SessionError::Engine(EngineError::Data(bad))) => return Err(refuse_to_seed(bad)),
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
    session.shutdown().await;
    Ok(())
}

fn refuse_to_seed(bad: DataError) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot seed: {bad}; check --data, or add --download-missing to download what is missing"
    )
}

pub fn plugins(config: Option<PathBuf>) -> anyhow::Result<()> {
    let args = EngineArgs {
        config,
        ..Default::default()
    };
    let settings = settings(&args)?;
    let registry = rivulet_plugins::registry(&settings.plugin_dirs);
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
pub(super) async fn futures_select<A, B>(
    a: impl std::future::Future<Output = A>,
    b: impl std::future::Future<Output = B>,
) -> Option<A> {
    match futures::future::select(Box::pin(a), Box::pin(b)).await {
        futures::future::Either::Left((v, _)) => Some(v),
        futures::future::Either::Right(_) => None,
    }
}
