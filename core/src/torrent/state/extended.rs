//! The torrent's side of the extension protocol (BEP 10): our extension handshake to peers
//! that speak it, theirs in, and serving our info dictionary to peers fetching metadata
//! (BEP 9) from a magnet link.

use super::TorrentState;
use crate::peer::DropReason;
use crate::plugin::PeerKey;
use crate::torrent::effects::Effects;
use crate::wire::extension::{HANDSHAKE_ID, OUR_UT_METADATA};
use crate::wire::{ExtHandshake, Message, MetadataMsg, ut_metadata};

/// Metadata pieces served per connection, as a multiple of the metadata's piece count: a peer
/// fetches it once (a retry or two at most); asking on and on only costs us upload.
const SERVE_ROUNDS: u32 = 4;

/// What we know of a peer's extensions.
#[derive(Debug, Default)]
pub(crate) struct PeerExtensions {
    /// The id the peer wants ut_metadata messages sent under.
    pub ut_metadata: Option<u8>,
    /// Metadata pieces served to it so far.
    pub served: u32,
}

impl TorrentState {
    /// Sends our extension handshake to a peer that announced the extension protocol.
    pub fn greet_extensions(&mut self, key: PeerKey, fx: &mut Effects) {
        let size = self.meta.info_bytes.len() as u64;
        let Some(peer) = self.swarm.peers.get(&key) else {
            return;
        };
        let ours = ExtHandshake::ours((size > 0).then_some(size));
        fx.send(
            &peer.tx,
            Message::Extended {
                id: HANDSHAKE_ID,
                payload: ours.encode(),
            },
        );
    }

    /// One extension message from peer `key`.
    pub(super) fn on_extended(
        &mut self,
        key: PeerKey,
        id: u8,
        payload: &[u8],
        fx: &mut Effects,
    ) -> Result<(), DropReason> {
        let info = self.meta.info_bytes.clone();
        let Some(peer) = self.swarm.peers.get_mut(&key) else {
            return Ok(());
        };
        match id {
            HANDSHAKE_ID => {
                // A handshake we cannot read only means we will not talk extensions with it.
                peer.ext.ut_metadata = ExtHandshake::decode(payload)
                    .map_err(|e| tracing::debug!("{}: {e}", peer.addr))
                    .ok()
                    .and_then(|h| h.ut_metadata);
            }
            OUR_UT_METADATA => {
                let msg = MetadataMsg::decode(payload)
                    .map_err(|e| DropReason::Protocol(e.to_string()))?;
                let (MetadataMsg::Request { piece }, Some(their_id)) = (msg, peer.ext.ut_metadata)
                else {
                    return Ok(());
                };
                let limit = ut_metadata::piece_count(info.len() as u64).max(1) * SERVE_ROUNDS;
                let answer = if peer.ext.served < limit {
                    peer.ext.served += 1;
                    ut_metadata::answer(&info, piece)
                } else {
                    MetadataMsg::Reject { piece }
                };
                fx.send(
                    &peer.tx,
                    Message::Extended {
                        id: their_id,
                        payload: answer.encode(),
                    },
                );
            }
            _ => {}
        }
        Ok(())
    }
}
