//! The session's DHT node (BEP 5), one for all its torrents: started in the background from the
//! configured bootstrap nodes plus the routing table the last run saved, answering other nodes,
//! and saving its routing table to the state directory every few minutes and at shutdown.
//!
//! The node is the `mainline` crate: its own thread with its own UDP socket, bound to the
//! session's listen address (so announces leave from the address peers reach us on) and, when
//! free, the same port number as our TCP listener, as libtorrent and others do. The crate parses
//! every KRPC message itself and drops what does not decode; our side only sees addresses. It
//! speaks IPv4 only, so a session listening on IPv6 has no DHT. Its calls `expect` a live actor
//! thread; [`guarded`] turns a dead one into "no DHT" instead of a panic in our tasks.

use std::future::Future;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::FutureExt;
use mainline::Dht;
use mainline::async_dht::AsyncDht;

use crate::events::{Event, EventSink};
use crate::rt::{self, Cancel, CancelSource, Either};

/// Name of the routing-table file in the state directory: one `ip:port` a line.
const NODES_FILE: &str = "dht_nodes";
/// Saved nodes read back at most: a routing table holds a few hundred.
const MAX_SAVED_NODES: usize = 1000;
/// How often the routing table is saved while running (besides at shutdown).
const SAVE_EVERY: Duration = Duration::from_secs(10 * 60);

/// What the node is started from.
pub(crate) struct NodeOptions {
    /// The session's listen address: the node binds its IP and, if free, its port (UDP).
    pub listen: SocketAddr,
    /// `host:port` entries from the settings.
    pub bootstrap: Vec<String>,
    pub state_dir: PathBuf,
    pub events: EventSink,
}

/// The session's DHT node, available once started.
pub(crate) struct DhtNode {
    /// Emptied at shutdown: the node's thread ends once no handle to it is left.
    node: Mutex<Option<AsyncDht>>,
    started: CancelSource,
    ready: Cancel,
}

impl DhtNode {
    /// A node not started yet; [`run`] starts it.
    pub fn new() -> Arc<DhtNode> {
        let (started, ready) = rt::cancel_pair();
        Arc::new(DhtNode {
            node: Mutex::new(None),
            started,
            ready,
        })
    }

    /// The running node once its start is over; `None` if it could not start or `stopped`
    /// fires first.
    pub async fn wait(&self, stopped: &Cancel) -> Option<AsyncDht> {
        if let Either::Left(()) = rt::race(stopped.cancelled(), self.ready.cancelled()).await {
            return None;
        }
        self.node.lock().ok()?.clone()
    }
}

/// Runs `fut` (a call into the DHT node); `None` if the node's thread is gone, which the
/// crate reports by panicking in the caller.
pub(crate) async fn guarded<T>(fut: impl Future<Output = T>) -> Option<T> {
    match std::panic::AssertUnwindSafe(fut).catch_unwind().await {
        Ok(v) => Some(v),
        Err(_) => {
            tracing::warn!("the DHT node stopped; no more DHT lookups in this session");
            None
        }
    }
}

/// Starts the node, then saves its routing table every [`SAVE_EVERY`] and once more when
/// `stopped` fires. A task of the session.
pub(crate) async fn run(node: Arc<DhtNode>, opts: NodeOptions, stopped: Cancel) {
    let file = opts.state_dir.join(NODES_FILE);
    let started = match opts.listen {
        SocketAddr::V4(listen) => {
            let file = file.clone();
            let configured = opts.bootstrap.clone();
            rt::blocking(move || start(listen, &configured, &file)).await
        }
        SocketAddr::V6(_) => Err(StartError::Ipv6),
    };
    let dht = match started {
        Ok((dht, bootstrap)) => {
            let dht = dht.as_async();
            if let Some(info) = guarded(dht.info()).await {
                tracing::info!("DHT node on {} (UDP)", info.local_addr());
                opts.events.emit(Event::DhtStarted {
                    addr: info.local_addr().to_string(),
                    bootstrap,
                });
            }
            if let Ok(mut n) = node.node.lock() {
                *n = Some(dht.clone());
            }
            Some(dht)
        }
        Err(e) => {
            tracing::warn!("no DHT: {e}");
            None
        }
    };
    node.started.cancel();
    let Some(dht) = dht else { return };
    loop {
        let stop = rt::race(stopped.cancelled(), rt::sleep(SAVE_EVERY)).await;
        save(&dht, &file).await;
        if let Either::Left(()) = stop {
            if let Ok(mut n) = node.node.lock() {
                n.take();
            }
            return;
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("the DHT node speaks IPv4 only and the session listens on IPv6")]
    Ipv6,
    #[error("cannot open the DHT socket: {0}")]
    Bind(std::io::Error),
    #[error("the DHT node failed to start")]
    Panicked,
}

/// Binds the node (same port as the listener if free, else any) and joins through the saved
/// nodes and `configured`; returns it with how many bootstrap nodes it was given. Blocking:
/// resolves host names and waits for the node's thread.
fn start(
    listen: SocketAddrV4,
    configured: &[String],
    file: &Path,
) -> Result<(Dht, usize), StartError> {
    let mut bootstrap = read_saved(file);
    bootstrap.extend(configured.iter().cloned());
    let n = bootstrap.len();
    let build = |port: u16| {
        std::panic::catch_unwind(|| {
            Dht::builder()
                .server_mode()
                .bind_address(*listen.ip())
                .port(port)
                .bootstrap(&bootstrap)
                .build()
        })
        .map_err(|_| StartError::Panicked)?
        .map_err(StartError::Bind)
    };
    let dht = match build(listen.port()) {
        Err(StartError::Bind(e)) if e.kind() == std::io::ErrorKind::AddrInUse => build(0)?,
        other => other?,
    };
    Ok((dht, n))
}

/// The nodes a previous run saved; none if there is no readable file.
fn read_saved(file: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| l.trim().parse::<SocketAddrV4>().ok())
        .take(MAX_SAVED_NODES)
        .map(|a| a.to_string())
        .collect()
}

/// Writes the routing table to `file` (whole or not at all). An empty table leaves the file as
/// it was: a run without network must not forget the nodes that worked before.
async fn save(dht: &AsyncDht, file: &Path) {
    let Some(nodes) = guarded(dht.to_bootstrap()).await else {
        return;
    };
    if nodes.is_empty() {
        return;
    }
    let file = file.to_path_buf();
    let written = rt::blocking(move || {
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        std::fs::create_dir_all(file.parent().unwrap_or(Path::new(".")))?;
        std::fs::write(&tmp, nodes.join("\n") + "\n")?;
        std::fs::rename(&tmp, &file).map(|()| file)
    })
    .await;
    match written {
        Ok(f) => tracing::debug!("DHT routing table saved to {}", f.display()),
        Err(e) => tracing::warn!("cannot save the DHT routing table: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_nodes_are_read_back_and_junk_lines_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(NODES_FILE);
        std::fs::write(
            &file,
            "127.0.0.4:6881\nnot an address\n\n10.1.2.3:1\n[::1]:5\n",
        )
        .unwrap();
        assert_eq!(read_saved(&file), vec!["127.0.0.4:6881", "10.1.2.3:1"]);
        assert!(read_saved(&dir.path().join("missing")).is_empty());
    }
}
