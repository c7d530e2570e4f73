//! The session's listener: accepts peers, reads their handshake to learn which torrent they
//! want, and hands each to that torrent. Half-open connections (accepted, handshake not yet
//! read) are bounded per address and in all, so a crowd of silent connections from one place
//! cannot keep honest peers out (a cycle of 80 half-open connections once answered 0 of 10
//! handshake probes).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use super::Inner;
use crate::metainfo::InfoHash;
use crate::peer;
use crate::rt::{self, Cancel, Either, TcpListener, TcpStream};

/// Handshakes in progress from one address at once.
const HALF_OPEN_PER_IP: usize = 4;
/// Handshakes in progress at once in all.
const HALF_OPEN_TOTAL: usize = 64;

/// Counts handshakes in progress per address.
#[derive(Default)]
struct HalfOpen {
    by_ip: HashMap<IpAddr, usize>,
    total: usize,
}

struct HalfOpenSlot {
    table: Arc<Mutex<HalfOpen>>,
    ip: IpAddr,
}

impl Drop for HalfOpenSlot {
    fn drop(&mut self) {
        if let Ok(mut t) = self.table.lock() {
            t.total -= 1;
            if let Some(n) = t.by_ip.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    t.by_ip.remove(&self.ip);
                }
            }
        }
    }
}

fn take_half_open(table: &Arc<Mutex<HalfOpen>>, ip: IpAddr) -> Option<HalfOpenSlot> {
    let mut t = table.lock().ok()?;
    let n = t.by_ip.get(&ip).copied().unwrap_or(0);
    if n >= HALF_OPEN_PER_IP || t.total >= HALF_OPEN_TOTAL {
        return None;
    }
    t.total += 1;
    *t.by_ip.entry(ip).or_default() += 1;
    Some(HalfOpenSlot {
        table: table.clone(),
        ip,
    })
}

pub(super) async fn accept_loop(session: Weak<Inner>, listener: TcpListener, stopped: Cancel) {
    let half_open = Arc::new(Mutex::new(HalfOpen::default()));
    loop {
        let (stream, addr) = match rt::race(listener.accept(), stopped.cancelled()).await {
            Either::Left(Ok(conn)) => conn,
            Either::Left(Err(e)) => {
                // Out of descriptors, usually: wait rather than spin.
                tracing::debug!("accept: {e}");
                rt::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Either::Right(()) => return,
        };
        let Some(slot) = take_half_open(&half_open, addr.ip()) else {
            tracing::debug!("{addr}: too many handshakes in progress");
            continue;
        };
        let Some(inner) = session.upgrade() else {
            return;
        };
        let s = session.clone();
        let stop = stopped.clone();
        inner.tasks.spawn(async move {
            // A peer still in its handshake is not worth waiting for at shutdown (a silent one
            // held the session's shutdown for its whole 2 s grace).
            rt::race(route(s, stream, addr, slot), stop.cancelled()).await;
        });
    }
}

/// Reads the handshake and gives the connection to the torrent it names.
async fn route(session: Weak<Inner>, mut stream: TcpStream, addr: SocketAddr, slot: HalfOpenSlot) {
    let _ = stream.set_nodelay(true);
    let remote = match peer::read_handshake(&mut stream).await {
        Ok(h) => h,
        Err(e) => {
            tracing::debug!("incoming {addr}: {e}");
            return;
        }
    };
    drop(slot);
    let Some(inner) = session.upgrade() else {
        return;
    };
    let hash = InfoHash(remote.info_hash);
    // A hybrid torrent is also asked for by its truncated v2 hash (its v2 swarm).
    let torrent = inner.torrents.lock().ok().and_then(|t| {
        t.get(&hash)
            .or_else(|| t.values().find(|h| h.meta().swarm_hashes().contains(&hash)))
            .map(|h| h.torrent.clone())
    });
    let Some(torrent) = torrent else {
        match inner.pending_fetch(&hash) {
            Some(fetch) => match inner.env.budget.take() {
                Some(slot) => fetch.accept(stream, addr, remote, slot),
                None => tracing::debug!("incoming {addr}: session peer budget spent"),
            },
            None => tracing::debug!("incoming {addr} wants a torrent we do not have"),
        }
        return;
    };
    if !torrent.welcomes(addr) {
        return;
    }
    let Some(peer_slot) = inner.env.budget.take() else {
        tracing::debug!("incoming {addr}: session peer budget spent");
        return;
    };
    torrent.accept(stream, addr, remote, peer_slot);
}
