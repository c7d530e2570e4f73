//! The one place that names the async runtime (async-std): tracked tasks, capped blocking work,
//! timers, channels and cancellation. Everything else in core, the binary and the plugins goes
//! through here, so the runtime can be swapped in one file and no async-std type leaks into a
//! public signature.
//!
//! Blocking work (storage, hashing, flushes, subprocesses, event-file writes) runs through
//! [`blocking`], which caps how many such calls run at once: async-std's blocking pool grows a
//! thread per waiting call, and a burst of uploads from a slow disk would otherwise make hundreds.
//!
//! Outgoing TCP connections are made here too ([`connect_from`]): one that must leave from the
//! address a session listens on is bound before it connects, which the runtime's own `connect`
//! cannot do.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub use async_std::channel::{Receiver, RecvError, SendError, Sender, TryRecvError, TrySendError};
pub(crate) use async_std::net::{TcpListener, TcpStream};

/// A TCP listener for front ends outside core (the HTTP API), so they need not name the runtime.
pub struct Listener(TcpListener);

/// A TCP connection, accepted or made, as `futures::io` reader and writer; for front ends and
/// plugins outside core (the HTTP API, the HTTP tracker client).
pub struct Conn(TcpStream);

/// Connects to `addr`, leaving from `local` when given (port chosen by the system), else from
/// whatever address the routing table picks.
///
/// The socket is non-blocking before it connects and the connect completes on the reactor, so
/// no thread waits on it: dials time out after seconds, and parking a blocking-pool thread per
/// dial would starve the storage work that shares the pool's cap.
pub(crate) async fn connect_from(local: Option<IpAddr>, addr: SocketAddr) -> io::Result<TcpStream> {
    let Some(ip) = local else {
        return TcpStream::connect(addr).await;
    };
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::new(ip, 0).into()).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("binding the outgoing connection to {ip}: {e}"),
        )
    })?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    let pending = async_io::Async::new(std::net::TcpStream::from(socket))?;
    pending.writable().await?;
    if let Some(e) = pending.get_ref().take_error()? {
        return Err(e);
    }
    Ok(TcpStream::from(pending.into_inner()?))
}

impl Listener {
    pub async fn bind(addr: std::net::SocketAddr) -> std::io::Result<Listener> {
        TcpListener::bind(addr).await.map(Listener)
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.local_addr()
    }

    pub async fn accept(&self) -> std::io::Result<(Conn, std::net::SocketAddr)> {
        let (stream, peer) = self.0.accept().await?;
        // Small responses (headers, JSON) go out at once instead of waiting for an ACK.
        let _ = stream.set_nodelay(true);
        Ok((Conn(stream), peer))
    }
}

impl Conn {
    /// An outgoing connection to `addr`, from `local` when given (see [`connect_from`]).
    pub async fn connect(addr: SocketAddr, local: Option<IpAddr>) -> io::Result<Conn> {
        connect_from(local, addr).await.map(Conn)
    }
}

impl futures::io::AsyncRead for Conn {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl futures::io::AsyncWrite for Conn {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_close(cx)
    }
}

/// Blocking calls running at once. Four verifiers and a handful of uploads and reads fit; more
/// only queue behind the disk.
const BLOCKING_CAP: usize = 16;

/// A channel holding at most `cap` messages.
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    async_std::channel::bounded(cap)
}

/// Runs `fut` to completion on the calling thread (the binary's `main`, tests, sync plugin
/// calls that wrap an async client).
pub fn block_on<T>(fut: impl Future<Output = T>) -> T {
    async_std::task::block_on(fut)
}

pub async fn sleep(d: Duration) {
    async_std::task::sleep(d).await
}

/// Lets other tasks on this thread run: a connection whose socket always has data would
/// otherwise hold an executor thread for as long as the data lasts.
pub async fn yield_now() {
    async_std::task::yield_now().await
}

/// The time ran out before the future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timed out")]
pub struct Elapsed;

/// `fut`, unless `d` passes first.
pub async fn timeout<T>(d: Duration, fut: impl Future<Output = T>) -> Result<T, Elapsed> {
    async_std::future::timeout(d, fut)
        .await
        .map_err(|_| Elapsed)
}

/// Whichever of two futures finishes first; the other is dropped.
pub async fn race<A, B>(a: impl Future<Output = A>, b: impl Future<Output = B>) -> Either<A, B> {
    use futures::future::{Either as E, select};
    match select(std::pin::pin!(a), std::pin::pin!(b)).await {
        E::Left((a, _)) => Either::Left(a),
        E::Right((b, _)) => Either::Right(b),
    }
}

/// The outcome of [`race`].
pub enum Either<A, B> {
    Left(A),
    Right(B),
}

fn blocking_slots() -> &'static (Sender<()>, Receiver<()>) {
    static SLOTS: OnceLock<(Sender<()>, Receiver<()>)> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let (tx, rx) = async_std::channel::bounded(BLOCKING_CAP);
        for _ in 0..BLOCKING_CAP {
            let _ = tx.try_send(());
        }
        (tx, rx)
    })
}

/// Runs `f` on a blocking thread, at most [`BLOCKING_CAP`] at once, and awaits its result.
pub async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = blocking_slots();
    // The channel is never closed: a slot always comes back.
    let _ = rx.recv().await;
    struct Slot(&'static Sender<()>);
    impl Drop for Slot {
        fn drop(&mut self) {
            let _ = self.0.try_send(());
        }
    }
    let slot = Slot(tx);
    let r = async_std::task::spawn_blocking(f).await;
    drop(slot);
    r
}

