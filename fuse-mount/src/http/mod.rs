//! The HTTP server of `rivulet serve`: a JSON API under `/api`, file streaming with Range
//! requests under `/stream`, server-sent events, and a small web page at `/`.
//!
//! Server crate: hyper 1.x (http1 + server features only). It is the maintained HTTP
//! implementation of the Rust ecosystem (tide and async-h1, surf's server-side siblings, have
//! had no release since 2023), does HTTP/1.1 keep-alive and streaming bodies with
//! backpressure (a body is polled only when the connection can take more), bounds the request
//! head (431 past [`limits::MAX_HEAD_BYTES`]) and times out slow request heads. It is
//! runtime-neutral: [`io`] adapts core's `rt` connections and timer in ~100 lines, so no tokio
//! runtime runs and `rt.rs` stays the only file naming async-std. smol-hyper would have been
//! the same adapter as a dependency; hyper-util pulls in tokio.
//!
//! Module map: [`router`] dispatches, [`api`] answers the JSON routes, [`stream`] serves file
//! bytes through core's readers, [`events`] the event stream, [`page`] the web page,
//! [`limits`] the token and bounds, [`library`] the torrents on offer, [`reply`] builds
//! responses.

mod api;
mod events;
mod io;
pub mod library;
mod limits;
mod page;
mod reply;
mod router;
mod stream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::AsyncWriteExt;
use hyper::server::conn::http1;
use rivulet_core::rt::{self, Cancel, CancelSource, Conn, Listener, Tasks};

pub use library::Library;
pub use limits::MAX_CONNECTIONS;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen for HTTP on {addr} (given by --http): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "--http {0} is reachable from other machines: give an access token with --token \
         (or listen on 127.0.0.1)"
    )]
    NeedsToken(SocketAddr),
}

pub struct ServeOptions {
    pub addr: SocketAddr,
    /// Bearer token every request must carry; required unless `addr` is a loopback address.
    pub token: Option<String>,
}

/// A running HTTP server; [`Server::shutdown`] stops it.
pub struct Server {
    addr: SocketAddr,
    tasks: Tasks,
    stop: CancelSource,
}

impl Server {
    /// The address it listens on (the real port when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, ends every connection (streams break off) and waits for them.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.tasks.join(Duration::from_secs(2)).await;
    }
}

/// Binds `opts.addr` and serves `lib` until [`Server::shutdown`].
pub async fn start(lib: Arc<Library>, opts: ServeOptions) -> Result<Server, HttpError> {
    let auth = Arc::new(limits::Auth::new(opts.token.clone()));
    if !opts.addr.ip().is_loopback() && opts.token.as_deref().is_none_or(str::is_empty) {
        return Err(HttpError::NeedsToken(opts.addr));
    }
    let addr = opts.addr;
    let listener = Listener::bind(addr)
        .await
        .map_err(|source| HttpError::Bind { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| HttpError::Bind { addr, source })?;
    let (stop, stopped) = rt::cancel_pair();
    let tasks = Tasks::default();
    tasks.spawn(accept_loop(listener, lib, auth, tasks.clone(), stopped));
    Ok(Server { addr, tasks, stop })
}

async fn accept_loop(
    listener: Listener,
    lib: Arc<Library>,
    auth: Arc<limits::Auth>,
    tasks: Tasks,
    stopped: Cancel,
) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = match rt::race(listener.accept(), stopped.cancelled()).await {
            rt::Either::Left(a) => a,
            rt::Either::Right(()) => return,
        };
        let (conn, peer) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors, most likely: let connections end before trying again.
                tracing::warn!("HTTP accept failed: {e}");
                rt::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            open.fetch_sub(1, Ordering::SeqCst);
            tasks.spawn(refuse(conn));
            continue;
        }
        let slot = Slot(open.clone());
        let (lib, auth, stopped) = (lib.clone(), auth.clone(), stopped.clone());
        tasks.spawn(async move {
            let _slot = slot;
            tracing::debug!(%peer, "HTTP connection");
            rt::race(serve_connection(conn, lib, auth), stopped.cancelled()).await;
        });
    }
}

/// Counts a connection as open until it ends.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Tells a client over the connection cap to come back later, without reading its request.
async fn refuse(mut conn: Conn) {
    let msg = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n\
                Content-Length: 0\r\n\r\n";
    let _ = rt::timeout(Duration::from_secs(2), async {
        let _ = conn.write_all(msg).await;
        let _ = conn.close().await;
    })
    .await;
}

async fn serve_connection(conn: Conn, lib: Arc<Library>, auth: Arc<limits::Auth>) {
    let service = hyper::service::service_fn(move |req| {
        let (lib, auth) = (lib.clone(), auth.clone());
        async move { router::route(&lib, &auth, req).await }
    });
    let served = http1::Builder::new()
        .timer(io::Timer)
        .header_read_timeout(limits::HEADER_TIMEOUT)
        .max_buf_size(limits::MAX_HEAD_BYTES)
        .max_headers(limits::MAX_HEADERS)
        .keep_alive(true)
        .serve_connection(io::HyperIo::new(conn), service)
        .await;
    if let Err(e) = served {
        tracing::debug!("HTTP connection ended: {e}");
    }
}
