//! hyper on the runtime seam: a futures-io connection as hyper's `Read`/`Write`, and a timer
//! made of `rt::sleep`, so hyper never needs tokio and core's `rt` stays the one place that
//! names the runtime.
//!
//! The connection also times out a write that makes no progress for [`WRITE_STALL`]: a client
//! that stops reading a stream must not hold its connection slot (and the reader's readahead)
//! forever. Reads are not timed here: hyper's header-read timeout covers requests, and a long
//! response body legitimately leaves the read side idle.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::io::{AsyncRead, AsyncWrite};
use rivulet_core::rt;

/// How long a write may wait for the client to take bytes before the connection is dropped.
pub const WRITE_STALL: Duration = Duration::from_secs(60);

type BoxSleep = Pin<Box<dyn Future<Output = ()> + Send>>;

fn sleep(d: Duration) -> BoxSleep {
    Box::pin(rt::sleep(d))
}

/// A futures-io stream as a hyper connection.
pub struct HyperIo<S> {
    inner: S,
    /// Started when a write first returned `Pending`; cleared by any progress.
    stall: Option<BoxSleep>,
}

impl<S> HyperIo<S> {
    pub fn new(inner: S) -> Self {
        HyperIo { inner, stall: None }
    }
}

impl<S: Unpin> HyperIo<S> {
    /// Turns a `Pending` write into a timeout once it has lasted [`WRITE_STALL`].
    fn watch<T>(&mut self, cx: &mut Context<'_>, p: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if p.is_ready() {
            self.stall = None;
            return p;
        }
        let timer = self.stall.get_or_insert_with(|| sleep(WRITE_STALL));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> hyper::rt::Read for HyperIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // A safe copy through a small buffer: requests are headers and at most one upload.
        let mut tmp = [0u8; 8192];
        let want = buf.remaining().min(tmp.len());
        match Pin::new(&mut self.get_mut().inner).poll_read(cx, &mut tmp[..want]) {
            Poll::Ready(Ok(n)) => {
                buf.put_slice(&tmp[..n]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> hyper::rt::Write for HyperIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let p = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, p)
    }

    /// Headers and body chunks go out in one `writev` as they are: without it hyper copies
    /// every body chunk into its own buffer first (7 % of a completed file's serving CPU in
    /// perf, the largest user-space item).
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let p = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, p)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let p = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, p)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

/// hyper's timer (header-read timeout) on `rt::sleep`.
#[derive(Clone, Copy, Default)]
pub struct Timer;

/// hyper wants its sleeps `Sync`; the runtime's sleep future is only `Send`, and is only ever
/// polled through `&mut`, so a mutex around it costs nothing contended.
struct SyncSleep(Mutex<BoxSleep>);

impl Future for SyncSleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.get_mut().0.get_mut() {
            Ok(fut) => fut.as_mut().poll(cx),
            Err(poisoned) => poisoned.into_inner().as_mut().poll(cx),
        }
    }
}

impl hyper::rt::Sleep for SyncSleep {}

impl hyper::rt::Timer for Timer {
    fn sleep(&self, d: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(SyncSleep(Mutex::new(sleep(d))))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep(deadline.saturating_duration_since(Instant::now()))
    }
}
