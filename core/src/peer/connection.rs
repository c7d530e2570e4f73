//! One peer connection over any byte stream: the BEP 3 handshake, then a reader that feeds
//! messages to the handler and a writer that sends what the handler queued (including served
//! blocks) and the keep-alives (every 90 s, and when the handler wants a quiet peer nudged),
//! until either side ends or the handler drops the peer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::handler::{Attached, PeerHandler, PeerLink};
use super::link::{DropReason, OUTBOX_CAP, Outbound, PeerTx};
use crate::rt::{self, Either, Receiver};
use crate::wire::{Handshake, HandshakeError, Message};

pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A peer that sends nothing, not even a keep-alive, for this long is gone (or a slowloris).
const IDLE_TIMEOUT: Duration = Duration::from_secs(150);
const KEEPALIVE_EVERY: Duration = Duration::from_secs(90);
/// The writer batches queued messages up to this many bytes per write.
const WRITE_BATCH: usize = 256 * 1024;
/// Messages read in a row before the reader lets other tasks run: with data always waiting
/// (a keep-alive flood), a reader never yields on its own, and two such connections froze a
/// two-core process for the length of the flood.
const READ_BUDGET: u32 = 32;

/// A byte stream a peer connection can run over (TCP now; uTP or an encrypted stream later).
pub(crate) trait Transport: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Transport for T {}

/// Our side of the handshake when we dialed: send ours, then check theirs.
pub(crate) async fn handshake_out<S: Transport>(
    stream: &mut S,
    ours: &Handshake,
) -> Result<Handshake, HandshakeError> {
    let exchange = async {
        ours.write(stream).await?;
        let theirs = Handshake::read(stream).await?;
        theirs.check(&ours.info_hash, &ours.peer_id)?;
        Ok(theirs)
    };
    rt::timeout(HANDSHAKE_TIMEOUT, exchange)
        .await
        .map_err(|_| HandshakeError::Io(std::io::ErrorKind::TimedOut.into()))?
}

/// Reads the handshake of a peer that dialed us (to learn which torrent it wants).
pub(crate) async fn read_handshake<S: Transport>(
    stream: &mut S,
) -> Result<Handshake, HandshakeError> {
    rt::timeout(HANDSHAKE_TIMEOUT, Handshake::read(stream))
        .await
        .map_err(|_| HandshakeError::Io(std::io::ErrorKind::TimedOut.into()))?
}

/// Runs a handshaken connection with `handler` until it ends.
pub(crate) async fn run<H: PeerHandler, S: Transport>(
    handler: Arc<H>,
    stream: S,
    addr: SocketAddr,
    remote: Handshake,
    incoming: bool,
) {
    static NEXT_CONN: AtomicU64 = AtomicU64::new(0);
    let conn = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = rt::bounded(OUTBOX_CAP);
    let (close, closed) = rt::cancel_pair();
    let link = PeerLink {
        addr,
        peer_id: remote.peer_id,
        conn,
        tx: PeerTx { tx, conn },
        close,
        incoming,
        extensions: remote.extensions(),
        // Ours always announces it.
        fast: remote.fast(),
    };
    let id = match handler.attach(link) {
        Ok(id) => id,
        Err(reason) => {
            tracing::debug!("{addr} refused: {reason}");
            return;
        }
    };
    let (rd, wr) = stream.split();
    let talk = rt::race(reader(&*handler, id, rd), writer(&*handler, id, wr, rx));
    let reason = match rt::race(talk, closed.cancelled()).await {
        Either::Left(Either::Left(r) | Either::Right(r)) => r,
        // The handler dropped the peer: it knows why.
        Either::Right(()) => return,
    };
    handler.detach(id, reason);
}

/// Reads messages until the connection ends; returns why it ended.
async fn reader<H: PeerHandler>(
    handler: &H,
    id: Attached,
    rd: impl AsyncRead + Unpin,
) -> DropReason {
    let max_len = handler.max_message_len();
    let mut r = BufReader::with_capacity(256 * 1024, rd);
    let mut budget = READ_BUDGET;
    loop {
        let msg = match rt::timeout(IDLE_TIMEOUT, Message::read(&mut r, max_len)).await {
            Err(_) => return DropReason::IdleTooLong,
            Ok(Err(e)) => return DropReason::Io(e.to_string()),
            Ok(Ok(m)) => m,
        };
        if let Err(reason) = handler.on_message(id, msg).await {
            return reason;
        }
        budget -= 1;
        if budget == 0 {
            budget = READ_BUDGET;
            rt::yield_now().await;
        }
    }
}

/// Sends what the handler queued for this peer, batching small messages into one write.
async fn writer<H: PeerHandler>(
    handler: &H,
    id: Attached,
    mut wr: impl AsyncWrite + Unpin,
    rx: Receiver<Outbound>,
) -> DropReason {
    let mut buf = Vec::with_capacity(WRITE_BATCH + 64 * 1024);
    let mut last_write = Instant::now();
    loop {
        buf.clear();
        let keepalive_in = KEEPALIVE_EVERY.saturating_sub(last_write.elapsed());
        let wait = handler
            .nudge_in(id)
            .map_or(keepalive_in, |n| n.min(keepalive_in));
        let first = match rt::timeout(wait, rx.recv()).await {
            Err(_) if last_write.elapsed() >= KEEPALIVE_EVERY => Outbound::Msg(Message::KeepAlive),
            Err(_) if handler.nudge_in(id).is_some_and(|n| n.is_zero()) => {
                handler.nudged(id);
                Outbound::Msg(Message::KeepAlive)
            }
            Err(_) => continue,
            Ok(Err(_)) => return DropReason::Gone,
            Ok(Ok(o)) => o,
        };
        encode(handler, id, first, &mut buf).await;
        while buf.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(o) => encode(handler, id, o, &mut buf).await,
                Err(_) => break,
            }
        }
        if buf.is_empty() {
            continue;
        }
        if let Err(e) = wr.write_all(&buf).await {
            return DropReason::Io(format!("write: {e}"));
        }
        last_write = Instant::now();
    }
}

async fn encode<H: PeerHandler>(handler: &H, id: Attached, out: Outbound, buf: &mut Vec<u8>) {
    match out {
        Outbound::Msg(m) => m.encode_into(buf),
        Outbound::Serve(r) => {
            if let Some(m) = handler.serve(id, r).await {
                m.encode_into(buf);
            }
        }
    }
}
