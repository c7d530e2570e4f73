//! The torrent as the handler of its peer connections: registering a connection, a message
//! in (under the state lock, effects after), a block out (read off the async threads), whether
//! a quiet peer holding a reader's requests wants a nudge, a connection gone.

use std::time::{Duration, Instant};

use super::Torrent;
use crate::bitfield::Bitfield;
use crate::peer::{Attached, DropReason, PeerHandler, PeerLink};
use crate::torrent::effects::{Effects, carry_out};
use crate::torrent::peers::PeerState;
use crate::torrent::state::{Phase, Upload};
use crate::wire::{BlockRequest, Message};

impl PeerHandler for Torrent {
    fn max_message_len(&self) -> u32 {
        // The largest legal message is a bitfield or a served block.
        (Bitfield::byte_len(self.meta.piece_count()) as u32 + 1).max(128 * 1024 + 9)
    }

    fn attach(&self, link: PeerLink) -> Result<Attached, DropReason> {
        let mut fx = Effects::default();
        let result = {
            let mut s = self.state();
            let pieces = s.pieces.have.len();
            // Many incoming handshakes finish at once: the room checked at accept may be gone.
            if s.phase != Phase::Live {
                Err(DropReason::ShuttingDown)
            } else if s.swarm.banned.contains(&link.addr.ip()) {
                Err(DropReason::Banned("banned earlier".into()))
            } else if s.swarm.is_connected_id(&link.peer_id) {
                Err(DropReason::Duplicate)
            } else if link.incoming && !s.make_room(self.cfg.max_peers, &mut fx) {
                Err(DropReason::NoRoom)
            } else {
                let conn = link.conn;
                let mut peer =
                    PeerState::new(conn, link.addr, link.peer_id, link.tx, link.close, pieces);
                peer.fast = link.fast;
                peer.incoming = link.incoming;
                let key = s.add_peer(peer, &mut fx);
                if link.extensions {
                    s.greet_extensions(key, self.env.listen_addr.port(), &mut fx);
                }
                Ok(Attached { key, conn })
            }
        };
        carry_out(fx.list, &self.events);
        result
    }

    async fn on_message(&self, id: Attached, msg: Message) -> Result<(), DropReason> {
        if let Message::Piece { data, .. } = &msg {
            self.env.down_limit.acquire(data.len() as u64).await;
        }
        let mut fx = Effects::default();
        let r = self.state().on_message(id.key, id.conn, msg, &mut fx);
        let this = self.arc();
        this.apply_waiting(fx).await?;
        r
    }

    fn nudge_in(&self, id: Attached) -> Option<Duration> {
        let s = self.state();
        // Asked before every write of every connection: without a reader, no scan of requests.
        if !s.readers.has_deadlines() {
            return None;
        }
        let peer = s.swarm.get(id.key, id.conn)?;
        peer.nudge_in(|piece| s.readers.deadline(piece).is_some(), Instant::now())
    }

    fn nudged(&self, id: Attached) {
        if let Some(peer) = self.state().swarm.get_mut(id.key, id.conn) {
            peer.nudged_at = Some(Instant::now());
        }
    }

    async fn serve(&self, id: Attached, r: BlockRequest) -> Option<Message> {
        match self.state().take_upload(id.key, id.conn, &r) {
            Upload::Serve => {}
            Upload::Skip => return None,
            Upload::Reject => return Some(Message::Reject(r)),
        }
        let start = self.layout.piece_range(r.piece).start + r.offset as u64;
        let this = self.arc();
        match this.read_verified(start..start + r.len as u64).await {
            Ok(data) => {
                self.env.up_limit.acquire(data.len() as u64).await;
                self.state().uploaded_block(id.key, id.conn, r.len as u64);
                Some(Message::Piece {
                    piece: r.piece,
                    offset: r.offset,
                    data,
                })
            }
            Err(e) => {
                tracing::warn!("cannot serve piece {}: {e}", r.piece);
                None
            }
        }
    }

    fn detach(&self, id: Attached, reason: DropReason) {
        let this = self.arc();
        this.with_state(|s, fx| s.remove_conn(id.key, id.conn, reason, fx));
    }
}