/// A group of spawned tasks that can be counted and joined: a torrent's or a session's. Nothing
/// it spawned outlives [`Tasks::join`].
#[derive(Clone, Default)]
pub struct Tasks {
    inner: Arc<TasksInner>,
}

#[derive(Default)]
struct TasksInner {
    live: AtomicUsize,
    next_id: AtomicUsize,
    /// Handles of running tasks; each task removes its own when it ends.
    handles: Mutex<HashMap<usize, async_std::task::JoinHandle<()>>>,
}

/// Counts a task as live until it ends, however it ends (finished, cancelled, panicked).
struct LiveGuard {
    group: Arc<TasksInner>,
    id: usize,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if let Ok(mut h) = self.group.handles.lock() {
            h.remove(&self.id);
        }
        self.group.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Tasks {
    /// Spawns `fut` as a member of this group.
    pub fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.inner.live.fetch_add(1, Ordering::SeqCst);
        let guard = LiveGuard {
            group: self.inner.clone(),
            id,
        };
        // Held across the spawn, so a task that ends at once removes its handle after it was
        // inserted, never before.
        let mut handles = self.inner.handles.lock().unwrap_or_else(|e| e.into_inner());
        let handle = async_std::task::spawn(async move {
            let _guard = guard;
            fut.await
        });
        handles.insert(id, handle);
    }

    /// Tasks of this group still running.
    pub fn live(&self) -> usize {
        self.inner.live.load(Ordering::SeqCst)
    }

    /// Waits up to `grace` for every task to end on its own (they watch a [`Cancel`]), then
    /// cancels the rest. Returns how many had to be cancelled.
    pub async fn join(&self, grace: Duration) -> usize {
        let deadline = std::time::Instant::now() + grace;
        while self.live() > 0 && std::time::Instant::now() < deadline {
            sleep(Duration::from_millis(5)).await;
        }
        let handles: Vec<_> = match self.inner.handles.lock() {
            Ok(mut h) => h.drain().map(|(_, h)| h).collect(),
            Err(_) => Vec::new(),
        };
        let mut cancelled = 0;
        for h in handles {
            if h.cancel().await.is_none() {
                cancelled += 1;
            }
        }
        if cancelled > 0 {
            tracing::debug!("{cancelled} task(s) cancelled at shutdown");
        }
        cancelled
    }
}

/// A one-way stop signal: [`Cancel::cancel`] (or dropping every [`CancelSource`]) wakes every
/// clone's [`Cancel::cancelled`].
#[derive(Clone)]
pub struct Cancel {
    rx: Receiver<()>,
}

/// The side that fires a [`Cancel`].
pub struct CancelSource {
    tx: Mutex<Option<Sender<()>>>,
}

/// A new stop signal and its trigger.
pub fn cancel_pair() -> (CancelSource, Cancel) {
    let (tx, rx) = async_std::channel::bounded(1);
    (
        CancelSource {
            tx: Mutex::new(Some(tx)),
        },
        Cancel { rx },
    )
}

impl CancelSource {
    pub fn cancel(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.tx.lock().map(|t| t.is_none()).unwrap_or(true)
    }
}

impl Cancel {
    /// Resolves once the signal fired.
    pub async fn cancelled(&self) {
        // Nothing is ever sent: recv ends with an error when the sender is dropped.
        let _ = self.rx.recv().await;
    }

    pub fn is_cancelled(&self) -> bool {
        self.rx.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_tasks_are_all_gone_and_stuck_ones_are_cancelled() {
        block_on(async {
            let tasks = Tasks::default();
            let (source, cancel) = cancel_pair();
            for _ in 0..3 {
                let c = cancel.clone();
                tasks.spawn(async move { c.cancelled().await });
            }
            tasks.spawn(futures::future::pending());
            assert_eq!(tasks.live(), 4);
            source.cancel();
            assert_eq!(tasks.join(Duration::from_millis(200)).await, 1);
            assert_eq!(tasks.live(), 0);
        });
    }

    #[test]
    fn a_bound_connect_leaves_from_its_address_and_reports_a_refusal() {
        block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let to = listener.local_addr().unwrap();
            let from: IpAddr = "127.0.0.2".parse().unwrap();
            let (dialed, accepted) =
                futures::future::join(connect_from(Some(from), to), listener.accept()).await;
            assert_eq!(dialed.unwrap().local_addr().unwrap().ip(), from);
            assert_eq!(accepted.unwrap().1.ip(), from);

            let (routed, accepted) =
                futures::future::join(connect_from(None, to), listener.accept()).await;
            assert!(routed.is_ok());
            assert_eq!(accepted.unwrap().1.ip(), to.ip());

            drop(listener);
            let refused = connect_from(Some(from), to).await.unwrap_err();
            assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
            let unbindable = connect_from(Some("192.0.2.1".parse().unwrap()), to).await;
            assert!(unbindable.unwrap_err().to_string().contains("192.0.2.1"));
        });
    }

    #[test]
    fn blocking_calls_never_exceed_the_cap() {
        block_on(async {
            let running = Arc::new(AtomicUsize::new(0));
            let peak = Arc::new(AtomicUsize::new(0));
            let calls = (0..BLOCKING_CAP * 3).map(|_| {
                let (running, peak) = (running.clone(), peak.clone());
                blocking(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            });
            futures::future::join_all(calls).await;
            assert!(peak.load(Ordering::SeqCst) <= BLOCKING_CAP);
        });
    }
}
