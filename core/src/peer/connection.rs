//! One peer connection: handshake, then a reader task that feeds messages to the torrent state
//! and a writer task that sends what the state queued (including served blocks).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_std::channel::Receiver;
use async_std::io::BufReader;
use async_std::net::{TcpListener, TcpStream};
use futures::AsyncWriteExt;

use crate::torrent::engine::Engine;
use crate::torrent::peers::{Outbound, PeerState};
use crate::wire::{Handshake, HandshakeError, Message};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A peer that sends nothing, not even a keep-alive, for this long is gone (or a slowloris).
const IDLE_TIMEOUT: Duration = Duration::from_secs(150);
const KEEPALIVE_EVERY: Duration = Duration::from_secs(90);
/// The writer batches queued messages up to this many bytes per write.
const WRITE_BATCH: usize = 256 * 1024;

/// Accepts incoming peers until the engine stops.
pub(crate) async fn listen(engine: Arc<Engine>, listener: TcpListener) {
    loop {
        let accepted =
            futures::future::select(Box::pin(listener.accept()), Box::pin(engine.stop_rx.recv()))
                .await;
        let (stream, addr) = match accepted {
            futures::future::Either::Left((Ok(conn), _)) => conn,
            futures::future::Either::Left((Err(e), _)) => {
                tracing::debug!("accept: {e}");
                async_std::task::sleep(Duration::from_millis(100)).await;
                continue;
            }
            futures::future::Either::Right(_) => return,
        };
        // Half-open handshakes are capped like peers: a crowd or a slowloris cannot make us
        // hold more than twice `max_peers` sockets.
        let refused = {
            let mut s = engine.state();
            let max = engine.cfg.max_peers;
            let refused =
                s.banned.contains(&addr.ip()) || s.handshaking >= max || !s.make_room(max);
            if !refused {
                s.handshaking += 1;
            }
            refused
        };
        if refused {
            continue;
        }
        let engine = engine.clone();
        async_std::task::spawn(async move {
            let shaken = handshake(&engine, &stream, false).await;
            engine.state().handshaking -= 1;
            match shaken {
                Ok(remote) => run(engine, stream, addr, remote, true).await,
                Err(e) => tracing::debug!("incoming {addr}: {e}"),
            }
        });
    }
}

/// Dials `addr`, shakes hands and runs the connection.
pub(crate) async fn connect(engine: Arc<Engine>, addr: SocketAddr) {
    let stream = match async_std::io::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!("connect {addr}: {e}");
            engine.dial_failed(addr, false);
            return;
        }
    };
    match handshake(&engine, &stream, true).await {
        Ok(remote) => run(engine, stream, addr, remote, false).await,
        Err(e) => {
            tracing::debug!("handshake with {addr}: {e}");
            engine.dial_failed(addr, matches!(e, HandshakeError::SelfConnection));
        }
    }
}

/// BEP 3 handshake; the dialing side speaks first.
async fn handshake(
    engine: &Engine,
    stream: &TcpStream,
    dialing: bool,
) -> Result<Handshake, HandshakeError> {
    let ours = Handshake::new(engine.meta.info_hash.0, engine.peer_id);
    let mut s = stream.clone();
    let exchange = async {
        if dialing {
            ours.write(&mut s).await?;
        }
        let theirs = Handshake::read(&mut s).await?;
        theirs.check(&engine.meta.info_hash.0, &engine.peer_id)?;
        if !dialing {
            ours.write(&mut s).await?;
        }
        Ok::<_, HandshakeError>(theirs)
    };
    async_std::future::timeout(HANDSHAKE_TIMEOUT, exchange)
        .await
        .map_err(|_| HandshakeError::Io(std::io::ErrorKind::TimedOut.into()))?
}

