//! What happens when a piece's fate is known: verified and stored, failed its hash (and who
//! is blamed), not stored (disk full), lost by the storage or changed on disk; completion and
//! bans follow from these.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::{STORAGE_RETRY, StorageFault, TorrentState};
use crate::events::Event;
use crate::peer::DropReason;
use crate::plugin::{PeerKey, StorageError};
use crate::torrent::assembly::PieceAssembly;
use crate::torrent::effects::{Effect, Effects};
use crate::torrent::pieces::{BAN_STRIKES, Blame};
use crate::wire::Message;

impl TorrentState {
    /// The storage let go of a verified piece: it is wanted again, and the peers holding it are
    /// interesting again (once complete, nobody was).
    pub fn piece_evicted(&mut self, piece: u32, fx: &mut Effects) {
        if !self.pieces.lost(piece) {
            return;
        }
        for peer in self.swarm.peers.values_mut() {
            if peer.has.get(piece) && !peer.am_interested {
                peer.am_interested = true;
                fx.send(&peer.tx, Message::Interested);
            }
        }
    }

    /// A piece read back from storage no longer matches its hash (changed on disk under us):
    /// it is not ours any more; fetch it again.
    pub fn piece_corrupt_on_disk(&mut self, piece: u32, fx: &mut Effects) {
        if self.pieces.lost(piece) {
            tracing::warn!("piece {piece} changed on disk; fetching it again");
            fx.emit(Event::HashFailed {
                piece,
                peers: Vec::new(),
            });
            self.resume_dirty = true;
            for peer in self.swarm.peers.values_mut() {
                if peer.has.get(piece) && !peer.am_interested {
                    peer.am_interested = true;
                    fx.send(&peer.tx, Message::Interested);
                }
            }
            self.fill_all(fx);
        }
    }

    /// A whole piece passed its check and was stored.
    pub fn piece_verified(&mut self, asm: &PieceAssembly, fx: &mut Effects) {
        let piece = asm.index;
        let blame = self.pieces.verified(asm);
        self.readers.piece_ready(piece, fx);
        self.resume_dirty = true;
        fx.emit(Event::PieceVerified { piece });
        for p in self.swarm.peers.values() {
            if !p.has.get(piece) {
                fx.send(&p.tx, Message::Have(piece));
            }
        }
        self.apply_blame(blame, fx);
        if self.complete() {
            self.on_complete(fx);
        }
        self.fill_all(fx);
    }

    /// A whole piece failed its check.
    pub fn piece_failed(&mut self, asm: PieceAssembly, fx: &mut Effects) {
        let piece = asm.index;
        let peers: Vec<String> = asm.contributors().iter().map(|a| a.to_string()).collect();
        tracing::warn!(
            "piece {piece} failed its hash check (from {})",
            peers.join(", ")
        );
        fx.emit(Event::HashFailed { piece, peers });
        let blame = self.pieces.failed(asm);
        self.apply_blame(blame, fx);
        self.fill_all(fx);
    }

    /// A verified piece could not be stored: stop fetching (the data would only be thrown
    /// away), say so once, fail the waiting reads now, and try again later.
    pub fn piece_not_stored(&mut self, piece: u32, error: StorageError, fx: &mut Effects) {
        self.pieces.store_failed(piece);
        if self.storage_fault.is_none() {
            tracing::error!("cannot store piece {piece}: {error}");
            fx.emit(Event::StorageError {
                error: error.to_string(),
            });
        }
        self.storage_fault = Some(StorageFault {
            error: Arc::new(error),
            retry_at: Instant::now() + STORAGE_RETRY,
        });
        // Drop what is in flight: nothing fetched now could be stored.
        for p in self.swarm.peers.values_mut() {
            let reqs: Vec<_> = p.requests.keys().copied().collect();
            for r in reqs {
                p.withdraw(r);
                fx.send(&p.tx, Message::Cancel(r));
            }
        }
        let started: Vec<u32> = self.pieces.assemblies.keys().copied().collect();
        for i in started {
            self.pieces.release(i);
        }
        self.readers.wake_all(fx);
        for w in &self.complete_waiters {
            fx.wake(w);
        }
    }

    fn apply_blame(&mut self, blame: Blame, fx: &mut Effects) {
        for (addr, strikes) in blame.strikes {
            let s = self.swarm.strikes.entry(addr).or_default();
            *s += strikes;
            if *s >= BAN_STRIKES {
                self.ban(addr, "sent corrupt data", fx);
            }
        }
    }

    fn on_complete(&mut self, fx: &mut Effects) {
        fx.emit(Event::Complete {
            downloaded: self.downloaded,
            uploaded: self.uploaded,
        });
        tracing::info!("download complete");
        fx.list.push(Effect::Completed);
        for w in self.complete_waiters.drain(..) {
            fx.wake(&w);
        }
        let keys: Vec<PeerKey> = self.swarm.peers.keys().copied().collect();
        for k in keys {
            self.update_interest(k, fx);
            // Two seeds have nothing to say to each other, unless our pieces may be evicted.
            if !self.pieces.evicting && self.swarm.peers.get(&k).is_some_and(|p| p.has.is_full()) {
                self.remove_peer(k, DropReason::BothComplete, fx);
            }
        }
    }

    pub fn ban(&mut self, addr: SocketAddr, reason: &str, fx: &mut Effects) {
        if !self.swarm.banned.insert(addr.ip()) {
            return;
        }
        tracing::warn!("banning {}: {reason}", addr.ip());
        fx.emit(Event::PeerBanned {
            addr: addr.to_string(),
            reason: reason.to_string(),
        });
        let keys: Vec<PeerKey> = self
            .swarm
            .peers
            .iter()
            .filter(|(_, p)| p.addr.ip() == addr.ip())
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            self.remove_peer(k, DropReason::Banned(reason.to_string()), fx);
        }
    }
}
