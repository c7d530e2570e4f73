//! `rivulet serve`: a long-running session downloading into `--data`, offered over the HTTP API
//! and web page of [`rivulet_fuse::http`] until interrupted; with `--mount`, the same
//! torrents in a FUSE mount, and with `--watch`, those of a watch folder too.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use rivulet_core::events::Event;
use rivulet_core::rt::{self, CancelSource, Either, Tasks};
use rivulet_core::session::Session;
use rivulet_core::session::watch::{WatchChange, WatchConfig, Watcher};
use rivulet_fuse::http::library::parse_hash;
use rivulet_fuse::http::{self, HttpError, Library, ServeOptions};
use rivulet_fuse::{MountOptions, Torrents};

use super::port_choice::bind_with_fallback;
use super::{EngineArgs, setup, signals};

/// Where the API listens unless `--http` says otherwise, and where the thin clients
/// (`remote.rs`) look for it.
pub(super) const DEFAULT_HTTP: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7881);

pub struct ServeArgs {
    pub data: PathBuf,
    /// `None`: [`DEFAULT_HTTP`], or the next free port.
    pub http: Option<SocketAddr>,
    pub token: Option<String>,
    pub mount: Option<PathBuf>,
    pub watch: Option<PathBuf>,
    pub delete_removed: bool,
    pub engine: EngineArgs,
}

/// The HTTP server on `--http`, or on the default address; when another rivulet holds the
/// default, on the next free port, said on stderr (a named address is never replaced).
async fn listen_http(a: &ServeArgs, lib: Arc<Library>) -> Result<http::Server, HttpError> {
    let wanted = a.http.unwrap_or(DEFAULT_HTTP);
    let start = |port| {
        let opts = ServeOptions {
            addr: SocketAddr::new(wanted.ip(), port),
            token: a.token.clone(),
        };
        http::start(lib.clone(), opts)
    };
    let in_use = |e: &HttpError| matches!(e, HttpError::Bind { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse);
    let (server, port) = bind_with_fallback(wanted.port(), a.http.is_none(), start, in_use).await?;
    if port != wanted.port() {
        eprintln!(
            "{wanted} is in use; serving HTTP on {} instead (--http chooses)",
            server.local_addr()
        );
    }
    Ok(server)
}

pub async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    if let Some(dir) = &a.mount {
        rivulet_fuse::check_mount_point(dir)?;
    }
    if let Some(dir) = &a.watch {
        std::fs::read_dir(dir).with_context(|| format!("cannot watch {}", dir.display()))?;
    }
    let settings = setup::settings(&a.engine)?;
    let read_timeout = Duration::from_secs(settings.read_timeout_secs);
    let stop = signals::termination()?;
    let session = setup::session(&a.engine, settings).await?;
    let lib = Library::new(session.clone(), a.data.clone(), a.engine.peers.clone());
    lib.restore().await;
    // The mount follows the session, whoever adds or removes (API, watch folder, restart).
    let mount = match &a.mount {
        Some(dir) => match mount_following(&session, dir, read_timeout) {
            Ok(m) => Some(m),
            Err(e) => {
                session.shutdown().await;
                return Err(e);
            }
        },
        None => None,
    };
    let watcher = match &a.watch {
        Some(dir) => {
            let (adder, forget) = (lib.clone(), lib.clone());
            let cfg = WatchConfig {
                dir: dir.clone(),
                add: Box::new(move |source| adder.add_request(source)),
                delete_data: a.delete_removed,
            };
            let started = Watcher::start(&session, cfg, move |change| {
                if let WatchChange::Removed(hash) = change {
                    forget.forget(&hash);
                }
            })
            .await;
            match started {
                Ok(w) => Some(w),
                Err(e) => {
                    session.shutdown().await;
                    return Err(
                        anyhow::Error::new(e).context(format!("cannot watch {}", dir.display()))
                    );
                }
            }
        }
        None => None,
    };
    let server = match listen_http(&a, lib).await {
        Ok(s) => s,
        Err(e) => {
            session.shutdown().await;
            return Err(e.into());
        }
    };
    let addr = server.local_addr();
    eprintln!(
        "serving http://{addr}/ (API under /api), downloading into {}",
        a.data.display()
    );
    if !addr.ip().is_loopback() {
        eprintln!(
            "listening on {addr}, reachable from other machines: every request must carry the \
             access token (Authorization: Bearer TOKEN, or ?token=TOKEN in a link)"
        );
    }
    match &mount {
        Some(m) => {
            setup::futures_select(stop.recv(), m.mounted.wait_unmounted()).await;
        }
        None => {
            let _ = stop.recv().await;
        }
    }
    if let Some(w) = &watcher {
        w.stop().await;
    }
    server.shutdown().await;
    // Unmount before the engine's goodbye: waiting readers get EIO at once.
    let unmounted = match mount {
        Some(m) => m.finish().await,
        None => Ok(()),
    };
    session.shutdown().await;
    unmounted
}

/// A mount of every torrent of the session, kept in step with its `added` and `removed`
/// events by a task of its own.
struct FollowingMount {
    mounted: rivulet_fuse::Mount,
    tasks: Tasks,
    stop: CancelSource,
}

fn mount_following(
    session: &Session,
    dir: &Path,
    read_timeout: Duration,
) -> anyhow::Result<FollowingMount> {
    let torrents = Torrents::new(read_timeout);
    // Subscribed before the first listing: nothing added in between is missed.
    let events = session.subscribe(1024);
    for handle in session.torrents() {
        torrents.add(handle.clone(), handle.meta().clone());
    }
    let mounted = rivulet_fuse::mount_torrents(&torrents, dir, MountOptions::default())?;
    let (stop, stopped) = rt::cancel_pair();
    let tasks = Tasks::default();
    let session = session.clone();
    tasks.spawn(async move {
        loop {
            let next = rt::race(stopped.cancelled(), events.recv()).await;
            let Either::Right(Ok(stamped)) = next else {
                return;
            };
            let Some(hash) = stamped.torrent.as_deref().and_then(parse_hash) else {
                continue;
            };
            match stamped.event {
                Event::Added { .. } => {
                    if let Some(h) = session.get(&hash) {
                        torrents.add(h.clone(), h.meta().clone());
                    }
                }
                Event::Removed => {
                    torrents.remove(&hash);
                }
                _ => {}
            }
        }
    });
    Ok(FollowingMount {
        mounted,
        tasks,
        stop,
    })
}

impl FollowingMount {
    async fn finish(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.tasks.join(Duration::from_secs(2)).await;
        if self.mounted.is_mounted() {
            self.mounted.unmount()?;
        }
        Ok(())
    }
}