async fn run(
    engine: Arc<Engine>,
    stream: TcpStream,
    addr: SocketAddr,
    remote: Handshake,
    incoming: bool,
) {
    let _ = stream.set_nodelay(true);
    static NEXT_CONN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let conn = NEXT_CONN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (tx, rx) = async_std::channel::unbounded();
    let key = {
        let mut s = engine.state();
        // Many incoming handshakes finish at once: the room checked at accept may be gone.
        let full = incoming && !s.make_room(engine.cfg.max_peers);
        if full || s.stopped || s.banned.contains(&addr.ip()) || s.is_connected_id(&remote.peer_id)
        {
            return;
        }
        let pieces = s.have.len();
        s.add_peer(PeerState::new(
            conn,
            addr,
            remote.peer_id,
            tx,
            stream.clone(),
            pieces,
        ))
    };
    let id = Conn { key, conn };
    async_std::task::spawn(writer(engine.clone(), id, stream.clone(), rx));
    let reason = reader(&engine, id, stream).await;
    engine.state().remove_conn(key, conn, &reason);
}

/// A registered connection: its (reusable) peer key and its unique id.
#[derive(Clone, Copy)]
struct Conn {
    key: u32,
    conn: u64,
}

/// Reads messages until the connection ends; returns why it ended.
async fn reader(engine: &Arc<Engine>, id: Conn, stream: TcpStream) -> String {
    let pieces = engine.meta.piece_count();
    // The largest legal message is a bitfield or a served block; anything longer is refused
    // before it is allocated.
    let max_len = (crate::bitfield::Bitfield::byte_len(pieces) as u32 + 1).max(128 * 1024 + 9);
    let mut r = BufReader::with_capacity(256 * 1024, stream);
    loop {
        let msg =
            match async_std::future::timeout(IDLE_TIMEOUT, Message::read(&mut r, max_len)).await {
                Err(_) => return "idle too long".into(),
                Ok(Err(e)) => return e.to_string(),
                Ok(Ok(m)) => m,
            };
        if let Message::Piece { data, .. } = &msg {
            engine.down_limit.acquire(data.len() as u64).await;
        }
        let done = match engine.state().on_message(id.key, id.conn, msg) {
            Ok(done) => done,
            Err(drop) => return drop.0,
        };
        if let Some(asm) = done
            && engine.queue_for_verification(asm).await.is_err()
        {
            return "engine stopped".into();
        }
    }
}

/// Sends what the state queued for this peer, batching small messages into one write.
async fn writer(engine: Arc<Engine>, id: Conn, mut stream: TcpStream, rx: Receiver<Outbound>) {
    let mut buf = Vec::with_capacity(WRITE_BATCH + 64 * 1024);
    loop {
        buf.clear();
        let first = match async_std::future::timeout(KEEPALIVE_EVERY, rx.recv()).await {
            Err(_) => Outbound::Msg(Message::KeepAlive),
            Ok(Err(_)) => return,
            Ok(Ok(o)) => o,
        };
        encode(&engine, id, first, &mut buf).await;
        while buf.len() < WRITE_BATCH {
            match rx.try_recv() {
                Ok(o) => encode(&engine, id, o, &mut buf).await,
                Err(_) => break,
            }
        }
        if buf.is_empty() {
            continue;
        }
        if let Err(e) = stream.write_all(&buf).await {
            tracing::debug!("write to peer {}: {e}", id.key);
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}

async fn encode(engine: &Engine, id: Conn, out: Outbound, buf: &mut Vec<u8>) {
    match out {
        Outbound::Msg(m) => m.encode_into(buf),
        Outbound::Serve(r) => {
            if !engine.state().take_upload(id.key, id.conn, &r) {
                return;
            }
            let start = engine.layout.piece_range(r.piece).start + r.offset as u64;
            match engine.read_storage(start..start + r.len as u64) {
                Ok(data) => {
                    engine.up_limit.acquire(data.len() as u64).await;
                    Message::Piece {
                        piece: r.piece,
                        offset: r.offset,
                        data,
                    }
                    .encode_into(buf);
                    engine.state().uploaded_block(id.key, id.conn, r.len as u64);
                }
                Err(e) => tracing::warn!("cannot serve piece {}: {e}", r.piece),
            }
        }
    }
}
