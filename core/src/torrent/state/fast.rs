//! The fast extension (BEP 6) with peers whose handshake announced it as ours does: have-all
//! and have-none in place of a bitfield, reject-request both ways, allowed-fast honoured.
//! Suggest-piece is read and ignored: the picker's rarest-first order already serves the
//! swarm, and following a peer's suggestions would let it steer what we fetch.

use super::TorrentState;
use crate::bitfield::Bitfield;
use crate::events::Event;
use crate::peer::DropReason;
use crate::plugin::PeerKey;
use crate::torrent::effects::Effects;
use crate::torrent::peers::{MAX_ALLOWED_FAST, MAX_UNREQUESTED};
use crate::wire::Message;

/// What becomes of a request of theirs the writer reached.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Upload {
    Serve,
    /// Dropped silently (a peer without the fast extension, or gone).
    Skip,
    /// Refused with a reject-request (a fast peer we choked, or that cancelled).
    Reject,
}

impl Upload {
    pub(super) fn refuse(fast: bool) -> Self {
        if fast { Upload::Reject } else { Upload::Skip }
    }
}

/// What we tell a new peer we have: have-all/have-none save a fast peer the bitfield.
pub(super) fn announcement(have: &Bitfield, fast: bool) -> Option<Message> {
    match (fast, have.count()) {
        (true, 0) => Some(Message::HaveNone),
        (true, _) if have.is_full() => Some(Message::HaveAll),
        (_, 0) => None,
        _ => Some(Message::Bitfield(have.as_bytes().to_vec())),
    }
}

impl TorrentState {
    /// One fast-extension message from `key`; from a peer that did not announce the extension
    /// it is a protocol violation.
    pub(super) fn on_fast(
        &mut self,
        key: PeerKey,
        msg: Message,
        fx: &mut Effects,
    ) -> Result<(), DropReason> {
        let pieces = self.pieces.have.len();
        let Some(peer) = self.swarm.peers.get_mut(&key) else {
            return Ok(());
        };
        if !peer.fast {
            return Err(DropReason::Protocol(format!(
                "{} without the fast extension",
                msg.kind()
            )));
        }
        match msg {
            Message::HaveAll | Message::HaveNone => {
                peer.has = if msg == Message::HaveAll {
                    fx.emit(Event::PeerHasAll {
                        addr: peer.addr.to_string(),
                    });
                    Bitfield::full(pieces)
                } else {
                    Bitfield::new(pieces)
                };
                let has = peer.has.clone();
                self.pieces.picker().peer_bitfield(key, &has);
                self.update_interest(key, fx);
                self.fill(key, true, fx);
            }
            Message::Reject(r) => {
                if peer.requests.remove(&r).is_some() {
                    // Not coming: free the block for anyone now, not after the timeout.
                    self.unrequest(&r);
                    self.fill_all(fx);
                } else if !peer.take_withdrawn(&r) {
                    peer.unrequested += 1;
                    if peer.unrequested > MAX_UNREQUESTED {
                        return Err(DropReason::UnrequestedBlocks);
                    }
                }
            }
            Message::AllowedFast(i)
                if i < pieces
                    && !peer.allowed_fast.contains(&i)
                    && peer.allowed_fast.len() < MAX_ALLOWED_FAST =>
            {
                peer.allowed_fast.push(i);
                self.fill(key, true, fx);
            }
            _ => {}
        }
        Ok(())
    }
}
